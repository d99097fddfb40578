// Evidence for auditors over either transport: verify one log (its chain, Redis and file copies agree, the daemon's
// signatures, and how it must end: a finished job's log with a final seal, a running one may still grow), verify
// every log, export records since a time as JSON lines (a SIEM ingests them), and the daemon's published keys.
import {
  exportEvidence,
  sealRequirementOf,
  verifyAllEvidence,
  verifySignedJobEvidence,
} from "../../evidence/audit.ts";
import { isValidJobId } from "../../evidence/record.ts";
import { localTrustedKeys, type SealRequirement, SIGNING_KEYS_KEY } from "../../evidence/signing.ts";
import { resultKey } from "../../queue/jobs.ts";
import { ApiError } from "../errors.ts";
import { authorize, type OpContext } from "./context.ts";

/** The keys every daemon on this Redis published, and this data dir's own (written beside its private half). */
async function keys(ctx: OpContext) {
  return localTrustedKeys(ctx.services.dataDir, ctx.services.redis);
}

/** How a log must end now: final once marked finished; a job still in the queue without a result may be growing. */
async function requirementOf(ctx: OpContext, log: string): Promise<SealRequirement> {
  const { redis, queue } = ctx.services;
  const marked = await sealRequirementOf(redis, log);
  if (marked === "final") return "final";
  const job = isValidJobId(log) && !log.includes(":") ? await queue.getJob(log) : undefined;
  const state = job ? await job.getState() : undefined;
  if (state && !["completed", "failed"].includes(state) && !(await redis.exists(resultKey(log))))
    return "growing";
  return marked;
}

export async function evidenceKeysOp(ctx: OpContext): Promise<Record<string, string>> {
  authorize(ctx.principal, "evidence.read");
  return ctx.services.redis.hgetall(SIGNING_KEYS_KEY);
}

export async function verifyEvidenceOp(ctx: OpContext, id: string) {
  authorize(ctx.principal, "evidence.read");
  if (!isValidJobId(id)) throw new ApiError(400, `not a log id: ${JSON.stringify(id)}`);
  const result = await verifySignedJobEvidence(
    ctx.services.redis,
    ctx.services.dataDir,
    id,
    await keys(ctx),
    {
      require: await requirementOf(ctx, id),
    },
  );
  if (result.ok && result.count === 0) throw new ApiError(404, `no evidence recorded for '${id}'`);
  return { log: id, ...result };
}

export async function verifyAllEvidenceOp(ctx: OpContext) {
  authorize(ctx.principal, "evidence.read");
  const results = await verifyAllEvidence(ctx.services.dataDir, await keys(ctx), ctx.services.redis, {
    requirementOf: (log) => requirementOf(ctx, log),
  });
  return { ok: results.every((r) => r.result.ok), logs: results.map((r) => ({ log: r.log, ...r.result })) };
}

/** Records since `since`, one JSON object per line, and the logs that do not verify (still exported). */
export function exportEvidenceOp(ctx: OpContext, since: Date) {
  authorize(ctx.principal, "evidence.read");
  return exportEvidence(ctx.services.dataDir, since);
}
