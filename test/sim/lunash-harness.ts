// Drives a LunashHost directly through a ShellIO that collects what the appliance writes (the SSH carrier is
// someone else's and has its own tests).
import { readFileSync } from "node:fs";
import { vi } from "vitest";
import { parseFleet } from "../../src/config/load.ts";
import type { Fleet } from "../../src/config/schema.ts";
import { createApplianceState } from "../../src/sim/appliance/factory.ts";
import { LunashHost, type LunashOptions } from "../../src/sim/appliance/lunash.ts";
import type { InteractiveShell, ShellIO } from "../../src/sim/shell-session.ts";
import type { ApplianceState } from "../../src/sim/state.ts";

export class CollectingIO implements ShellIO {
  text = "";
  closed = false;
  destroyed = false;
  exitCode: number | undefined;

  write(text: string): void {
    if (this.closed || this.destroyed) throw new Error("write after close");
    this.text += text;
  }

  close(exitCode?: number): void {
    this.closed = true;
    this.exitCode = exitCode;
  }

  destroy(): void {
    this.destroyed = true;
  }

  get ended(): boolean {
    return this.closed || this.destroyed;
  }
}

/**
 * Wait until `cond` holds. Under fake timers (a test that drives the appliance's clock) the wait moves that clock in
 * 2 ms steps, so a boot of N ms completes after N ms of the test's time whatever the machine's load, and the bound is
 * in that time too. On real timers there is no wall-clock deadline of its own, which load could beat: the test's
 * timeout is the hang guard.
 */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  if (vi.isFakeTimers()) {
    for (let waited = 0; !cond(); waited += 2) {
      if (waited > timeoutMs)
        throw new Error(`${what} did not happen within ${timeoutMs} ms of the test's clock`);
      await vi.advanceTimersByTimeAsync(2);
    }
    return;
  }
  while (!cond()) await new Promise((r) => setTimeout(r, 2));
}

export function demoFleet(): Fleet {
  const res = parseFleet(readFileSync(new URL("../../config/demo.yaml", import.meta.url), "utf8"));
  if (!res.ok) throw new Error(`demo fleet invalid: ${JSON.stringify(res.issues)}`);
  return res.fleet;
}

export async function demoAppliance(name = "hsm-a1", now?: Date): Promise<ApplianceState> {
  const fleet = demoFleet();
  const device = fleet.devices.find((d) => d.name === name);
  if (!device) throw new Error(`no ${name} in demo fleet`);
  return createApplianceState(fleet, device, now ? { now } : {});
}

let nextSession = 1;

/** An interactive session with helpers to send a line and wait for the next prompt. */
export class Driver {
  readonly io = new CollectingIO();
  readonly shell: InteractiveShell;
  readonly prompt: string;
  #mark = 0;

  constructor(
    readonly host: LunashHost,
    opts: { pty?: boolean; user?: string } = {},
  ) {
    this.prompt = `[${host.state.hostname}] lunash:>`;
    this.shell = host.openShell(this.io, {
      user: opts.user ?? "admin",
      session: nextSession++,
      pty: opts.pty ?? false,
    });
  }

  static async open(state: ApplianceState, opts: { pty?: boolean } & LunashOptions = {}): Promise<Driver> {
    const d = new Driver(new LunashHost(state, opts), opts);
    d.shell.start();
    await d.untilPrompt();
    return d;
  }

  /** Output since the previous `send`/`answer`. */
  get last(): string {
    return this.io.text.slice(this.#mark);
  }

  async untilPrompt(): Promise<string> {
    await waitFor(() => this.io.text.endsWith(this.prompt) || this.io.ended, "the lunash prompt");
    return this.last;
  }

  /** Send a command line and return everything up to and including the next prompt (or the session end). */
  async send(line: string): Promise<string> {
    this.#mark = this.io.text.length;
    this.shell.input(`${line}\r`);
    return this.untilPrompt();
  }

  /** Send a line and wait until the output ends with `until` (a prompt of a confirmation or password). */
  async sendUntil(line: string, until: string): Promise<string> {
    this.#mark = this.io.text.length;
    this.shell.input(`${line}\r`);
    await waitFor(() => this.io.text.endsWith(until) || this.io.ended, JSON.stringify(until));
    return this.last;
  }
}
