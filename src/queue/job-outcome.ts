// A job's outcome as every reader names it (jobs, job, run --wait, /metrics): the engine's words for a job that
// ended (src/engine/outcome.ts), `awaiting-approval` for a running job whose approval request is open, and the
// queue's plain states for the rest (`queued`, `delayed`, `running`). One function, so no two commands disagree.
import type { Job, Queue } from "bullmq";
import { type ApprovalState, approvalState } from "../coord/approvals.ts";
import type { JobOutcome } from "../engine/outcome.ts";
import type { JobResult } from "../engine/runner.ts";
import type { RedisClient } from "../redis/client.ts";
import { type JobData, resultKey } from "./jobs.ts";

/** Outcome words plus the states of a job that has not ended. */
export type JobStateWord = JobOutcome | "queued" | "delayed" | "running" | "unknown";

export interface JobOutcomeView {
  id: string;
  /** What to show: the outcome of a finished job, awaiting-approval, or queued/delayed/running. */
  outcome: JobStateWord;
  /** BullMQ's own state (waiting, active, delayed, completed, failed…; `missing` when the queue no longer has it). */
  queueState: string;
  /** The stored result of the last attempt, if any. */
  result?: JobResult;
  /** The open approval request of a job awaiting approval. */
  approval?: ApprovalState;
}

/** A job's whole stored result (its last attempt's), or undefined before it has one. BullMQ keeps only a summary. */
export async function storedJobResult(redis: RedisClient, jobId: string): Promise<JobResult | undefined> {
  const raw = await redis.get(resultKey(jobId));
  if (!raw) return undefined;
  const result = JSON.parse(raw) as JobResult;
  // Results stored before outcomes existed carry only the engine's status.
  result.outcome ??= result.status;
  return result;
}

export async function jobOutcome(
  queue: Queue<JobData>,
  redis: RedisClient,
  jobId: string,
  known?: Job<JobData>,
): Promise<JobOutcomeView> {
  const job = known ?? (await queue.getJob(jobId));
  const queueState = job ? await job.getState() : "missing";
  const result = await storedJobResult(redis, jobId);
  const view = (outcome: JobStateWord, extra: Partial<JobOutcomeView> = {}): JobOutcomeView => ({
    id: jobId,
    outcome,
    queueState,
    ...(result ? { result } : {}),
    ...extra,
  });
  switch (queueState) {
    case "completed":
      return view(result?.outcome ?? "succeeded");
    case "failed":
      // A failed job without a result never reached the engine (unknown runbook, stalled too often): failed.
      return view(result?.outcome === "cancelled" ? "cancelled" : "failed");
    case "active": {
      const approval = await approvalState(redis, jobId);
      if (approval?.status === "awaiting-approval") return view("awaiting-approval", { approval });
      return view("running");
    }
    case "delayed":
      return view("delayed");
    case "waiting":
    case "prioritized":
    case "waiting-children":
      return view("queued");
    case "missing":
      // Removed from the queue: a cancel before it started leaves a `cancelled` result; anything else is unknown.
      return view(result?.outcome ?? "unknown");
    default:
      return view("unknown");
  }
}
