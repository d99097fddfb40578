// The lunafleet side of the benchmark: a fresh sweep (connect with the pinned host key, open lunash, `hsm show`,
// parse, disconnect) and repeated sweeps over shells that stay open. Every answer is checked against the device's
// known serial: a sweep that "succeeds" with the wrong data would measure nothing.

import { parsers } from "../parsers/index.ts";
import type { Device, Fleet } from "../src/config/index.ts";
import { JobShells, lunashPlatform, ShellSession, sendCommand } from "../src/shell/index.ts";
import { connectSsh, deviceTarget, SshPool, type SshTarget } from "../src/transport/index.ts";

export interface SweepFigures {
  devices: number;
  ok: number;
  errors: string[];
  wallMs: number;
  /** Client CPU (user + system) of this process during the sweep, in ms. */
  cpuMs: number;
  /** Per-device (or per-command) latencies in ms, sorted ascending. */
  latenciesMs: number[];
  /** Highest RSS sampled during the sweep, bytes. */
  peakRss: number;
}

/** Run `fn` over `items` with at most `limit` in flight. */
export async function mapLimit<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** Samples RSS while a phase runs (the peak is what matters, and maxRSS only ever grows over the process). */
export class RssSampler {
  #peak = 0;
  readonly #timer: NodeJS.Timeout;
  // Each sample reads /proc: every 20 ms it cost the measured process about 1 % of its time.
  constructor(intervalMs = 50) {
    this.#sample();
    this.#timer = setInterval(() => this.#sample(), intervalMs);
  }
  #sample(): void {
    const rss = process.memoryUsage.rss();
    if (rss > this.#peak) this.#peak = rss;
  }
  stop(): number {
    clearInterval(this.#timer);
    this.#sample();
    return this.#peak;
  }
}

function cpuMsSince(start: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1000;
}

/** `hsm show` on an open session; throws unless it parsed and names the expected serial. */
async function hsmShow(session: ShellSession, device: Device): Promise<void> {
  const { reply } = await sendCommand(session, "hsm show", parsers.hsmShow);
  if (!reply.ok) throw new Error(`${device.name}: hsm show: device error ${reply.error.message}`);
  if (reply.value.serial !== device.serial)
    throw new Error(
      `${device.name}: hsm show reported serial ${reply.value.serial}, expected ${device.serial}`,
    );
}

function describeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

async function measured(
  items: readonly Device[],
  concurrency: number,
  fn: (device: Device) => Promise<void>,
): Promise<SweepFigures> {
  const latencies: number[] = [];
  const errors: string[] = [];
  const rss = new RssSampler();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await mapLimit(items, concurrency, async (device) => {
    const t = performance.now();
    try {
      await fn(device);
      latencies.push(performance.now() - t);
    } catch (err) {
      errors.push(describeError(err));
    }
  });
  const wallMs = performance.now() - t0;
  const cpuMs = cpuMsSince(cpu0);
  const peakRss = rss.stop();
  latencies.sort((a, b) => a - b);
  return {
    devices: items.length,
    ok: latencies.length,
    errors,
    wallMs,
    cpuMs,
    latenciesMs: latencies,
    peakRss,
  };
}

/**
 * Fresh sweep: for every device a new SSH connection (host key checked against the pin before the password goes
 * out), a lunash shell, `hsm show` parsed, `exit`, disconnect. The same transport and driver code SshPool and
 * JobShells use, without keeping anything open.
 */
export function freshSweep(fleet: Fleet, concurrency: number): Promise<SweepFigures> {
  return measured(fleet.devices, concurrency, async (device) => {
    const target: SshTarget = deviceTarget(fleet, device);
    const conn = await connectSsh(target);
    try {
      const channel = await conn.openShell();
      const session = await ShellSession.open(channel, {
        target: target.name,
        platform: lunashPlatform,
        commandTimeoutMs: target.timeouts.commandMs,
        generation: conn.generation,
      });
      await hsmShow(session, device);
      await session.close();
    } finally {
      conn.close();
    }
  });
}

/** The pool and shells of the reuse phase: opened once, then swept repeatedly. */
export class OpenFleet {
  readonly pool = new SshPool({ backoff: { attempts: 1 } });
  readonly shells: JobShells;
  constructor(readonly fleet: Fleet) {
    this.shells = JobShells.forFleet(fleet, this.pool.lease());
  }

  /** Connect and open lunash on every device through SshPool/JobShells (timed like a sweep, one `hsm show`). */
  open(concurrency: number): Promise<SweepFigures> {
    return measured(this.fleet.devices, concurrency, async (device) => {
      const session = await this.shells.lunash(device.name);
      await hsmShow(session, device);
    });
  }

  /** `rounds` sweeps of `hsm show` + parse over the open shells; a reconnect would show up as a generation change. */
  async reuse(concurrency: number, rounds: number): Promise<SweepFigures> {
    const generations = new Map<string, number | undefined>();
    for (const device of this.fleet.devices)
      generations.set(device.name, this.pool.peek(device.name)?.generation);
    const work: Device[] = [];
    for (let r = 0; r < rounds; r++) work.push(...this.fleet.devices);
    const figures = await measured(work, concurrency, async (device) => {
      const session = await this.shells.lunash(device.name);
      if (session.generation !== generations.get(device.name))
        throw new Error(`${device.name}: the shell was reopened on a new connection (not a reuse)`);
      await hsmShow(session, device);
    });
    return figures;
  }

  async close(): Promise<void> {
    await this.shells.close();
    await this.pool.closeAll();
  }
}
