// The application crypto gate on a Luna client host: the application's own check command (e.g. a script that wraps
// and unwraps a test key through its HA group slot), run on an exec channel of the job's pooled connection so its
// exit status is the answer (0 = the application's crypto works). Only a command line the fleet file lists for
// that very host under `appCryptoGate.clientHostChecks` is ever sent: the fleet file is the allow-list, checked
// here, character for character, before anything leaves (its schema already refuses shell syntax).
import type { ClientHost, Fleet } from "../config/schema.ts";
import type { PoolLease } from "../transport/lease.ts";
import { clientHostTarget } from "../transport/target.ts";
import { CommandRefused } from "./errors.ts";

export interface HostCheckResult {
  exitCode: number | null;
  output: string;
}

export interface HostChecks {
  run(host: ClientHost, command: string): Promise<HostCheckResult>;
}

export function hostChecks(fleet: Fleet, lease: PoolLease): HostChecks {
  return {
    async run(host, command) {
      const allowed = fleet.appCryptoGate.clientHostChecks.find(
        (c) => c.clientHost === host.name && c.command === command,
      );
      if (!allowed)
        throw new CommandRefused(
          { target: host.name, command },
          "gate-allow-list",
          "only a check command the fleet file lists for this client host under appCryptoGate.clientHostChecks may run",
        );
      if (host.local)
        throw new CommandRefused(
          { target: host.name, command },
          "gate-local-host",
          "a local client host's check is not run by the daemon (it runs on the daemon's own machine)",
        );
      const target = clientHostTarget(fleet, host);
      const conn = await lease.connection(target);
      return conn.exec(command, allowed.timeoutMs);
    },
  };
}
