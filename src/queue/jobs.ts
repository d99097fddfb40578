// The jobs queue: one BullMQ queue (`lunafleet-jobs`) for every runbook run, whoever asked (an operator's `run`, a
// maintenance window's scheduler, an alert). A job is checked completely before it is queued: the runbook must
// exist, its parameters must pass the runbook's schema, its targets must be in the fleet, and the fleet itself must
// have validated. Anything else is refused with the reason and nothing is enqueued.
//
// Job data holds names and parameters only: never a secret, never a fleet object (workers read their own fleet).
import { createHash } from "node:crypto";
import { userInfo } from "node:os";
import { type JobsOptions, Queue } from "bullmq";
import { getRunbook } from "../../runbooks/index.ts";
import { FleetConfigError, formatIssue, loadFleet } from "../config/load.ts";
import { UnknownTargetError } from "../config/model.ts";
import type { Fleet } from "../config/schema.ts";
import { redact } from "../config/secret.ts";
import { EngineError } from "../engine/errors.ts";
import { type JobPlan, planJob } from "../engine/plan.ts";
import type { JobResult } from "../engine/runner.ts";
import { isValidJobId } from "../evidence/record.ts";
import type { RedisClient } from "../redis/client.ts";

export const QUEUE_NAME = "lunafleet-jobs";
/**
 * BullMQ's key prefix. One hash tag for the whole queue, as BullMQ asks for Redis Cluster: its scripts touch several
 * keys of a queue at once, which must share a slot (the queue then lives on one Cluster primary).
 */
export const QUEUE_PREFIX = "{lunafleet}";

/** Key prefix of everything the daemon keeps next to BullMQ (cancel flags, results, findings, the published fleet). */
const KEY_PREFIX = "lunafleet";

/** What a queued job carries. Names and parameters only. */
export interface JobData {
  runbook: string;
  /** The parameters as requested (validated against the runbook's schema at submit time). */
  params: Record<string, unknown>;
  /** Who asked: `operator:<user>`, `schedule:<window>`, `alert:<id>`. Recorded in every evidence record. */
  actor: string;
  requestedAt: string;
  /** The maintenance window the job must run inside (scheduled jobs); absent = run as soon as possible. */
  window?: string;
  /** Digest of the (secret-free) fleet the request was validated against; workers log a mismatch. */
  fleetDigest: string;
}

export class JobSubmitError extends Error {
  override name = "JobSubmitError";
  constructor(
    message: string,
    /** The underlying refusal type: UnknownRunbook, UnknownTargetError, ParamsInvalid, FleetConfigError... */
    readonly reason: string,
  ) {
    super(message);
  }
}

export function createJobQueue(connection: RedisClient): Queue<JobData> {
  return new Queue<JobData>(QUEUE_NAME, { connection: connection as never, prefix: QUEUE_PREFIX });
}

/** Retries resume after the last checkpoint; a job that keeps failing for a transient reason gives up eventually. */
export const DEFAULT_JOB_OPTIONS: JobsOptions = {
  attempts: 5,
  backoff: { type: "exponential", delay: 1000 },
  removeOnComplete: { age: 7 * 86_400, count: 10_000 },
  removeOnFail: { age: 30 * 86_400, count: 10_000 },
};

export interface ValidatedJob {
  runbook: string;
  params: Record<string, unknown>;
  plan: JobPlan;
}

/**
 * Check a request against the fleet without connecting anywhere: the runbook exists, the parameters pass its
 * schema, the targets resolve. Throws JobSubmitError with the reason.
 */
export function validateJobRequest(
  fleet: Fleet,
  runbookName: string,
  params: Record<string, unknown>,
): ValidatedJob {
  try {
    const runbook = getRunbook(runbookName);
    const plan = planJob(runbook, params, fleet);
    return { runbook: runbook.name, params, plan };
  } catch (err) {
    // Any refusal the runbook itself makes while resolving its targets (deprovision of a group that is not empty,
    // ha-recover with both a group and auto=true…) is a refusal at submit: one line, never a stack trace.
    if (err instanceof EngineError || err instanceof UnknownTargetError)
      throw new JobSubmitError(`refused: ${redact(err.message)}`, err.name);
    throw err;
  }
}

/** Load and validate a fleet file for a submit; a file that fails validation refuses the job. */
export function loadFleetForSubmit(file: string): Fleet {
  try {
    return loadFleet(file);
  } catch (err) {
    if (err instanceof FleetConfigError)
      throw new JobSubmitError(
        `refused: fleet file ${file} failed validation:\n${err.issues.map((i) => `  ${formatIssue(file, i)}`).join("\n")}`,
        err.name,
      );
    throw err;
  }
}

export interface SubmitJobRequest {
  /** The fleet the request is checked against, or a fleet file to load (and validate) first. */
  fleet?: Fleet;
  fleetFile?: string;
  runbook: string;
  /** Sets `params.target` (a device, client host, HA group or `fleet`). */
  target?: string;
  params?: Record<string, unknown>;
  actor?: string;
  /** A deterministic id (scheduled runs, idempotent submits); default: a fresh one. */
  jobId?: string;
  window?: string;
  delayMs?: number;
  options?: JobsOptions;
}

export interface SubmittedJob {
  jobId: string;
  /** False when a job with this id already existed (deterministic ids): nothing new was queued. */
  created: boolean;
  plan: JobPlan;
}

export async function submitJob(queue: Queue<JobData>, req: SubmitJobRequest): Promise<SubmittedJob> {
  const job = prepareJob(req);
  // Only a caller's own id can name a job that exists already; a fresh id (time + 32 random bits) cannot, and asking
  // Redis would cost every submit of a sweep a round trip.
  const existing = req.jobId !== undefined ? await queue.getJob(job.jobId) : undefined;
  const added = await queue.add(job.name, job.data, job.opts);
  return { jobId: added.id ?? job.jobId, created: !existing, plan: job.plan };
}

/**
 * Many fresh jobs at once (a sweep): every request is checked first — one refusal queues none of them — then they
 * are added in order, a few hundred per round trip (BullMQ's addBulk: one MULTI each), instead of one round trip per
 * job. Requests that name their own id go through submitJob (they may name a job that exists).
 */
export async function submitJobs(
  queue: Queue<JobData>,
  reqs: readonly SubmitJobRequest[],
): Promise<SubmittedJob[]> {
  if (reqs.some((r) => r.jobId !== undefined))
    throw new JobSubmitError("refused: a bulk submit takes fresh ids only", "BadJobId");
  const prepared = reqs.map(prepareJob);
  const submitted: SubmittedJob[] = [];
  for (let at = 0; at < prepared.length; at += BULK_CHUNK) {
    const chunk = prepared.slice(at, at + BULK_CHUNK);
    const added = await queue.addBulk(chunk.map((j) => ({ name: j.name, data: j.data, opts: j.opts })));
    for (const [k, j] of chunk.entries())
      submitted.push({ jobId: added[k]?.id ?? j.jobId, created: true, plan: j.plan });
  }
  return submitted;
}

/** Jobs per addBulk: one MULTI of this many adds stays a small write and a short stall of Redis. */
const BULK_CHUNK = 250;

/** A request checked against its fleet and made into what BullMQ stores (throws JobSubmitError on a refusal). */
function prepareJob(req: SubmitJobRequest): {
  jobId: string;
  name: string;
  data: JobData;
  opts: JobsOptions;
  plan: JobPlan;
} {
  const fleet = req.fleet ?? (req.fleetFile ? loadFleetForSubmit(req.fleetFile) : undefined);
  if (!fleet) throw new JobSubmitError("refused: no fleet to check the job against", "NoFleet");
  const params = { ...(req.params ?? {}), ...(req.target !== undefined ? { target: req.target } : {}) };
  const valid = validateJobRequest(fleet, req.runbook, params);
  if (req.window !== undefined && !fleet.maintenanceWindows.some((w) => w.name === req.window))
    throw new JobSubmitError(
      `refused: unknown maintenance window '${req.window}' (fleet has: ${fleet.maintenanceWindows.map((w) => w.name).join(", ") || "none"})`,
      "UnknownWindow",
    );
  const jobId = req.jobId ?? newJobId(valid.runbook);
  if (!isValidJobId(jobId) || jobId.includes(":") || /^\d+$/.test(jobId))
    throw new JobSubmitError(
      `refused: job id ${JSON.stringify(jobId)} must be letters, digits, '.', '_' or '-' (not only digits)`,
      "BadJobId",
    );
  const data: JobData = {
    runbook: valid.runbook,
    params,
    actor: req.actor ?? defaultActor(),
    requestedAt: new Date().toISOString(),
    ...(req.window !== undefined ? { window: req.window } : {}),
    fleetDigest: fleetDigest(fleet),
  };
  const opts: JobsOptions = {
    ...DEFAULT_JOB_OPTIONS,
    ...req.options,
    jobId,
    ...(req.delayMs ? { delay: req.delayMs } : {}),
  };
  return { jobId, name: valid.runbook, data, opts, plan: valid.plan };
}

let counter = 0;
/** `<runbook>-<time base36>-<random>`: sortable by time, unique across processes, valid for evidence and BullMQ. */
export function newJobId(runbook: string): string {
  counter = (counter + 1) % 1296;
  const rand = createHash("sha256")
    .update(`${process.pid}-${Date.now()}-${Math.random()}-${counter}`)
    .digest("hex")
    .slice(0, 8);
  return `${runbook}-${Date.now().toString(36)}-${rand}`;
}

/**
 * The id BullMQ gives the run of a maintenance-window scheduler at one slot: `repeat:<schedulerId>:<slot ms>`.
 * Deterministic, so two daemons (or a restarted one) can never queue the same slot twice.
 */
export function scheduledJobId(window: string, runbook: string, target: string, slot: Date): string {
  return `repeat:${schedulerId(window, runbook, target)}:${slot.getTime()}`;
}

/**
 * The scheduler of one (window, runbook, target). BullMQ forbids ':' in ids and evidence ids allow only
 * [A-Za-z0-9._:-], so the parts are joined with '--' (runbook names are kebab-case and never contain it).
 */
export function schedulerId(window: string, runbook: string, target: string): string {
  return `sched--${window}--${runbook}--${target}`;
}

/**
 * The requester when an in-process caller names none: the OS account of this process (never "unknown", and never a
 * name from the environment: the CLI and the API always pass their authenticated principal).
 */
function defaultActor(): string {
  return `operator:${osAccountName()}`;
}

/**
 * The OS account running this process, from the system's user database (not $USER, which cron and systemd may leave
 * unset); a uid with no name is still someone: `uid-<n>`.
 */
export function osAccountName(): string {
  try {
    const name = userInfo().username;
    if (name) return name;
  } catch {
    // no passwd entry for this uid (a container's arbitrary uid)
  }
  return `uid-${process.getuid?.() ?? process.pid}`;
}

/**
 * The fleet without credentials: what the daemon publishes so that CLI commands can check requests against the
 * fleet the daemon really runs, and what its digest is computed over. Secret references (and the twin's literal
 * passwords) are dropped, never copied.
 */
export function publicFleet(fleet: Fleet): Fleet {
  const strip = (o: unknown): unknown => {
    if (Array.isArray(o)) return o.map(strip);
    if (o && typeof o === "object") {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(o)) if (k !== "credentials") out[k] = strip(v);
      return out;
    }
    return o;
  };
  return strip(fleet) as Fleet;
}

// Every submitted job carries the digest: computed once per fleet object, not once per job (a 1,000-device sweep
// submits 2,000 jobs, and hashing the whole fleet for each made submitting it quadratic). Fleets are not mutated
// after loading; a caller that edits one in place gets the digest of the version it first submitted against.
const digests = new WeakMap<Fleet, string>();

export function fleetDigest(fleet: Fleet): string {
  let digest = digests.get(fleet);
  if (digest === undefined) {
    digest = createHash("sha256")
      .update(JSON.stringify(publicFleet(fleet)))
      .digest("hex")
      .slice(0, 16);
    digests.set(fleet, digest);
  }
  return digest;
}

/** Where the daemon publishes its secret-free fleet (see publicFleet). */
const PUBLISHED_FLEET_KEY = `${KEY_PREFIX}:daemon:fleet`;

export async function publishFleet(redis: RedisClient, fleet: Fleet): Promise<void> {
  await redis.set(PUBLISHED_FLEET_KEY, JSON.stringify(publicFleet(fleet)));
}

export async function readPublishedFleet(redis: RedisClient): Promise<Fleet | undefined> {
  const raw = await redis.get(PUBLISHED_FLEET_KEY);
  return raw ? (JSON.parse(raw) as Fleet) : undefined;
}

// ---- Cancel ----

export function cancelKey(jobId: string): string {
  return `${KEY_PREFIX}:cancel:{${jobId}}`;
}

export type CancelOutcome = "removed" | "flagged" | "finished" | "unknown";

/**
 * Cancel a job: a job still waiting (or delayed) is removed from the queue; a running one gets a cancel flag that its
 * worker polls and turns into an AbortSignal (the job stops before its next step or command). A finished job is
 * left alone.
 */
export async function cancelJob(
  queue: Queue<JobData>,
  redis: RedisClient,
  jobId: string,
  /** The authenticated principal who cancels (the worker names them when the job stops). */
  by?: string,
): Promise<CancelOutcome> {
  const job = await queue.getJob(jobId);
  if (!job) return "unknown";
  const state = await job.getState();
  if (state === "completed" || state === "failed") return "finished";
  if (state !== "active") {
    try {
      await job.remove();
      // It never ran: its result says so, so `job` and `run --wait` read `cancelled`, not an unknown job.
      const result = {
        jobId,
        runbook: job.data.runbook,
        status: "cancelled",
        outcome: "cancelled",
        steps: [],
        error: {
          type: "JobCancelled",
          message: `job ${jobId} cancelled before it started`,
          retryable: false,
        },
      };
      await redis.set(resultKey(jobId), JSON.stringify(result), "EX", 30 * 86_400);
      return "removed";
    } catch {
      // It became active between getState and remove: flag it instead.
    }
  }
  await redis.set(
    cancelKey(jobId),
    JSON.stringify({ at: new Date().toISOString(), ...(by ? { by } : {}) }),
    "EX",
    7 * 86_400,
  );
  return "flagged";
}

/** Who asked to cancel a job, from its cancel flag (a flag written before names were kept says so). */
export async function cancelledBy(redis: RedisClient, jobId: string): Promise<string | undefined> {
  const raw = await redis.get(cancelKey(jobId));
  if (!raw) return undefined;
  try {
    return (JSON.parse(raw) as { by?: string }).by ?? "an operator";
  } catch {
    return "an operator";
  }
}

// ---- Results ----

/**
 * What BullMQ keeps as a finished job's return value: its outcome and where its result is. The whole result (every
 * step's answer) is stored once, at resultKey (30 days; src/queue/job-outcome.ts reads it): BullMQ writing it again
 * into the job and into its event stream cost every job two more copies of its JSON (issue 15).
 */
export interface JobSummary {
  jobId: string;
  status: JobResult["status"];
  outcome: JobResult["outcome"];
  /** The Redis key of the whole JobResult. */
  resultKey: string;
}

export function resultKey(jobId: string): string {
  return `${KEY_PREFIX}:job:{${jobId}}:result`;
}
