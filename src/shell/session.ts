// Over 400 lines: the read loop and the answers to prompts and confirmations are one state machine over one channel;
//  each part changes what the others may see.
// The generic prompt-driven driver (Scrapli's channel + driver): one interactive shell, one command at a time.
// It writes a command only after the command policy allowed it, then reads until the platform's prompt comes back,
// answering exactly what the step declared: a `proceed` confirmation the step named, a login password prompt with
// the LoginToken the guard issued. Anything else — an unknown prompt, a confirmation nobody declared, the
// LAST-attempt caution, a password prompt without a token, silence past the deadline, a dropped channel — aborts
// the step: the documented way out ('quit') is typed where one exists, otherwise nothing more is typed, the channel
// is closed (the device-side session ends with it) and the session is marked unusable.
//
// The driver frames a reply and nothing more: it returns the raw text between the echo and the prompt and the footer
// line it saw (a reply without the footer its platform requires is unreadable). What the reply means — a value or the
// device's error — is decided by the command's one parser (reply.ts), never here.
import { redact } from "../config/secret.ts";
import type { ShellChannel } from "../transport/channel.ts";
import { ConnectionLost, ConnectTimeout, type DeviceOpError } from "../transport/errors.ts";
import { CommandTimeout, ParseFailed, UnexpectedPrompt } from "./errors.ts";
import type { LastAttemptException } from "./last-attempt-exception.ts";
import type { LoginToken } from "./login-token.ts";
import type { ConfirmationSpec, PlatformTable } from "./platform.ts";
import { assertCommandAllowed } from "./policy.ts";
import { cleanTerminalText, lastLine, tailLines } from "./text.ts";
import { Transcript } from "./transcript.ts";

export interface ShellSessionOptions {
  /** Device or client-host name (errors, policy, tokens). */
  target: string;
  platform: PlatformTable;
  /** Default per-command deadline (fleet defaults.timeouts.commandMs). */
  commandTimeoutMs: number;
  /** Deadline for the banner and first prompt; default commandTimeoutMs. */
  openTimeoutMs?: number;
  /**
   * A partial last line followed by this much silence is a prompt nobody knows (default 2000 ms). Output lines end
   * with a newline; a device waiting for input does not.
   */
  unknownPromptMs?: number;
  transcript?: Transcript;
  /** Connection generation this shell lives on (from SshConnection), for callers that track login state. */
  generation?: number;
}

export interface RunOptions {
  /** The confirmation this step declares it answers (`proceed`). Without it every confirmation aborts. */
  confirm?: "proceed";
  timeoutMs?: number;
  /** Required for login commands (and spent when the command is sent). */
  token?: LoginToken;
  /**
   * Only the sanctioned zeroize holds one: lets an `hsm login` with a token answer the LAST-attempt caution with
   * `proceed` (once). Without it that caution is always answered `quit`.
   */
  lastAttemptException?: LastAttemptException;
  /** The step declares an appliance reboot (see the policy's appliance-reboot rule). */
  allowReboot?: boolean;
  /** Known reboot safety of the device (KB0019789 patch state); undefined refuses a reboot. */
  rebootUnsafe?: boolean;
}

export interface RunOutput {
  command: string;
  /** The command with abbreviations resolved (`hsm show` for `hsm sh`), as the command policy read it. */
  canonical: string;
  /** Output between the echoed command and the next prompt: ANSI, CR and echo stripped, redacted, ending in a newline. */
  raw: string;
  /** The result footer line the driver saw (`Command Result : 0 (Success)`), or null where the platform has none. */
  footer: string | null;
  /** Notices the device printed (e.g. `two-attempts-left`). */
  notices: string[];
  /** Ids of the confirmations answered. */
  confirmed: string[];
  durationMs: number;
}

type WaitEvent =
  | { type: "prompt"; text: string; prompt: string }
  | { type: "foreign-prompt"; text: string; prompt: string }
  | { type: "confirm"; text: string; spec: ConfirmationSpec }
  | { type: "login-password"; text: string }
  | { type: "password"; text: string }
  | { type: "unknown"; text: string }
  | { type: "refused"; text: string; why: string }
  | { type: "timeout"; text: string }
  | { type: "closed"; text: string; reason: string };

const DEFAULT_UNKNOWN_PROMPT_MS = 2000;
/** The received text ends inside an ANSI escape sequence (ESC, ESC [ params, ESC ] ... without its terminator). */
const INCOMPLETE_ESCAPE = /\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*)?$/;
/** How long a declined confirmation may take to bring the prompt back before the channel is closed anyway. */
const DECLINE_SETTLE_MS = 1000;

let nextSessionId = 1;

export class ShellSession {
  readonly id = nextSessionId++;
  readonly target: string;
  readonly transcript: Transcript;
  readonly generation: number | undefined;
  #platform: PlatformTable;
  readonly #channel: ShellChannel;
  readonly #opts: ShellSessionOptions;
  #raw = "";
  #cursor = 0;
  #prompt: string | undefined;
  #banner: string | undefined;
  #unusable: string | undefined;
  #onChange: (() => void) | undefined;
  #onClosed: ((reason: string) => void) | undefined;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(channel: ShellChannel, opts: ShellSessionOptions) {
    this.#channel = channel;
    this.#opts = opts;
    this.#platform = opts.platform;
    this.target = opts.target;
    this.generation = opts.generation;
    this.transcript = opts.transcript ?? new Transcript();
    channel.onData((chunk) => {
      this.#raw += chunk;
      this.transcript.received(cleanTerminalText(chunk));
      this.#onChange?.();
    });
    channel.onClose((reason) => {
      if (this.#unusable === undefined) this.#unusable = reason;
      this.transcript.event(`channel closed: ${reason}`);
      this.#onClosed?.(reason);
    });
  }

  /**
   * Wait for the banner and the first prompt. With `via` (a client host's OS shell), the first prompt may be the
   * OS shell's, in which case `viaCommand` (default `lunacm`) is started to reach `platform`.
   */
  static async open(
    channel: ShellChannel,
    opts: ShellSessionOptions & { via?: PlatformTable; viaCommand?: string },
  ): Promise<ShellSession> {
    const s = new ShellSession(channel, opts);
    await s.#serialize(() => s.#openFirst(opts.via, opts.viaCommand ?? "lunacm"));
    return s;
  }

  get platform(): PlatformTable {
    return this.#platform;
  }

  /** The prompt the device showed first (`[hsm-a1] lunash:>`); later prompts must be identical. */
  get prompt(): string | undefined {
    return this.#prompt;
  }

  /** Version captured from the banner, if one was printed. */
  get bannerVersion(): string | undefined {
    return this.#banner;
  }

  get usable(): boolean {
    return this.#unusable === undefined && !this.#channel.closed;
  }

  get unusableReason(): string | undefined {
    return this.#unusable ?? this.#channel.closeReason;
  }

  /** Run one command (serialized with any other run on this session): the framed reply, not yet interpreted. */
  run(command: string, opts: RunOptions = {}): Promise<RunOutput> {
    return this.#serialize(() => this.#run(command, opts));
  }

  /**
   * Give this session up: its last reply could not be read, so the stream may be out of step (what looked like the
   * prompt may have been part of the reply, and the rest may arrive as the answer to the next command). The next
   * user gets a fresh session; nothing carries over (no login survives).
   */
  abandon(reason: string): void {
    this.#abandon(reason);
  }

  /** Leave politely (`exit`) and close the channel. */
  async close(): Promise<void> {
    if (this.usable) {
      this.#channel.write(this.#platform.exit + this.#platform.enter);
      this.transcript.sent(this.#platform.exit);
    }
    this.#unusable ??= "closed by lunafleet";
    this.#channel.close();
  }

  #serialize<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(fn, fn);
    this.#queue = next.catch(() => {});
    return next;
  }

  async #openFirst(via: PlatformTable | undefined, viaCommand: string): Promise<void> {
    const openMs = this.#opts.openTimeoutMs ?? this.#opts.commandTimeoutMs;
    const ev = await this.#waitNext(Date.now() + openMs, this.#platform, via);
    if (ev.type === "foreign-prompt" && via) {
      // A client host's OS shell: start lunacm from it.
      this.#platform = via;
      this.#prompt = ev.prompt;
      const target = this.#opts.platform;
      assertCommandAllowed(viaCommand, { shell: "host", target: this.target });
      this.#send(viaCommand);
      const started = this.#cursor;
      const ev2 = await this.#waitNext(Date.now() + openMs, target, via);
      if (ev2.type !== "prompt") return this.#failOpen(ev2, viaCommand, openMs);
      this.#platform = target;
      this.#prompt = ev2.prompt;
      this.#banner = target.banner?.exec(cleanTerminalText(this.#raw.slice(started)))?.[1];
      return;
    }
    if (ev.type !== "prompt") return this.#failOpen(ev, undefined, openMs);
    this.#prompt = ev.prompt;
    this.#banner = this.#platform.banner?.exec(ev.text)?.[1];
    this.transcript.event(`shell ready: ${ev.prompt}`);
  }

  #failOpen(ev: WaitEvent, command: string | undefined, openMs: number): never {
    const target = this.target;
    switch (ev.type) {
      case "timeout":
        this.#abandon(`no ${this.#opts.platform.kind} prompt within ${openMs} ms`);
        throw new ConnectTimeout({
          target,
          command,
          cause: `no ${this.#opts.platform.kind} prompt within ${openMs} ms`,
        });
      case "closed":
        throw new ConnectionLost({
          target,
          command,
          cause: `shell closed before its first prompt: ${ev.reason}`,
        });
      default: {
        const tail = redact(tailLines(ev.text, 3));
        this.#abandon("unexpected prompt while opening the shell");
        throw new UnexpectedPrompt(
          {
            target,
            command,
            cause: `unexpected ${describe(ev)} instead of the ${this.#opts.platform.kind} prompt: ${JSON.stringify(tail)}`,
          },
          tail,
        );
      }
    }
  }

  async #run(command: string, opts: RunOptions): Promise<RunOutput> {
    const target = this.target;
    if (!this.usable)
      throw new ConnectionLost({
        target,
        command,
        cause: `session is not usable (${this.unusableReason ?? "unknown"}); open a new one`,
      });
    // The policy decides before anything is written; a refusal leaves the session as it was.
    const decision = assertCommandAllowed(command, {
      shell: this.#platform.kind,
      target,
      token: opts.token,
      allowReboot: opts.allowReboot,
      rebootUnsafe: opts.rebootUnsafe,
    });
    // Spent before sending: the guard has already recorded the attempt, and a token must never serve twice.
    const secret = opts.token?.consume();
    const timeoutMs = opts.timeoutMs ?? this.#opts.commandTimeoutMs;
    const started = Date.now();
    const deadline = started + timeoutMs;
    const confirmed: string[] = [];
    let passwordTyped = false;
    // A lost or timed-out command that changed something (or logged in) has an unknown outcome: never retried.
    const changing = () => decision.login || confirmed.length > 0 || passwordTyped;

    this.#send(command);
    const outputStart = this.#cursor;
    for (;;) {
      const ev = await this.#waitNext(deadline, this.#platform);
      switch (ev.type) {
        case "prompt": {
          if (this.#prompt !== undefined && ev.prompt !== this.#prompt) {
            this.#abandon("prompt changed");
            throw new UnexpectedPrompt(
              { target, command, cause: `the prompt changed from '${this.#prompt}' to '${ev.prompt}'` },
              ev.prompt,
            );
          }
          const full = cleanTerminalText(this.#raw.slice(outputStart));
          return this.#finish(command, decision.canonical, full, confirmed, started);
        }
        case "login-password": {
          if (!secret || passwordTyped)
            throw await this.#abort(
              ev,
              command,
              `a login password prompt the step holds no (unused) LoginToken for`,
            );
          this.#channel.write(secret.reveal() + this.#platform.enter);
          this.transcript.sentSecret();
          this.#cursor = this.#raw.length;
          passwordTyped = true;
          continue;
        }
        case "confirm": {
          const { spec } = ev;
          const exception = opts.lastAttemptException;
          if (
            spec.id === "last-attempt-caution" &&
            exception !== undefined &&
            !exception.used &&
            exception.target === target &&
            decision.login &&
            decision.canonical.toLowerCase() === "hsm login" &&
            opts.token !== undefined &&
            !passwordTyped &&
            !confirmed.includes(spec.id)
          ) {
            // The sanctioned zeroize (src/guard/sanctioned-zeroize.ts): the one flow that fails the last login on purpose.
            exception.consume();
            this.transcript.event(
              `last-attempt caution answered under the sanctioned zeroize of ${exception.jobId}`,
            );
            this.#send("proceed");
            confirmed.push(spec.id);
            continue;
          }
          if (spec.answer === undefined)
            throw await this.#abort(
              ev,
              command,
              `the device asked '${spec.id}', which is never answered automatically`,
              spec.decline,
            );
          if (opts.confirm !== spec.answer || confirmed.includes(spec.id))
            throw await this.#abort(
              ev,
              command,
              `a '${spec.id}' confirmation the step did not declare`,
              spec.decline,
            );
          this.#send(spec.answer);
          confirmed.push(spec.id);
          continue;
        }
        case "password":
          throw await this.#abort(ev, command, "a password prompt that is not a login the guard authorized");
        case "refused":
          throw await this.#abort(ev, command, ev.why);
        case "foreign-prompt":
        case "unknown":
          throw await this.#abort(ev, command, "an unknown prompt");
        case "timeout": {
          this.#abandon(`command timed out after ${timeoutMs} ms`);
          const tail = redact(tailLines(ev.text, 2)).trim();
          throw new CommandTimeout({
            target,
            command,
            cause: `no prompt within ${timeoutMs} ms${tail ? ` (last output: ${JSON.stringify(tail)})` : " (no output)"}; outcome unknown`,
          });
        }
        case "closed":
          throw new ConnectionLost({
            target,
            command,
            cause: `connection lost mid-command (${ev.reason}); outcome unknown`,
            retryable: !changing(),
          });
      }
    }
  }

  /** Frame the reply: echo and prompt cut off, the footer found (a required one missing = unreadable: abandoned). */
  #finish(command: string, canonical: string, full: string, confirmed: string[], started: number): RunOutput {
    const p = this.#platform;
    const lines = full.split("\n");
    lines.pop(); // the prompt
    // Echo: a pty may echo the command as the first line; the device's own output never repeats it verbatim.
    if (lines.length > 0 && lines[0]?.trim() === command.trim()) lines.shift();
    // The prompt came back at the start of a line, so the output ended with that line end: keep it.
    const raw = lines.length > 0 ? `${redact(lines.join("\n"))}\n` : "";
    let footer: string | null = null;
    if (p.footer) {
      const all = [...raw.matchAll(new RegExp(p.footer.pattern.source, "gm"))];
      footer = all[all.length - 1]?.[0] ?? null;
      if (footer === null && p.footer.required) {
        // A reply without its footer (garbled or cut short) proves nothing about where the stream stands.
        const reason = "no 'Command Result' footer in the output (garbled or cut short)";
        this.#abandon(`unreadable reply to '${command}' (${reason})`);
        throw new ParseFailed({ target: this.target, command, cause: reason }, raw);
      }
    }
    return {
      command,
      canonical,
      raw,
      footer,
      notices: p.notices.filter((n) => n.pattern.test(raw)).map((n) => n.id),
      confirmed,
      durationMs: Date.now() - started,
    };
  }

  #send(text: string): void {
    // Nothing before a new command is ever read again: drop it, so a shell kept open for days (polling) does not
    // hold every byte it ever received.
    this.#raw = "";
    this.#cursor = 0;
    this.#channel.write(text + this.#platform.enter);
    this.transcript.sent(text);
  }

  /**
   * Stop: type the documented way out if there is one (and give the device a moment to take it and show its prompt,
   * so the decline is not lost to the close), mark unusable, close the channel. Returns the error to throw.
   */
  async #abort(ev: WaitEvent, command: string, what: string, decline?: string): Promise<DeviceOpError> {
    const tail = redact(tailLines(ev.text, 3));
    if (decline !== undefined && !this.#channel.closed) {
      this.#send(decline);
      await this.#waitNext(Date.now() + DECLINE_SETTLE_MS, this.#platform);
    }
    this.#abandon(what);
    return new UnexpectedPrompt(
      {
        target: this.target,
        command,
        cause: `stopped at ${what}${decline ? ` (answered '${decline}')` : ""}: ${JSON.stringify(tail.trim())}`,
      },
      tail,
    );
  }

  #abandon(reason: string): void {
    this.#unusable ??= reason;
    this.transcript.event(`session abandoned: ${reason}`);
    this.#channel.close();
  }

  #classify(text: string, platform: PlatformTable, other?: PlatformTable): WaitEvent | undefined {
    // A prompt may carry trailing blanks on real devices: the prompt is what is left of the last line without them.
    const last = lastLine(text).trimEnd();
    if (platform.prompt.test(last)) return { type: "prompt", text, prompt: last };
    if (other?.prompt.test(last)) return { type: "foreign-prompt", text, prompt: last };
    for (const r of platform.refusedPrompts)
      if (r.pattern.test(text)) return { type: "refused", text, why: r.why };
    for (const spec of platform.confirmations)
      if (spec.pattern.test(text)) return { type: "confirm", text, spec };
    for (const spec of platform.loginPasswordPrompts)
      if (spec.pattern.test(text)) return { type: "login-password", text };
    if (platform.otherPasswordPrompt.test(text)) return { type: "password", text };
    return undefined;
  }

  #waitNext(deadline: number, platform: PlatformTable, other?: PlatformTable): Promise<WaitEvent> {
    const settleMs = this.#opts.unknownPromptMs ?? DEFAULT_UNKNOWN_PROMPT_MS;
    return new Promise((resolve) => {
      let settle: NodeJS.Timeout | undefined;
      let timer: NodeJS.Timeout | undefined;
      const text = () => cleanTerminalText(this.#raw.slice(this.#cursor));
      const done = (ev: WaitEvent) => {
        clearTimeout(timer);
        clearTimeout(settle);
        this.#onChange = undefined;
        this.#onClosed = undefined;
        resolve(ev);
      };
      const evaluate = () => {
        const t = text();
        const ev = this.#classify(t, platform, other);
        if (ev) return done(ev);
        clearTimeout(settle);
        settle = undefined;
        // A chunk may end inside an escape sequence (a coloured prompt split in two): more is coming, so the partial
        // line is not yet a prompt nobody knows.
        if (INCOMPLETE_ESCAPE.test(this.#raw)) return;
        if (lastLine(t).trim() !== "")
          settle = setTimeout(() => done({ type: "unknown", text: text() }), settleMs);
      };
      this.#onChange = evaluate;
      this.#onClosed = (reason) => done({ type: "closed", text: text(), reason });
      timer = setTimeout(() => done({ type: "timeout", text: text() }), Math.max(0, deadline - Date.now()));
      if (this.#channel.closed)
        return done({ type: "closed", text: text(), reason: this.#channel.closeReason ?? "closed" });
      evaluate();
    });
  }
}

function describe(ev: WaitEvent): string {
  switch (ev.type) {
    case "confirm":
      return `confirmation '${ev.spec.id}'`;
    case "login-password":
    case "password":
      return "password prompt";
    case "foreign-prompt":
      return `prompt '${ev.prompt}'`;
    case "refused":
      return `prompt (${ev.why})`;
    default:
      return "prompt";
  }
}
