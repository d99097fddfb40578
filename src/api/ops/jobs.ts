// Jobs: submit (checked by the runbook's own zod parameters, refused with the reason, nothing enqueued), plan
// (without connecting), list and one job in the outcome words every reader uses (src/queue/job-outcome.ts), a job's
// progress (its finished steps and outcome: what `run --wait` follows), and cancel (attributed to who cancelled and
// recorded in the job's evidence). The requester of a job is always the authenticated principal.
import { getRunbook } from "../../../runbooks/index.ts";
import { UnknownTargetError } from "../../config/model.ts";
import { admitJob } from "../../engine/admit.ts";
import { RedisCheckpointStore } from "../../engine/checkpoints.ts";
import { EngineError } from "../../engine/errors.ts";
import { JOB_OUTCOMES } from "../../engine/outcome.ts";
import { describeAdmitted, type JobPlan } from "../../engine/plan.ts";
import type { JobResult } from "../../engine/runner.ts";
import { EvidenceLog, evidenceKeys, verifyJobEvidence } from "../../evidence/log.ts";
import { isValidJobId } from "../../evidence/record.ts";
import { sealEvidence, sealFinal } from "../../evidence/signing.ts";
import type { EvidenceVerification } from "../../evidence/verify.ts";
import { type JobOutcomeView, jobOutcome } from "../../queue/job-outcome.ts";
import {
  type CancelOutcome,
  cancelJob,
  JobSubmitError,
  type SubmittedJob,
  submitJob,
} from "../../queue/jobs.ts";
import type { JobProgress } from "../../queue/worker.ts";
import { ApiError } from "../errors.ts";
import { authorize, type OpContext } from "./context.ts";

export interface JobRequest {
  runbook: string;
  target?: string | undefined;
  params: Record<string, unknown>;
}

/** The words `jobs --state` and GET /v1/jobs?state= take: a job's outcome or its not-yet-ended state. */
export const JOB_STATE_WORDS = ["queued", "delayed", "running", ...JOB_OUTCOMES] as const;
export type JobStateFilter = (typeof JOB_STATE_WORDS)[number];

const QUEUE_STATES = ["active", "waiting", "delayed", "prioritized", "completed", "failed"] as const;
type QueueState = (typeof QUEUE_STATES)[number];

/** The queue lists a shown word can come from (so only those are read). */
function queueStatesOf(word: JobStateFilter): QueueState[] {
  switch (word) {
    case "queued":
      return ["waiting", "prioritized"];
    case "delayed":
      return ["delayed"];
    case "running":
    case "awaiting-approval":
      return ["active"];
    case "failed":
    case "cancelled":
      return ["failed"];
    default:
      return ["completed"];
  }
}

function checkJobId(id: string): void {
  if (!isValidJobId(id)) throw new ApiError(400, `not a job id: ${JSON.stringify(id)}`);
}

/** The plan a request would run, against the services' fleet; nothing connects, nothing is queued. */
export function planOp(ctx: OpContext, req: JobRequest): { plan: JobPlan; planDigest: string } {
  authorize(ctx.principal, "plan");
  try {
    const params = { ...req.params, ...(req.target !== undefined ? { target: req.target } : {}) };
    const admitted = admitJob(getRunbook(req.runbook), params, ctx.services.fleet);
    return { plan: describeAdmitted(admitted), planDigest: admitted.planDigest };
  } catch (err) {
    if (err instanceof EngineError || err instanceof UnknownTargetError)
      throw new ApiError(400, err.message, { refusal: err.name });
    throw err;
  }
}

export async function submitJobOp(ctx: OpContext, req: JobRequest): Promise<SubmittedJob> {
  authorize(ctx.principal, "jobs.submit");
  try {
    return await submitJob(ctx.services.queue, {
      fleet: ctx.services.fleet,
      runbook: req.runbook,
      ...(req.target !== undefined ? { target: req.target } : {}),
      params: req.params,
      actor: ctx.principal.name,
    });
  } catch (err) {
    if (err instanceof JobSubmitError) throw new ApiError(400, err.message, { refusal: err.reason });
    throw err;
  }
}

export interface JobRow {
  id: string;
  /** The outcome word (succeeded, failed, awaiting-approval, running, …). */
  state: string;
  queueState: string;
  runbook: string;
  target: string;
  progress: string;
  actor: string;
  createdAt: number;
  finishedAt?: number | undefined;
  findings?: string[];
  failedReason?: string;
}

/**
 * "done/total" steps for a job listing. A finished job's stored result says exactly how far it got; BullMQ's progress
 * is sent at most once a second (src/queue/progress.ts), so a short job has none, and a running job's is at most a
 * second behind its checkpoints. "-" when neither is known.
 */
export function stepsShown(
  queueState: string,
  progress: Partial<JobProgress> | number | undefined,
  result: Pick<JobResult, "steps"> | undefined,
): string {
  const finished = queueState === "completed" || queueState === "failed";
  if (finished && result?.steps.length)
    return `${result.steps.filter((st) => st.status === "done" || st.status === "resumed").length}/${result.steps.length}`;
  if (typeof progress === "object" && progress?.total) return `${progress.done ?? 0}/${progress.total}`;
  return "-";
}

/** Jobs, newest first, each with its outcome word; `state` keeps only jobs showing that word. */
export async function listJobsOp(
  ctx: OpContext,
  opts: { state?: JobStateFilter | undefined; limit: number },
): Promise<JobRow[]> {
  authorize(ctx.principal, "jobs.read");
  const { queue, redis } = ctx.services;
  const states: QueueState[] = opts.state ? queueStatesOf(opts.state) : [...QUEUE_STATES];
  const jobs = await queue.getJobs(states, 0, Math.max(0, opts.limit - 1), false);
  jobs.sort((a, b) => b.timestamp - a.timestamp);
  const rows: JobRow[] = [];
  for (const j of jobs) {
    const view = await jobOutcome(queue, redis, j.id ?? "", j);
    if (opts.state && view.outcome !== opts.state) continue;
    rows.push({
      id: j.id ?? "?",
      state: view.outcome,
      queueState: view.queueState,
      runbook: j.data.runbook,
      target: typeof j.data.params?.target === "string" ? j.data.params.target : "-",
      progress: stepsShown(view.queueState, j.progress as Partial<JobProgress> | number, view.result),
      actor: j.data.actor,
      createdAt: j.timestamp,
      finishedAt: j.finishedOn,
      ...(view.result?.findings?.length ? { findings: view.result.findings } : {}),
      ...(j.failedReason ? { failedReason: j.failedReason } : {}),
    });
    if (rows.length >= opts.limit) break;
  }
  return rows;
}

export interface FinishedStep {
  id: string;
  title: string;
  startedAt: string;
  finishedAt: string;
}

/** What a follower of a running job reads: its outcome view and the steps finished so far (in finishing order). */
export interface JobStatus extends JobOutcomeView {
  finished: FinishedStep[];
}

export async function jobStatusOp(ctx: OpContext, id: string): Promise<JobStatus> {
  authorize(ctx.principal, "jobs.read");
  checkJobId(id);
  const { queue, redis } = ctx.services;
  const checkpoints = await new RedisCheckpointStore(redis).finishedSteps(id);
  const view = await jobOutcome(queue, redis, id);
  return {
    ...view,
    finished: [...checkpoints.entries()].map(([stepId, c]) => ({
      id: stepId,
      title: c.title,
      startedAt: c.startedAt,
      finishedAt: c.finishedAt,
    })),
  };
}

export interface JobDetail extends JobOutcomeView {
  data?: import("../../queue/jobs.ts").JobData | undefined;
  attemptsMade?: number | undefined;
  failedReason?: string | undefined;
  timestamps: { created?: number | undefined; started?: number | undefined; finished?: number | undefined };
  checkpoints: Record<string, unknown>;
  evidence: {
    records: number;
    kinds: Record<string, number>;
    verification?: EvidenceVerification | undefined;
  };
}

/** One job: request, outcome, steps, results and its evidence (record kinds and the chain verified). 404 if unknown. */
export async function jobDetailOp(ctx: OpContext, id: string): Promise<JobDetail> {
  authorize(ctx.principal, "jobs.read");
  checkJobId(id);
  const { queue, redis, dataDir } = ctx.services;
  const job = await queue.getJob(id);
  const view = await jobOutcome(queue, redis, id, job ?? undefined);
  const checkpoints = await new RedisCheckpointStore(redis).finishedSteps(id);
  const lines = await redis.lrange(evidenceKeys(id).records, 0, -1);
  if (!job && !view.result && lines.length === 0) throw new ApiError(404, `no such job '${id}'`);
  const kinds: Record<string, number> = {};
  for (const line of lines) {
    const kind = (JSON.parse(line) as { kind?: string }).kind ?? "?";
    kinds[kind] = (kinds[kind] ?? 0) + 1;
  }
  return {
    ...view,
    data: job?.data,
    attemptsMade: job?.attemptsMade,
    failedReason: job?.failedReason,
    timestamps: { created: job?.timestamp, started: job?.processedOn, finished: job?.finishedOn },
    checkpoints: Object.fromEntries(checkpoints),
    evidence: {
      records: lines.length,
      kinds,
      verification: lines.length > 0 ? await verifyJobEvidence(redis, dataDir, id) : undefined,
    },
  };
}

/**
 * Cancel, attributed: a job that had not started is removed (its log then ends with a final seal, `cancelled`); a
 * running one is flagged and stops before its next step or command (its worker seals the log when it stops).
 */
export async function cancelJobOp(
  ctx: OpContext,
  id: string,
): Promise<{ id: string; outcome: CancelOutcome; by: string }> {
  authorize(ctx.principal, "jobs.cancel");
  checkJobId(id);
  const { queue, redis, dataDir, evidenceSigner } = ctx.services;
  const by = ctx.principal.name;
  const outcome = await cancelJob(queue, redis, id, by);
  if (outcome === "unknown") throw new ApiError(404, `no such job '${id}'`);
  if (outcome !== "finished") {
    const log = await EvidenceLog.open(redis, dataDir, id);
    await log.append("note", { event: "cancel-requested", outcome }, by);
    if (outcome === "removed") await sealFinal(log, evidenceSigner, redis, "cancelled");
    else await sealEvidence(log, evidenceSigner, redis);
  }
  return { id, outcome, by };
}
