// A `local: true` client host: lunacm runs on this machine under a pseudo-terminal (node-pty), and the shell driver
// talks to it through the same ShellChannel as an SSH shell. No shell sits in between: the program is started
// directly, so nothing typed can reach an OS shell.
import pty from "node-pty";
import { BaseShellChannel, type ShellChannel } from "./channel.ts";
import { ConnectionLost } from "./errors.ts";

export interface LocalProgram {
  /** Program to start, default `lunacm` (found on PATH). */
  file: string;
  args: string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

export const DEFAULT_LOCAL_LUNACM: LocalProgram = { file: "lunacm", args: [] };

class LocalPtyChannel extends BaseShellChannel {
  readonly #proc: pty.IPty;

  constructor(target: string, proc: pty.IPty) {
    super(target);
    this.#proc = proc;
    proc.onData((d) => this.emitData(d));
    proc.onExit(({ exitCode, signal }) =>
      this.markClosed(`local program exited (code ${exitCode}${signal ? `, signal ${signal}` : ""})`),
    );
  }

  write(data: string): void {
    if (!this.closed) this.#proc.write(data);
  }

  close(): void {
    if (this.closed) return;
    this.markClosed("closed by lunafleet");
    try {
      this.#proc.kill();
    } catch {
      // already gone
    }
  }
}

/** Start `program` under a pty for client host `target`. */
export function openLocalPty(target: string, program: LocalProgram = DEFAULT_LOCAL_LUNACM): ShellChannel {
  try {
    const proc = pty.spawn(program.file, program.args, {
      name: "vt100",
      cols: 512,
      rows: 200,
      cwd: program.cwd ?? process.cwd(),
      env: (program.env ?? process.env) as Record<string, string>,
    });
    return new LocalPtyChannel(target, proc);
  } catch (err) {
    throw new ConnectionLost({ target, cause: `cannot start ${program.file}: ${(err as Error).message}` });
  }
}
