// Real SSH sessions to a fleet (in tests, the twin's): one pool, the shell sessions over it, and the engine's session
// provider, closed in the order that drops nothing half-used (provider, then shells, then the pool).
//
//   sessions = fleetSessions(twin.fleet);   // in beforeAll, after startTwin
//   await sessions?.close();                // in afterAll, before twin.stop()
import type { Fleet } from "../../src/config/schema.ts";
import { type ShellSessionProvider, shellSessionProvider } from "../../src/engine/sessions.ts";
import { ShellSessions } from "../../src/shell/sessions.ts";
import { SshPool } from "../../src/transport/pool.ts";

export interface FleetSessions {
  pool: SshPool;
  shells: ShellSessions;
  provider: ShellSessionProvider;
  close(): Promise<void>;
}

export function fleetSessions(fleet: Fleet): FleetSessions {
  const pool = new SshPool();
  const shells = new ShellSessions({ pool });
  const provider = shellSessionProvider(fleet, { pool, sessions: shells });
  return {
    pool,
    shells,
    provider,
    async close() {
      await provider.close();
      await shells.closeAll();
      await pool.closeAll();
    },
  };
}
