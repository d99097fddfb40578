// Real SSH sessions to a fleet (in tests, the twin's): one pool, one lease on it, the job's shells and files over
// that lease, closed in the order that drops nothing half-used (the shells and their lease, then the pool).
//
//   ssh = fleetShells(twin.fleet);   // in beforeAll, after startTwin
//   await ssh?.close();              // in afterAll, before twin.stop()
import type { Fleet } from "../../src/config/schema.ts";
import { type JobFiles, jobFiles } from "../../src/shell/job-files.ts";
import { JobShells } from "../../src/shell/job-shells.ts";
import { SshPool } from "../../src/transport/pool.ts";

export interface FleetShells {
  pool: SshPool;
  shells: JobShells;
  files: JobFiles;
  close(): Promise<void>;
}

export function fleetShells(fleet: Fleet): FleetShells {
  const pool = new SshPool();
  const lease = pool.lease();
  const shells = JobShells.forFleet(fleet, lease);
  return {
    pool,
    shells,
    files: jobFiles(fleet, lease),
    async close() {
      await shells.close();
      await pool.closeAll();
    },
  };
}
