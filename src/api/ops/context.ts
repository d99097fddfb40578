// The one implementation of every operation the API serves and the CLI runs. An operation takes what it works with
// (OpServices: the daemon's Redis, queue, fleet, data dir, evidence signer, report) and the authenticated principal,
// checks that principal's roles for the operation (src/identity/roles.ts), does it, and returns plain JSON. The API
// routes (routes/*.ts) call it for a bearer token's principal; the CLI on the daemon host calls it directly for the
// OS account's principal (src/cli/daemon-client.ts). So both transports refuse, record and answer alike, and no
// command has a second implementation.
import type { Queue } from "bullmq";
import type { Fleet } from "../../config/schema.ts";
import type { EvidenceSigner } from "../../evidence/signing.ts";
import type { Principal } from "../../identity/principal.ts";
import { mayPerform, type Operation } from "../../identity/roles.ts";
import type { JobData } from "../../queue/jobs.ts";
import type { RedisClient } from "../../redis/client.ts";
import { ApiError } from "../errors.ts";

/** What operations work with; the daemon (or the CLI on its host) hands in its own. */
export interface OpServices {
  redis: RedisClient;
  queue: Queue<JobData>;
  /** The fleet requests are checked against (the daemon's; on the CLI, the published one or a --fleet file). */
  fleet: Fleet;
  dataDir: string;
  /** Seals what an operation appends to a log; absent where the daemon's key cannot be read (recorded unsealed). */
  evidenceSigner?: EvidenceSigner | undefined;
  /** The fleet report (src/daemon/report.ts sits above this layer). */
  report(opts: { device?: string | undefined; staleAfterMs?: number | undefined }): Promise<unknown>;
}

export interface OpContext {
  services: OpServices;
  principal: Principal;
}

/** Refuse (403, naming who and what) unless one of the principal's roles grants the operation. */
export function authorize(principal: Principal, op: Operation): void {
  if (!mayPerform(principal.roles, op))
    throw new ApiError(
      403,
      `${principal.name} (roles: ${principal.roles.join(", ") || "none"}) may not ${op}`,
    );
}
