// The sessions of one job. SSH connections come from the worker's one shared SshPool (reused across jobs: no new
// TCP + key exchange + authentication per job), but the interactive shells on them belong to the job that holds the
// device's lock: they are opened inside the job and closed, and their close confirmed by the device, before the lock
// is released. A shell that outlived its lock could carry a login state into another job's time on the device, and
// two processes' shells on one device would overlap in its session log.

import type { Fleet } from "../config/schema.ts";
import { type ShellSessionProvider, shellSessionProvider } from "../engine/sessions.ts";
import { ShellSessions } from "../shell/sessions.ts";
import type { ShellChannel } from "../transport/channel.ts";
import type { SshConnection } from "../transport/connection.ts";
import type { SshPool } from "../transport/pool.ts";
import type { SshTarget } from "../transport/target.ts";

const CLOSE_CONFIRM_MS = 3000;

export interface JobSessionScope {
  provider: ShellSessionProvider;
  /** The job's shells (the login guard logs in on these, so the step's next commands run in that shell). */
  sessions: ShellSessions;
  /** Shells opened by this job and not yet closed. */
  readonly openChannels: number;
  /** Close every shell this job opened and wait until each channel has closed (or the wait times out). */
  close(): Promise<void>;
}

export interface JobSessionHooks {
  onChannelOpen?: () => void;
  onChannelClose?: () => void;
}

export function openJobSessions(fleet: Fleet, pool: SshPool, hooks: JobSessionHooks = {}): JobSessionScope {
  const channels = new Set<ShellChannel>();
  const closed = new Map<ShellChannel, Promise<void>>();
  const track = (ch: ShellChannel) => {
    channels.add(ch);
    hooks.onChannelOpen?.();
    closed.set(
      ch,
      new Promise<void>((resolve) =>
        ch.onClose(() => {
          channels.delete(ch);
          hooks.onChannelClose?.();
          resolve();
        }),
      ),
    );
    return ch;
  };
  const wrapConnection = (conn: SshConnection): SshConnection =>
    new Proxy(conn, {
      get(target, prop) {
        if (prop === "openShell") return async () => track(await target.openShell());
        const v = Reflect.get(target, prop, target);
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
  const jobPool = new Proxy(pool, {
    get(target, prop) {
      if (prop === "connection") return async (t: SshTarget) => wrapConnection(await target.connection(t));
      if (prop === "closeAll") return async () => {}; // the shared pool outlives the job
      const v = Reflect.get(target, prop, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  const sessions = new ShellSessions({ pool: jobPool });
  const provider = shellSessionProvider(fleet, { pool: jobPool, sessions });
  return {
    provider,
    sessions,
    get openChannels() {
      return channels.size;
    },
    async close() {
      await Promise.allSettled([provider.close(), sessions.closeAll()]);
      // Anything still open (a shell the session layer did not hand back): close the channel itself.
      for (const ch of channels) ch.close();
      const pending = [...closed.values()];
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(pending),
        new Promise<void>((r) => {
          timer = setTimeout(r, CLOSE_CONFIRM_MS);
        }),
      ]);
      clearTimeout(timer);
    },
  };
}
