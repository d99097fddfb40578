// The end of one delivery of a queued job (process-job.ts runs the rest): settle stores the result, marks a job that
// will not run again as ended and keeps the bookkeeping; letGo gives the locks back and seals the evidence;
// endedBefore answers a delivery of a job that had already ended. Their order is what keeps a job from running twice
// (test/queue/redelivery.test.ts): marked ended, THEN the locks go.
import { type Job, UnrecoverableError } from "bullmq";
import { closeApproval } from "../coord/approvals.ts";
import type { JobResult } from "../engine/runner.ts";
import type { EvidenceLog } from "../evidence/log.ts";
import { markFinal, sealEvidence, signFinal } from "../evidence/signing.ts";
import { type JobData, type JobSummary, resultKey } from "./jobs.ts";
import type { Admitted, JobProcessDeps, Locked } from "./process-job.ts";

/**
 * The end of every delivery, in this order: the job is already marked ended if it will not run again (settle), then
 * the device locks go, then the daemon's signature over the chain head — final when the job is marked ended, so a
 * copy cut back to an earlier seal no longer verifies on its own (src/evidence/signing.ts) — then the group commit
 * (src/evidence/log.ts): every record on the chain and in the fsynced file before BullMQ hears that the job is done.
 */
export async function letGo(
  deps: JobProcessDeps,
  a: Admitted,
  held: Locked,
  evidence: EvidenceLog | undefined,
  marked: string | undefined,
): Promise<void> {
  const released = await held.locks.release().catch(() => [] as string[]);
  await evidence
    ?.append("lock", { event: "released", resources: released, worker: deps.workerId }, a.data.actor)
    .catch(() => {});
  if (evidence && deps.evidenceSigner)
    await (marked
      ? signFinal(evidence, deps.evidenceSigner, marked)
      : sealEvidence(evidence, deps.evidenceSigner, deps.redis)
    ).catch((err: Error) => a.log.error({ error: err.message }, "evidence: could not sign the chain head"));
  await evidence?.close();
}

/**
 * This job had already ended when this delivery took its locks: BullMQ lost the word of its completion (a failover
 * to a replica that had not seen it) or took it for stalled while its worker was finishing it. Nothing is run again;
 * BullMQ hears the stored outcome.
 */
export function endedBefore(a: Admitted, result: JobResult): JobSummary {
  const heard = whatBullmqHears(a.jobId, result, false);
  if ("failure" in heard) throw heard.failure;
  return heard.summary;
}

/** A result as BullMQ takes it: a summary of a success, or the error that fails the attempt (retried or not). */
function whatBullmqHears(
  jobId: string,
  result: JobResult,
  retrying: boolean,
): { summary: JobSummary } | { failure: Error } {
  if (result.status === "succeeded")
    return {
      summary: { jobId, status: result.status, outcome: result.outcome, resultKey: resultKey(jobId) },
    };
  const why = `${result.error?.type ?? "Error"}: ${result.error?.message ?? "failed"}`;
  return { failure: retrying ? new Error(why) : new UnrecoverableError(why) };
}

/** Will BullMQ run this job again after this attempt's result (a retryable failure with attempts left)? */
export function willRetry(job: Job<JobData, JobSummary>, result: JobResult): boolean {
  const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
  return result.status === "failed" && result.error?.retryable === true && !lastAttempt;
}

export async function settle(
  deps: JobProcessDeps,
  a: Admitted,
  result: JobResult,
  evidence: EvidenceLog,
): Promise<{ marked: string | undefined } & ({ summary: JobSummary } | { failure: Error })> {
  const { redis } = deps;
  const retrying = willRetry(a.job, result);
  const finishedAt = new Date().toISOString();
  // Independent writes, asked together: one round trip instead of four (measured on the 1,000-device sweep, each
  // sequential round trip held a worker slot ~10 ms). The bookkeeping writes log and carry on; a result that could
  // not be stored fails the attempt.
  const [, marked] = await Promise.all([
    redis.set(resultKey(a.jobId), JSON.stringify(result), "EX", 30 * 86_400),
    // A job that will not run again is marked ended while it still holds its locks: a second delivery of it (BullMQ
    // lost its completion in a failover, or took it for stalled) takes them after this and runs nothing (process-job.ts, scope).
    retrying
      ? undefined
      : markFinal(redis, a.jobId, result.outcome).catch((err: unknown) => {
          a.log.error({ error: (err as Error).message }, "could not mark the job ended");
          return undefined;
        }),
    // A job that will not come back leaves no approval request open: approving it later is refused with its outcome.
    retrying
      ? undefined
      : closeApproval(redis, a.jobId, result.outcome, { evidence }).catch((err: unknown) =>
          a.log.warn({ error: (err as Error).message }, "could not close the job's approval request"),
        ),
    // Every device the job touched keeps it in its history (`report <device>`), whatever came of it.
    ...(result.targets?.devices ?? a.plan?.targets.devices ?? []).map((device) =>
      deps.facts
        .recordJob(device, {
          jobId: a.jobId,
          runbook: a.runbook.name,
          outcome: retrying ? "failed (will resume)" : result.outcome,
          actor: a.data.actor,
          finishedAt,
        })
        .catch((err: unknown) =>
          a.log.warn({ error: (err as Error).message }, "could not record the job in device history"),
        ),
    ),
  ]);
  return { marked, ...whatBullmqHears(a.jobId, result, retrying) };
}
