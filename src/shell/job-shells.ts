// The shells of one job: a device's lunash, a client host's lunacm, and a client host's OS shell (where `vtl` runs).
// "Session" means one thing in lunafleet: one interactive shell on a device or client host (ShellSession), the
// device-side session a login lives in. JobShells owns a job's sessions: it opens each at most once per target and
// lends it to every step (and to the login guard, so a step's commands after a login run in the logged-in shell),
// opens a fresh one when the old one is done (lost, aborted, out of step after an unreadable reply, or on a
// connection that has since been replaced — nothing is replayed into it, so no login survives), and closes them all,
// confirmed by the device, when the job ends. Connections come from the worker's pool through this job's lease.
import type { Fleet } from "../config/schema.ts";
import type { PoolLease } from "../transport/lease.ts";
import { DEFAULT_LOCAL_LUNACM, type LocalProgram, openLocalPty } from "../transport/local-pty.ts";
import { clientHostTarget, deviceTarget, type SshTarget } from "../transport/target.ts";
import { CommandRefused } from "./errors.ts";
import { hostShellPlatform, lunacmPlatform, lunashPlatform } from "./platform.ts";
import { ShellSession } from "./session.ts";

/** A local client host: lunacm under node-pty on this machine. */
export interface LocalTarget {
  kind: "local";
  name: string;
  commandTimeoutMs: number;
}

/** Where a job's shells go, by fleet name. */
export interface ShellTargets {
  device(name: string): SshTarget;
  /** A remote client host's SSH target, or a local one (lunacm under a pty on this machine). */
  clientHost(name: string): SshTarget | LocalTarget;
}

/** Targets as the fleet file declares them. */
function fleetTargets(fleet: Fleet): ShellTargets {
  return {
    device(name) {
      const device = fleet.devices.find((d) => d.name === name);
      if (!device) throw new Error(`unknown device '${name}'`);
      return deviceTarget(fleet, device);
    },
    clientHost(name) {
      const host = fleet.clientHosts.find((h) => h.name === name);
      if (!host) throw new Error(`unknown client host '${name}'`);
      return host.local
        ? { kind: "local", name, commandTimeoutMs: fleet.defaults.timeouts.commandMs }
        : clientHostTarget(fleet, host);
    },
  };
}

export interface JobShellsOptions {
  lease: PoolLease;
  targets: ShellTargets;
  /** Silence after a partial line that makes it an unknown prompt (ShellSession default otherwise). */
  unknownPromptMs?: number;
  /** How a `local: true` client host starts lunacm. */
  localLunacm?: LocalProgram;
}

type Kind = "lunash" | "lunacm" | "host";

export class JobShells {
  readonly #opts: JobShellsOptions;
  readonly #sessions = new Map<string, ShellSession>();
  readonly #opening = new Map<string, Promise<ShellSession>>();
  #closed = false;

  constructor(opts: JobShellsOptions) {
    this.#opts = opts;
  }

  /** A job's shells on a fleet, through a lease on the worker's pool. */
  static forFleet(
    fleet: Fleet,
    lease: PoolLease,
    opts: Omit<JobShellsOptions, "lease" | "targets"> = {},
  ): JobShells {
    return new JobShells({ ...opts, lease, targets: fleetTargets(fleet) });
  }

  /** The lunash session of a device. */
  lunash(device: string): Promise<ShellSession> {
    return this.#get("lunash", this.#opts.targets.device(device));
  }

  /** lunacm on a client host (over SSH, started from its OS shell, or local under a pty). */
  lunacm(host: string): Promise<ShellSession> {
    return this.#get("lunacm", this.#opts.targets.clientHost(host));
  }

  /** The OS shell of a remote client host, where `vtl` runs (the command policy allows vtl and lunacm only). */
  async hostShell(host: string): Promise<ShellSession> {
    const target = this.#opts.targets.clientHost(host);
    if (target.kind === "local")
      throw new CommandRefused(
        { target: host },
        "local-host-shell",
        "the client host is local: its OS shell is not driven (only lunacm under a pty)",
      );
    return this.#get("host", target);
  }

  /** Shells of this job that are open now (through the lease). */
  get openChannels(): number {
    return this.#opts.lease.openChannels;
  }

  /** Leave every session politely (`exit`), then release the lease: every channel closed and confirmed. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#opening.values()]);
    for (const s of this.#sessions.values()) await s.close();
    this.#sessions.clear();
    await this.#opts.lease.release();
  }

  async #get(kind: Kind, target: SshTarget | LocalTarget): Promise<ShellSession> {
    const key = `${kind}:${target.name}`;
    const s = this.#sessions.get(key);
    if (s && this.#reusable(s, target)) return s;
    if (s) {
      this.#sessions.delete(key);
      void s.close();
    }
    const pending = this.#opening.get(key);
    if (pending) return pending;
    if (this.#closed)
      throw new Error(`the shells of this job are closed; no new ${kind} session to ${target.name}`);
    const p = this.#open(kind, target)
      .then((session) => {
        this.#sessions.set(key, session);
        return session;
      })
      .finally(() => this.#opening.delete(key));
    this.#opening.set(key, p);
    return p;
  }

  /** Usable, and (over SSH) still on the pool's live connection: a reconnect means a new device-side session. */
  #reusable(s: ShellSession, target: SshTarget | LocalTarget): boolean {
    if (!s.usable) return false;
    if (target.kind === "local") return true;
    const live = this.#opts.lease.peek(target.name);
    return live !== undefined && live.generation === s.generation;
  }

  async #open(kind: Kind, target: SshTarget | LocalTarget): Promise<ShellSession> {
    const common = {
      target: target.name,
      ...(this.#opts.unknownPromptMs !== undefined ? { unknownPromptMs: this.#opts.unknownPromptMs } : {}),
    };
    if (target.kind === "local")
      return ShellSession.open(openLocalPty(target.name, this.#opts.localLunacm ?? DEFAULT_LOCAL_LUNACM), {
        ...common,
        platform: lunacmPlatform,
        commandTimeoutMs: target.commandTimeoutMs,
      });
    const { channel, generation } = await this.#opts.lease.openShell(target);
    const timing = {
      commandTimeoutMs: target.timeouts.commandMs,
      openTimeoutMs: target.timeouts.commandMs,
      generation,
    };
    if (kind === "host")
      return ShellSession.open(channel, { ...common, ...timing, platform: hostShellPlatform });
    if (kind === "lunash")
      return ShellSession.open(channel, { ...common, ...timing, platform: lunashPlatform });
    // lunacm over SSH: the first prompt may be the host's OS shell, from which lunacm is started.
    return ShellSession.open(channel, {
      ...common,
      ...timing,
      platform: lunacmPlatform,
      via: hostShellPlatform,
    });
  }
}
