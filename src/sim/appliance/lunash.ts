// The lunash interpreter of a simulated Luna 7 appliance, behind the twin's ShellHost seam: an ssh2 channel or a
// real sshd (stdio-main.ts) carries the bytes, this module decides what the appliance says. One LunashHost serves
// one ApplianceState; each SSH session gets its own LunashSession.
import type { InteractiveShell, ShellHost, ShellIO } from "../shell-session.ts";
import type { ApplianceState } from "../state.ts";
import { maskForEcho, type Resolution, redactCommandLine, tokenize } from "./command-line.ts";
import { type CommandIO, type Handler, lunashTable, rebootAppliance } from "./commands.ts";
import { garble, matchesFault, slowReplyMs, truncateForDrop } from "./faults.ts";
import { commandDelayMs } from "./latency.ts";
import { LineInput } from "./line-input.ts";
import { DEFAULT_BOOT_MS, isUp, syslogLine, trackSession } from "./power.ts";
import { banner, footer, prompt, type ResultCode } from "./text.ts";

export interface LunashOptions {
  /** How long a patched appliance takes to reboot (default 1 s). */
  bootMs?: number;
  /** Validity of certificates made by `sysconf regenCert` (default 3650 days). */
  regenCertDays?: number;
  /** Called before each command runs (stdio-main reloads the persisted state here). */
  beforeCommand?: () => void;
  /** Called after each command, also when it failed or the session dropped (stdio-main saves the state here). */
  afterCommand?: () => void;
}

/** Where a session reads the answers to prompts; the interactive shell uses its line input. */
interface AnswerSource {
  read(mask: boolean): Promise<string | null>;
}

/** Writes to the carrier: "\n" becomes "\r\n" on a pty; nothing is written after the session ended. */
class Output {
  closed = false;
  constructor(
    private readonly io: ShellIO,
    private readonly pty: boolean,
  ) {}

  write(text: string): void {
    if (this.closed || text === "") return;
    this.io.write(this.pty ? text.replace(/\r?\n/g, "\r\n") : text);
  }

  close(code?: number): void {
    if (this.closed) return;
    this.closed = true;
    this.io.close(code);
  }

  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    this.io.destroy();
  }
}

interface RunContext {
  user: string;
  session: number;
}

export class LunashHost implements ShellHost {
  readonly state: ApplianceState;
  readonly #bootMs: number;
  readonly #regenCertDays: number;
  readonly #hooks: Pick<LunashOptions, "beforeCommand" | "afterCommand">;

  constructor(state: ApplianceState, opts: LunashOptions = {}) {
    this.state = state;
    this.#hooks = { beforeCommand: opts.beforeCommand, afterCommand: opts.afterCommand };
    this.#bootMs = opts.bootMs ?? DEFAULT_BOOT_MS;
    this.#regenCertDays = opts.regenCertDays ?? 3650;
  }

  openShell(io: ShellIO, ctx: { user: string; session: number; pty: boolean }): InteractiveShell {
    return new LunashSession(this, io, ctx);
  }

  exec(command: string, io: ShellIO, ctx: { user: string; session: number }): void {
    void this.execWithAnswers(command, io, ctx, null);
  }

  /**
   * Non-interactive run of one command (`ssh admin@hsm 'hsm show'`): no banner, no prompt, the footer is kept.
   * Prompts read their answers from `answers` (stdin under a real sshd) or see end of input. The exit code is 0
   * when the footer says 0, else 1.
   */
  async execWithAnswers(
    command: string,
    io: ShellIO,
    ctx: RunContext,
    answers: AnswerSource | null,
    pty = false,
  ): Promise<void> {
    const out = new Output(io, pty);
    if (!isUp(this.state)) {
      out.destroy();
      return;
    }
    const untrack = trackSession(this.state, { drop: () => out.destroy() });
    try {
      const result = await this.runCommand(command, out, ctx, answers ?? { read: async () => null }, pty);
      if (result.kind === "dropped") return;
      if (result.kind === "empty") {
        out.close(0);
        return;
      }
      if (result.after === "reboot") {
        // Our own session ends cleanly (the footer went out); every other session is cut by the reboot.
        untrack();
        rebootAppliance({ state: this.state, bootMs: this.#bootMs });
      }
      out.close(result.code === 0 ? 0 : 1);
    } finally {
      untrack();
    }
  }

  /**
   * Run one command line: log it (redacted), apply the slow-reply fault, run the handler, frame its output with the
   * footer, and apply the garble/drop faults to what goes out.
   */
  async runCommand(
    line: string,
    out: Output,
    ctx: RunContext,
    answers: AnswerSource,
    pty: boolean,
  ): Promise<
    { kind: "done"; code: ResultCode; after?: "exit" | "reboot" } | { kind: "dropped" } | { kind: "empty" }
  > {
    const tokens = tokenize(line);
    const res = lunashTable().resolve(tokens);
    if (res.kind === "empty") return { kind: "empty" };
    this.#hooks.beforeCommand?.();
    try {
      return await this.#runResolved(line, res, out, ctx, answers, pty);
    } finally {
      this.#hooks.afterCommand?.();
    }
  }

  async #runResolved(
    line: string,
    res: Resolution<Handler>,
    out: Output,
    ctx: RunContext,
    answers: AnswerSource,
    pty: boolean,
  ): Promise<{ kind: "done"; code: ResultCode; after?: "exit" | "reboot" } | { kind: "dropped" }> {
    const state = this.state;
    const table = lunashTable();
    const logged = redactCommandLine(line, table);
    state.commandLog.push({ at: Date.now(), session: ctx.session, user: ctx.user, command: logged });
    state.syslog.push(
      syslogLine(state, `-lunash: Command: ${logged} : ${ctx.user} : session/${ctx.session}`),
    );

    const canonical = res.kind === "ok" || res.kind === "bad-option" ? res.canonical : line.trim();
    // The slow-reply fault, and the time a real appliance takes for this command (the latency profile, if set).
    const delay = slowReplyMs(state.faults) + commandDelayMs(state.latency, canonical);
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    if (out.closed) return { kind: "dropped" };

    const garbling = matchesFault(state.faults.garbleCommand, canonical, line);
    const dropping = matchesFault(state.faults.dropMidCommand, canonical, line);
    let pending = "";
    let dropped = false;
    /**
     * Send what the command produced so far (before a prompt, or at the end with its footer). A garbled command has
     * its body corrupted but its footer intact, so the driver sees a complete reply it must refuse to parse; a
     * dropped one loses the second half of its last output and the connection.
     */
    const flush = (final: boolean, tail = "") => {
      if (dropped) return;
      const text = (garbling ? garble(pending) : pending) + tail;
      pending = "";
      if (text === "") return;
      if (dropping && final) {
        out.write(truncateForDrop(text));
        out.destroy();
        dropped = true;
        return;
      }
      out.write(text);
    };
    const io: CommandIO = {
      write: (text) => {
        pending += text;
      },
      ask: async (promptText, opts) => {
        pending += promptText;
        flush(false);
        if (dropped || out.closed) return null;
        return answers.read(opts?.mask === true);
      },
    };

    const outcome = await this.#dispatch(res, io, ctx, pty);
    if (outcome.after === "exit") {
      flush(true);
      return dropped ? { kind: "dropped" } : { kind: "done", code: 0, after: "exit" };
    }
    flush(true, `${footer(outcome.code)}\n`);
    if (dropped || out.closed) return { kind: "dropped" };
    return { kind: "done", code: outcome.code, ...(outcome.after ? { after: outcome.after } : {}) };
  }

  async #dispatch(
    res: Resolution<Handler>,
    io: CommandIO,
    ctx: RunContext,
    _pty: boolean,
  ): Promise<{ code: ResultCode; after?: "exit" | "reboot" }> {
    switch (res.kind) {
      case "ok":
        return res.spec.handler({
          state: this.state,
          user: ctx.user,
          session: ctx.session,
          canonical: res.canonical,
          options: res.options,
          io,
          bootMs: this.#bootMs,
          regenCertDays: this.#regenCertDays,
        });
      case "unknown":
        io.write(`\nError:  '${res.typed}' is not a valid command. Type 'help' for a list of commands.\n\n`);
        return { code: 65535 };
      case "ambiguous":
        io.write(
          `\nError:  '${res.typed}' is ambiguous. It could be one of:\n${res.candidates.map((c) => `        ${c}\n`).join("")}\n`,
        );
        return { code: 65535 };
      case "incomplete":
        io.write(
          `\nError:  '${res.typed}' is incomplete. Possible commands:\n${res.candidates.map((c) => `        ${c}\n`).join("")}\n`,
        );
        return { code: 65535 };
      case "bad-option":
        io.write(`\nError:  '${res.canonical}': ${res.message}\n\n`);
        return { code: 65535 };
      case "empty":
        return { code: 0 };
    }
  }

  get bootMs(): number {
    return this.#bootMs;
  }
}

/** One interactive lunash session: banner, prompt, commands until `exit`, end of input, a drop or a reboot. */
class LunashSession implements InteractiveShell {
  readonly #host: LunashHost;
  readonly #out: Output;
  readonly #ctx: { user: string; session: number; pty: boolean };
  readonly #input: LineInput;
  #started = false;
  #finished = false;
  #untrack: (() => void) | undefined;

  constructor(host: LunashHost, io: ShellIO, ctx: { user: string; session: number; pty: boolean }) {
    this.#host = host;
    this.#ctx = ctx;
    this.#out = new Output(io, ctx.pty);
    // Passwords given as arguments (`hsm login -p ...`) are echoed as `*`, like the password prompt's answers.
    this.#input = new LineInput({ pty: ctx.pty, echo: (t) => this.#out.write(t), display: maskForEcho });
  }

  start(): void {
    if (this.#started) return;
    this.#started = true;
    const state = this.#host.state;
    if (!isUp(state)) {
      // A rebooting or hung appliance does not answer; the carrier should not even get here.
      this.#out.destroy();
      this.#finished = true;
      return;
    }
    // The session log (state.sessionLog) belongs to the carrier, which knows the peer and the channel kind.
    this.#untrack = trackSession(state, { drop: () => this.#drop() });
    this.#out.write(`\n${banner(state.softwareVersion)}\n\n\n`);
    void this.#loop().catch((err: unknown) => {
      // An interpreter bug must not leave a half-open session: say so on the channel and end it.
      this.#out.write(`\nInternal error: ${(err as Error).message}\n`);
      this.#finish(1);
    });
  }

  input(data: string): void {
    if (this.#finished) return;
    this.#input.feed(data);
  }

  end(): void {
    this.#input.end();
  }

  async #loop(): Promise<void> {
    const state = this.#host.state;
    const answers: AnswerSource = {
      read: async (mask) => {
        const r = await this.#input.read(mask);
        return r.kind === "line" ? r.text : null;
      },
    };
    while (!this.#finished) {
      this.#out.write(prompt(state.hostname));
      const r = await this.#input.read(false);
      if (this.#finished) return;
      if (r.kind === "eof") {
        this.#finish(0);
        return;
      }
      if (r.kind === "cancel") continue;
      const result = await this.#host.runCommand(r.text, this.#out, this.#ctx, answers, this.#ctx.pty);
      if (result.kind === "dropped") {
        this.#finish(undefined);
        return;
      }
      if (result.kind === "empty") continue;
      if (result.after === "exit") {
        this.#finish(0);
        return;
      }
      if (result.after === "reboot") {
        // Leave the session registry first: the reboot cuts every other session, this one closes after its footer.
        this.#untrack?.();
        this.#untrack = undefined;
        rebootAppliance({ state, bootMs: this.#host.bootMs });
        this.#finish(0);
        return;
      }
    }
  }

  /** Cut by a reboot or power cycle elsewhere: the TCP connection just dies. */
  #drop(): void {
    if (this.#finished) return;
    this.#out.destroy();
    this.#finish(undefined);
  }

  #finish(code: number | undefined): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#untrack?.();
    this.#out.close(code);
    this.#input.end();
  }
}

export { powerCycle } from "./power.ts";
export type { Output };
