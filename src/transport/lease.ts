// A job's lease on the worker's shared SSH pool. Connections stay the pool's (reused across jobs: no new TCP + key
// exchange + authentication per job); the interactive shells opened through the lease are the job's, and release()
// closes every one still open and waits until each has closed before returning. The worker releases the lease before
// it gives up the job's device locks: a shell that outlived its lock could carry a login into another job's time on
// the device, and two jobs' shells on one device would overlap in its session log.
import type { ShellChannel } from "./channel.ts";
import type { SshConnection } from "./connection.ts";
import type { SshPool } from "./pool.ts";
import type { SshTarget } from "./target.ts";

/** How long release() waits for the devices to confirm the shells closed before it returns anyway. */
const CLOSE_CONFIRM_MS = 3000;

export interface LeaseHooks {
  onChannelOpen?: () => void;
  onChannelClose?: () => void;
}

/** An interactive shell opened through a lease, and the connection generation it lives on. */
export interface LeasedShell {
  channel: ShellChannel;
  generation: number;
}

export class PoolLease {
  readonly #pool: SshPool;
  readonly #hooks: LeaseHooks;
  readonly #open = new Set<ShellChannel>();
  readonly #closed = new Map<ShellChannel, Promise<void>>();
  #released = false;

  constructor(pool: SshPool, hooks: LeaseHooks = {}) {
    this.#pool = pool;
    this.#hooks = hooks;
  }

  /** The pool's connection to `target` (shared; the lease never closes it). */
  connection(target: SshTarget): Promise<SshConnection> {
    if (this.#released)
      return Promise.reject(new Error(`pool lease released; no connection to ${target.name}`));
    return this.#pool.connection(target);
  }

  /** The live connection for a target, if any (no connecting). */
  peek(name: string): SshConnection | undefined {
    return this.#pool.peek(name);
  }

  /** Open an interactive shell on the pool's connection to `target`; it belongs to this lease until it closes. */
  async openShell(target: SshTarget): Promise<LeasedShell> {
    const conn = await this.connection(target);
    const channel = await conn.openShell();
    if (this.#released) {
      channel.close();
      throw new Error(`pool lease released while a shell to ${target.name} was opening`);
    }
    this.#open.add(channel);
    this.#hooks.onChannelOpen?.();
    this.#closed.set(
      channel,
      new Promise<void>((resolve) =>
        channel.onClose(() => {
          this.#open.delete(channel);
          this.#hooks.onChannelClose?.();
          resolve();
        }),
      ),
    );
    return { channel, generation: conn.generation };
  }

  /** Shells opened through this lease and not yet closed. */
  get openChannels(): number {
    return this.#open.size;
  }

  /**
   * Close every shell still open and wait until each has closed (or `confirmMs` passed). Callers close their
   * sessions politely first (`exit`); this is the backstop. The lease opens nothing afterwards.
   */
  async release(confirmMs = CLOSE_CONFIRM_MS): Promise<void> {
    this.#released = true;
    for (const ch of this.#open) ch.close();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(this.#closed.values()),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, confirmMs);
      }),
    ]);
    clearTimeout(timer);
  }
}
