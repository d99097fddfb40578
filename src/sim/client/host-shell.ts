// Over 400 lines: each accepted command is a short case of one line parser, and they share the host's file-system
//  model.
// The shell of a simulated client host as a runbook uses it: a root prompt that runs `lunacm` (interactive or
// `-q`), `vtl`, and the few file commands needed to move certificates (`cat`, `cat > f <<EOF`, `cp`, `ls`). Anything
// else is refused: the twin is a Luna client, not a general shell, and must not pretend to run what it cannot.

import { redact } from "../../config/secret.ts";
import type { InteractiveShell, ShellIO } from "../shell-session.ts";
import { appCheck } from "./app-check.ts";
import { redactPasswordOptions, tokenize } from "./args.ts";
import { listDir, readFile, resolvePath, writeFile } from "./files.ts";
import { type CommandStep, LunacmSession, renderDone } from "./lunacm/session.ts";
import type { ClientHostModel } from "./model.ts";
import { footerLine } from "./render.ts";
import { runVtl } from "./vtl.ts";

const NOT_PERMITTED_STATUS = 126;

interface Ctx {
  user: string;
  session: number;
}

/** What a host command line asks for. */
type HostAction =
  | { kind: "output"; text: string; exitCode: number }
  | { kind: "lunacm-interactive" }
  | { kind: "lunacm-quiet"; step: CommandStep }
  | { kind: "heredoc"; path: string; delimiter: string }
  | { kind: "exit" };

const out = (text: string, exitCode = 0): HostAction => ({ kind: "output", text, exitCode });
const refused = (cmd: string): HostAction =>
  out(`bash: ${cmd}: command not permitted on this twin\n`, NOT_PERMITTED_STATUS);

/** The buffer ends inside a (non-empty) `-password` / `-p` option value. */
const PASSWORD_VALUE = /(^|\s)-p(a(s(s(w(o(r(d)?)?)?)?)?)?)?\s+("[^"]*|'[^']*|[^\s"']\S*)$/i;

const HEREDOC = /^\s*cat\s*>\s*(\S+)\s*<<-?\s*(['"]?)([A-Za-z_][A-Za-z0-9_]*)\2\s*$/;

/** Log a received command line: password options and every known secret value redacted. */
function logCommand(model: ClientHostModel, ctx: Ctx, shell: "host" | "lunacm", line: string): void {
  model.commandLog.push({
    at: Date.now(),
    session: ctx.session,
    user: ctx.user,
    shell,
    command: scrub(model, line),
  });
}

/** Remove passwords from text bound for a log: `-password x`, and any value the twin knows to be a password. */
function scrub(model: ClientHostModel, text: string): string {
  let result = redact(redactPasswordOptions(text));
  const secrets = new Set<string>();
  for (const appliance of model.appliances.values()) {
    if (appliance.hsmSoPassword) secrets.add(appliance.hsmSoPassword);
    // Fields other parts of the twin may add (appliance account, generated credentials): read defensively.
    const extra = appliance as {
      appliancePassword?: unknown;
      generatedCredentials?: Record<string, unknown>;
    };
    if (typeof extra.appliancePassword === "string") secrets.add(extra.appliancePassword);
    for (const v of Object.values(extra.generatedCredentials ?? {}))
      if (typeof v === "string") secrets.add(v);
    for (const p of appliance.partitions)
      for (const pw of Object.values(p.passwords)) if (pw) secrets.add(pw);
  }
  const ssh = model.host.credentials.ssh;
  if (ssh !== undefined && !ssh.startsWith("env:") && !ssh.startsWith("file:")) secrets.add(ssh);
  for (const secret of [...secrets].sort((a, b) => b.length - a.length))
    if (secret.length >= 4 && result.includes(secret)) result = result.split(secret).join("[REDACTED]");
  return result;
}

function basename(command: string): string {
  return command.slice(command.lastIndexOf("/") + 1);
}

function isTool(word: string, tool: "lunacm" | "vtl"): boolean {
  return word === tool || word === `/usr/safenet/lunaclient/bin/${tool}`;
}

/** Decide what one host command line does (without performing interactive parts). */
function hostAction(model: ClientHostModel, line: string, user: string): HostAction {
  const check = appCheck(model, line);
  if (check) return out(check.text, check.exitCode);
  const heredoc = HEREDOC.exec(line);
  if (heredoc) return { kind: "heredoc", path: resolvePath(heredoc[1]!, user), delimiter: heredoc[3]! };
  const tok = tokenize(line, { shellMeta: true });
  if (!tok.ok) {
    const first = line.trim().split(/[\s|;&<>]/)[0] ?? line.trim();
    return refused(first || line.trim());
  }
  const [cmd, ...args] = tok.tokens;
  if (cmd === undefined) return out("");
  if (cmd === "exit" || cmd === "logout") return { kind: "exit" };
  if (isTool(cmd, "lunacm")) {
    if (args.length === 0) return { kind: "lunacm-interactive" };
    if (args[0] !== "-q") return out(`Unknown command-line arguments: ${scrub(model, args.join(" "))}\n`, 1);
    if (args.length === 1) return out("Error: lunacm -q needs a command.\n", 1);
    const quoted = args.slice(1).map((a) => (/[\s"']/.test(a) || a === "" ? JSON.stringify(a) : a));
    const session = new LunacmSession(model);
    return { kind: "lunacm-quiet", step: endWhenDone(session.run(quoted.join(" ")), session) };
  }
  if (isTool(cmd, "vtl")) {
    const r = runVtl(model, args, user);
    return out(r.output, r.exitCode);
  }
  if (cmd === "cat") {
    if (args.length === 0) return refused("cat");
    let text = "";
    let status = 0;
    for (const arg of args) {
      const file = readFile(model, resolvePath(arg, user));
      if (file.ok) text += file.text;
      else {
        text += `cat: ${arg}: ${file.error}\n`;
        status = 1;
      }
    }
    return out(text, status);
  }
  if (cmd === "cp") {
    const [src, dst, extra] = args;
    if (src === undefined || dst === undefined || extra !== undefined || src.startsWith("-"))
      return out("cp: usage on this twin: cp <source> <destination>\n", 1);
    const from = readFile(model, resolvePath(src, user));
    if (!from.ok) return out(`cp: cannot stat '${src}': ${from.error}\n`, 1);
    let to = resolvePath(dst, user);
    if (listDir(model, to, user).ok) to = `${to}/${basename(resolvePath(src, user))}`;
    const written = writeFile(model, to, from.text, user);
    return written.ok ? out("") : out(`cp: cannot create regular file '${dst}': ${written.error}\n`, 1);
  }
  if (cmd === "ls") {
    const targets = args.filter((a) => !a.startsWith("-"));
    const dir = resolvePath(targets[0] ?? "~", user);
    const listing = listDir(model, dir, user);
    if (listing.ok) return out(listing.names.map((n) => `${n}\n`).join(""));
    const file = readFile(model, dir);
    if (file.ok) return out(`${targets[0]}\n`);
    return out(`ls: cannot access '${targets[0]}': No such file or directory\n`, 2);
  }
  return refused(cmd);
}

/** A one-shot lunacm process: its logins end with it, once the command (and any password prompt) is finished. */
function endWhenDone(step: CommandStep, session: LunacmSession): CommandStep {
  if (step.kind === "done") {
    session.end();
    return step;
  }
  return { kind: "password", prompt: step.prompt, resume: (pw) => endWhenDone(step.resume(pw), session) };
}

/** `lunacm -q` output: no banner, no prompt; exit status 0 only for `No Error`. */
function renderQuiet(step: Extract<CommandStep, { kind: "done" }>): { text: string; exitCode: number } {
  const footer = footerLine(step.footer);
  const text = step.body.length > 0 ? `${step.body.join("\n")}\n\n${footer}\n` : `${footer}\n`;
  return { text, exitCode: step.footer.kind === "ok" ? 0 : 1 };
}

/** Run one command non-interactively (exec channel): no stdin, so a password prompt is a cancelled command. */
export function execHostCommand(model: ClientHostModel, command: string, io: ShellIO, ctx: Ctx): void {
  const lines = command.split(/\r?\n/);
  const first = lines[0] ?? "";
  logCommand(model, ctx, "host", first);
  const action = hostAction(model, first, ctx.user);
  switch (action.kind) {
    case "output":
      io.write(action.text);
      io.close(action.exitCode);
      return;
    case "exit":
      io.close(0);
      return;
    case "lunacm-interactive": {
      // No terminal and no input: lunacm starts, prints its banner and prompt, reads end-of-file and leaves.
      const session = new LunacmSession(model);
      io.write(`${session.banner()}lunacm:>\n`);
      session.end();
      io.close(0);
      return;
    }
    case "lunacm-quiet": {
      let step = action.step;
      while (step.kind === "password") {
        io.write(`${step.prompt}\n`);
        step = step.resume(null);
      }
      const r = renderQuiet(step);
      io.write(r.text);
      io.close(r.exitCode);
      return;
    }
    case "heredoc": {
      const end = lines.indexOf(action.delimiter, 1);
      if (end < 0) {
        io.write(`bash: warning: here-document delimited by end-of-file (wanted \`${action.delimiter}')\n`);
      }
      const body = lines.slice(1, end < 0 ? undefined : end);
      const written = writeFile(model, action.path, body.map((l) => `${l}\n`).join(""), ctx.user);
      if (!written.ok) io.write(`bash: ${action.path}: ${written.error}\n`);
      io.close(written.ok ? 0 : 1);
      return;
    }
  }
}

type Mode =
  | { kind: "host" }
  | { kind: "lunacm"; session: LunacmSession }
  | {
      kind: "password";
      step: Extract<CommandStep, { kind: "password" }>;
      after: "host" | "lunacm";
      quiet: boolean;
    }
  | { kind: "heredoc"; path: string; delimiter: string; lines: string[] };

/** An interactive login on the client host. */
export class ClientHostShell implements InteractiveShell {
  private mode: Mode = { kind: "host" };
  private lunacm: LunacmSession | undefined;
  private buffer = "";
  private lastWasCr = false;
  private escape = false;
  private closed = false;

  constructor(
    private readonly model: ClientHostModel,
    private readonly io: ShellIO,
    private readonly ctx: { user: string; session: number; pty: boolean },
  ) {}

  start(): void {
    this.io.write(`Last login: ${new Date().toUTCString()}\n`);
    this.prompt();
  }

  input(data: string): void {
    for (const ch of data) {
      if (this.closed) return;
      if (this.escape) {
        // ANSI escape sequences (arrow keys): swallow until the final letter.
        if (/[A-Za-z~]/.test(ch)) this.escape = false;
        continue;
      }
      if (ch === "\n" && this.lastWasCr) {
        this.lastWasCr = false;
        continue;
      }
      this.lastWasCr = ch === "\r";
      if (ch === "\r" || ch === "\n") {
        this.echo("\n");
        const line = this.buffer;
        this.buffer = "";
        this.line(line);
      } else if (ch === "\x7f" || ch === "\b") {
        if (this.buffer.length > 0) {
          this.buffer = this.buffer.slice(0, -1);
          this.echo("\b \b");
        }
      } else if (ch === "\x03") {
        this.buffer = "";
        this.echo("^C\n");
        this.interrupt();
      } else if (ch === "\x04") {
        if (this.buffer === "") this.eof();
      } else if (ch === "\x15") {
        this.echo("\b \b".repeat(this.buffer.length));
        this.buffer = "";
      } else if (ch === "\x1b") {
        this.escape = true;
      } else if (ch >= " ") {
        this.buffer += ch;
        // The password prompt, and the value of a `-password` option as it is typed, echo as '*'.
        this.echo(this.mode.kind === "password" || PASSWORD_VALUE.test(this.buffer) ? "*" : ch);
      }
    }
  }

  end(): void {
    this.closed = true;
    this.lunacm?.end();
  }

  private echo(text: string): void {
    if (this.ctx.pty) this.io.write(text);
  }

  private prompt(): void {
    switch (this.mode.kind) {
      case "host":
        this.io.write(`[${this.ctx.user}@${this.model.name} ~]${this.ctx.user === "root" ? "#" : "$"} `);
        return;
      case "lunacm":
        this.io.write("lunacm:>");
        return;
      case "heredoc":
        this.io.write("> ");
        return;
      case "password":
        return;
    }
  }

  private line(line: string): void {
    const mode = this.mode;
    switch (mode.kind) {
      case "host":
        this.hostLine(line);
        return;
      case "lunacm":
        this.lunacmLine(mode.session, line);
        return;
      case "password":
        // The password itself is never logged nor echoed.
        this.finishStep(mode.step.resume(line), mode.after, mode.quiet);
        return;
      case "heredoc":
        if (line === mode.delimiter) {
          const written = writeFile(
            this.model,
            mode.path,
            mode.lines.map((l) => `${l}\n`).join(""),
            this.ctx.user,
          );
          if (!written.ok) this.io.write(`bash: ${mode.path}: ${written.error}\n`);
          this.mode = { kind: "host" };
        } else mode.lines.push(line);
        this.prompt();
        return;
    }
  }

  private hostLine(line: string): void {
    if (line.trim() !== "") logCommand(this.model, this.ctx, "host", line);
    const action = hostAction(this.model, line, this.ctx.user);
    switch (action.kind) {
      case "output":
        this.io.write(action.text);
        this.prompt();
        return;
      case "exit":
        this.io.write("logout\n");
        this.close();
        return;
      case "lunacm-interactive": {
        this.lunacm?.end();
        const session = new LunacmSession(this.model);
        this.lunacm = session;
        this.io.write(session.banner());
        this.mode = { kind: "lunacm", session };
        this.prompt();
        return;
      }
      case "lunacm-quiet":
        this.finishStep(action.step, "host", true);
        return;
      case "heredoc":
        this.mode = { kind: "heredoc", path: action.path, delimiter: action.delimiter, lines: [] };
        this.prompt();
        return;
    }
  }

  private lunacmLine(session: LunacmSession, line: string): void {
    const trimmed = line.trim();
    if (trimmed !== "") logCommand(this.model, this.ctx, "lunacm", line);
    if (/^(exit|quit)$/i.test(trimmed)) {
      session.end();
      this.lunacm = undefined;
      this.io.write("\n");
      this.mode = { kind: "host" };
      this.prompt();
      return;
    }
    if (trimmed === "") {
      this.prompt();
      return;
    }
    this.finishStep(session.run(trimmed), "lunacm", false);
  }

  /** Show a finished command, or prompt for the password it needs. */
  private finishStep(step: CommandStep, after: "host" | "lunacm", quiet: boolean): void {
    if (step.kind === "password") {
      this.io.write(quiet ? step.prompt : `\n${step.prompt}`);
      this.mode = { kind: "password", step, after, quiet };
      return;
    }
    this.io.write(quiet ? renderQuiet(step).text : renderDone(step));
    this.mode =
      after === "lunacm" && this.lunacm ? { kind: "lunacm", session: this.lunacm } : { kind: "host" };
    this.prompt();
  }

  private interrupt(): void {
    const mode = this.mode;
    if (mode.kind === "password") {
      this.finishStep(mode.step.resume(null), mode.after, mode.quiet);
      return;
    }
    if (mode.kind === "heredoc") this.mode = { kind: "host" };
    this.prompt();
  }

  private eof(): void {
    if (this.mode.kind === "password") {
      this.interrupt();
      return;
    }
    if (this.mode.kind === "lunacm") {
      this.line("exit");
      return;
    }
    if (this.mode.kind === "host") {
      this.io.write("logout\n");
      this.close();
    }
  }

  private close(): void {
    this.closed = true;
    this.lunacm?.end();
    this.io.close(0);
  }
}
