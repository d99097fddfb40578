// Open shells by target, reused across the steps of a job and across polls: the engine's ctx.lunash(device) and
// ctx.lunacm(host) come from here. A shell is reused only while it is usable and lives on the pool's current
// connection; after a reconnect a new shell is opened and nothing is replayed into it (a login that lived in the
// old shell is gone: `generation` tells the guard so).

import { DEFAULT_LOCAL_LUNACM, type LocalProgram, openLocalPty } from "../transport/local-pty.ts";
import type { SshPool } from "../transport/pool.ts";
import type { SshTarget } from "../transport/target.ts";
import type { OutputParser } from "./output-parser.ts";
import { hostShellPlatform, lunacmPlatform, lunashPlatform } from "./platform.ts";
import { ShellSession } from "./session.ts";

export interface ShellSessionsOptions {
  pool: SshPool;
  unknownPromptMs?: number;
  parser?: OutputParser | null;
  /** How a `local: true` client host starts lunacm. */
  localLunacm?: LocalProgram;
}

/** A local client host: lunacm under node-pty on this machine. */
export interface LocalTarget {
  kind: "local";
  name: string;
  commandTimeoutMs: number;
}

export class ShellSessions {
  readonly #opts: ShellSessionsOptions;
  readonly #sessions = new Map<string, ShellSession>();
  readonly #opening = new Map<string, Promise<ShellSession>>();

  constructor(opts: ShellSessionsOptions) {
    this.#opts = opts;
  }

  /** The lunash shell of a device. */
  lunash(target: SshTarget): Promise<ShellSession> {
    return this.#get(`lunash:${target.name}`, target, () => this.#openSsh(target, "lunash"));
  }

  /** lunacm on a client host (over SSH, through its OS shell, or local under a pty). */
  lunacm(target: SshTarget | LocalTarget): Promise<ShellSession> {
    if (target.kind === "local")
      return this.#get(`lunacm:${target.name}`, undefined, () =>
        ShellSession.open(openLocalPty(target.name, this.#opts.localLunacm ?? DEFAULT_LOCAL_LUNACM), {
          target: target.name,
          platform: lunacmPlatform,
          commandTimeoutMs: target.commandTimeoutMs,
          ...this.#common(),
        }),
      );
    return this.#get(`lunacm:${target.name}`, target, () => this.#openSsh(target, "lunacm"));
  }

  #common(): { unknownPromptMs?: number; parser?: OutputParser | null } {
    const o: { unknownPromptMs?: number; parser?: OutputParser | null } = {};
    if (this.#opts.unknownPromptMs !== undefined) o.unknownPromptMs = this.#opts.unknownPromptMs;
    if (this.#opts.parser !== undefined) o.parser = this.#opts.parser;
    return o;
  }

  async #get(
    key: string,
    target: SshTarget | undefined,
    open: () => Promise<ShellSession>,
  ): Promise<ShellSession> {
    const s = this.#sessions.get(key);
    const live = target ? this.#opts.pool.peek(target.name) : undefined;
    if (s?.usable && (!target || (live && live.generation === s.generation))) return s;
    if (s) {
      this.#sessions.delete(key);
      void s.close();
    }
    const pending = this.#opening.get(key);
    if (pending) return pending;
    const p = open()
      .then((session) => {
        this.#sessions.set(key, session);
        return session;
      })
      .finally(() => this.#opening.delete(key));
    this.#opening.set(key, p);
    return p;
  }

  async #openSsh(target: SshTarget, kind: "lunash" | "lunacm"): Promise<ShellSession> {
    const conn = await this.#opts.pool.connection(target);
    const channel = await conn.openShell();
    return ShellSession.open(channel, {
      target: target.name,
      platform: kind === "lunash" ? lunashPlatform : lunacmPlatform,
      ...(kind === "lunacm" ? { via: hostShellPlatform } : {}),
      commandTimeoutMs: target.timeouts.commandMs,
      openTimeoutMs: target.timeouts.commandMs,
      generation: conn.generation,
      ...this.#common(),
    });
  }

  async closeAll(): Promise<void> {
    await Promise.allSettled([...this.#opening.values()]);
    for (const s of this.#sessions.values()) await s.close();
    this.#sessions.clear();
  }
}
