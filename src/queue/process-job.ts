// One queued job through the worker, in four stages, each a function of its own:
//
//   admit   the runbook exists; a scheduled job is inside its window (else it is delayed to the next one); the
//           parameters are parsed, the targets resolved and the steps expanded ONCE (engine/admit.ts) — the runner
//           gets this admitted job and does not compute it again
//   lock    the locks of every device and client host the admitted job declares (one fixed order, all or nothing),
//           or, for a job that declares none, a lock of its own id; busy devices send the job back to the queue for
//           a moment (not a failed attempt)
//   scope   the job's cancel watch, shells, evidence and checkpoints around one runJob(); shells are closed (and the
//           close confirmed) before the locks are given back (job-end.ts, letGo)
//   settle  (job-end.ts) the result is stored; a job that will not run again is marked ended before its locks go;
//           an approval request the job leaves behind is closed with the job's outcome; BullMQ hears success, a
//           retryable failure (resumes after the last checkpoint), or an UnrecoverableError (never retried). A
//           delivery of a job that had already ended runs nothing and reports the stored outcome.
import { DelayedError, type Job, UnrecoverableError } from "bullmq";
import { getRunbook } from "../../runbooks/index.ts";
import { deviceLockResource, getDevice } from "../config/model.ts";
import type { Fleet } from "../config/schema.ts";
import { redact } from "../config/secret.ts";
import type { ApprovalsStore } from "../coord/approvals.ts";
import { acquireDeviceLocks, type DeviceLockSet, LockUnavailableError } from "../coord/locks.ts";
import { type JobFacts, signedApprovalsStore } from "../coord/signed-approvals.ts";
import { loadApproverKeys } from "../coord/webauthn-credentials.ts";
import { type AdmittedJob, admitJob } from "../engine/admit.ts";
import type { JobLocksPort } from "../engine/approval-wait.ts";
import type { KeyVaultPort } from "../engine/key-vault-ports.ts";
import type { AzurePort, JobLogger, StateStore } from "../engine/ports.ts";
import type { Runbook } from "../engine/runbook.ts";
import { type JobResult, runJob } from "../engine/runner.ts";
import { EvidenceLog } from "../evidence/log.ts";
import { type EvidenceSigner, finalMarkKey } from "../evidence/signing.ts";
import type { RedisFactStore } from "../facts/store.ts";
import type { LoginGuard } from "../guard/guard.ts";
import { jobGuard } from "../guard/job-guard.ts";
import type { RedisClient } from "../redis/client.ts";
import { hostChecks } from "../shell/host-checks.ts";
import { jobFiles } from "../shell/job-files.ts";
import { JobShells } from "../shell/job-shells.ts";
import type { SshPool } from "../transport/pool.ts";
import { watchCancel } from "./cancel-watch.ts";
import { endedBefore, letGo, settle } from "./job-end.ts";
import { storedJobResult } from "./job-outcome.ts";
import { cancelKey, type JobData, type JobSummary } from "./jobs.ts";
import { ProgressReporter, progressCheckpoints } from "./progress.ts";
import { delayUntilWindow, findWindow } from "./schedules.ts";
import type { WorkerMetrics } from "./worker.ts";

/** What every job of one worker shares. */
export interface JobProcessDeps {
  fleet: Fleet;
  digest: string;
  redis: RedisClient;
  pool: SshPool;
  loginGuard: LoginGuard;
  state: StateStore;
  approvals: ApprovalsStore;
  /** The fleet state model: what jobs observe, and which jobs touched each device. */
  facts: RedisFactStore;
  azure: AzurePort | undefined;
  /** Managed HSM / Key Vault access (ctx.keyVault); undefined when the fleet declares none. */
  keyVault?: KeyVaultPort | undefined;
  metrics: WorkerMetrics | undefined;
  log: JobLogger;
  workerId: string;
  dataDir: string;
  lockTtlMs: number;
  lockWaitMs: number;
  cancelPollMs: number;
  /** How often a job waiting for approvals re-reads them (ms). */
  approvalPollMs: number;
  /** Signs each attempt's evidence chain head when it ends. */
  evidenceSigner?: EvidenceSigner | undefined;
}

/** A job past admission: its runbook and, unless its request does not resolve, the admitted plan. */
export interface Admitted {
  job: Job<JobData, JobSummary>;
  jobId: string;
  data: JobData;
  log: JobLogger;
  runbook: Runbook;
  /** Undefined when parameters or targets do not resolve: the runner refuses it before step 1 and records why. */
  plan: AdmittedJob | undefined;
}

export interface Locked {
  /** Every delivery holds locks: its targets', or its own id's (lock). */
  locks: DeviceLockSet;
  startedAt: number;
}

export async function processJob(
  deps: JobProcessDeps,
  job: Job<JobData, JobSummary>,
  token: string | undefined,
): Promise<JobSummary> {
  const admitted = await admit(deps, job, token);
  const held = await lock(deps, admitted, token);
  let outcome = "error";
  deps.metrics?.jobStarted(admitted.runbook.name);
  const opened: { evidence?: EvidenceLog } = {};
  // The outcome the job is marked ended with, once it will not run again: its evidence then ends with a final seal.
  let marked: string | undefined;
  try {
    const scoped = await scope(deps, admitted, held, opened);
    if ("endedBefore" in scoped) {
      outcome = "ended-before";
      marked = scoped.endedBefore;
      return endedBefore(admitted, scoped.stored);
    }
    outcome = scoped.result.outcome;
    const settled = await settle(deps, admitted, scoped.result, scoped.evidence);
    marked = settled.marked;
    if ("failure" in settled) throw settled.failure;
    return settled.summary;
  } finally {
    deps.metrics?.jobFinished(admitted.runbook.name, outcome);
    await letGo(deps, admitted, held, opened.evidence, marked);
  }
}

// ---- admit ----

async function admit(deps: JobProcessDeps, job: Job<JobData, JobSummary>, token?: string): Promise<Admitted> {
  const data = job.data;
  const jobId = job.id;
  if (!jobId) throw new UnrecoverableError("job without id");
  const log = child(deps.log, { jobId, runbook: data.runbook, worker: deps.workerId });
  if (data.fleetDigest && data.fleetDigest !== deps.digest)
    log.warn(
      { submitted: data.fleetDigest, worker: deps.digest },
      "job was validated against another version of the fleet; this worker's fleet decides",
    );
  let runbook: Runbook;
  try {
    runbook = getRunbook(data.runbook);
  } catch (err) {
    throw new UnrecoverableError(redact((err as Error).message));
  }
  // A scheduled job runs inside its window only; outside it, it waits for the next window start.
  if (data.window) {
    const window = findWindow(deps.fleet, data.window);
    if (!window) throw new UnrecoverableError(`maintenance window '${data.window}' is not in the fleet`);
    const delay = delayUntilWindow(window);
    if (delay > 0) {
      log.info({ window: data.window, delayMs: delay }, "outside its maintenance window; waits for the next");
      await job.moveToDelayed(Date.now() + delay, token);
      throw new DelayedError();
    }
  }
  let plan: AdmittedJob | undefined;
  try {
    plan = admitJob(runbook, data.params, deps.fleet);
  } catch {
    plan = undefined;
  }
  return { job, jobId, data, log, runbook, plan };
}

// ---- lock ----

async function lock(deps: JobProcessDeps, a: Admitted, token?: string): Promise<Locked> {
  const startedAt = Date.now();
  const targets = a.plan?.targets;
  const targeted = targets
    ? [
        // By the appliance's identity: two names for one appliance (two fleet files) take one lock.
        ...targets.devices.map((d) => deviceLockResource(getDevice(deps.fleet, d))),
        ...targets.clientHosts.map((h) => `client:${h}`),
        ...(targets.azure ?? []).map((n) => `azure:${n}`),
      ]
    : [];
  // A job that locks nothing it targets (vault-placement only reads; a job that could not be admitted, which fails
  // without a step but still records its result) takes a lock of its own id instead: two deliveries of one job (a
  // stall overlap) must not run side by side, and the ended mark is only read under a lock (scope).
  const resources = targeted.length > 0 ? targeted : [jobLockResource(a.jobId)];
  try {
    const locks = await acquireDeviceLocks(deps.redis, resources, {
      owner: a.jobId,
      ttlMs: deps.lockTtlMs,
      waitMs: deps.lockWaitMs,
      onLost: (err) =>
        a.log.error({ error: err.message }, "device lock lost; the job stops before its next step"),
    });
    deps.metrics?.lockWait((Date.now() - startedAt) / 1000, true);
    return { locks, startedAt };
  } catch (err) {
    if (!(err instanceof LockUnavailableError)) throw err;
    // Busy devices: give the worker slot back and try again a little later (not a failed attempt).
    deps.metrics?.lockWait((Date.now() - startedAt) / 1000, false);
    a.log.info({ resource: err.resource, heldBy: err.heldBy }, "device busy; job goes back to the queue");
    await a.job.moveToDelayed(Date.now() + 250 + Math.floor(Math.random() * 750), token);
    throw new DelayedError();
  }
}

// ---- scope ----

async function scope(
  deps: JobProcessDeps,
  a: Admitted,
  held: Locked,
  opened: { evidence?: EvidenceLog },
): Promise<{ result: JobResult; evidence: EvidenceLog } | { endedBefore: string; stored: JobResult }> {
  const { redis, metrics } = deps;
  const { locks } = held;
  const cancel = watchCancel(redis, a.jobId, deps.cancelPollMs, a.log);
  const lease = deps.pool.lease({
    onChannelOpen: () => metrics?.shellChannels(1),
    onChannelClose: () => metrics?.shellChannels(-1),
  });
  const shells = JobShells.forFleet(deps.fleet, lease);
  const progress = new ProgressReporter((p) => a.job.updateProgress(p));
  let succeeded = false;
  try {
    // Four reads of this job's own keys, asked together: one round trip on the auto-pipelined connection.
    // (The log is kept as soon as it opens, so that it is closed even if another read fails.)
    const [ended, cancelled, checkpoints, log] = await Promise.all([
      // Read under the job's locks: a worker marks its job ended before it lets them go (settle).
      redis.get(finalMarkKey(a.jobId)),
      redis.exists(cancelKey(a.jobId)),
      progressCheckpoints({
        redis: deps.redis,
        jobId: a.jobId,
        totalSteps: a.plan?.steps.length ?? 0,
        progress,
        stepFinished: (stepId, seconds) =>
          deps.metrics?.stepFinished(a.runbook.name, stepId.split(":")[0] ?? stepId, seconds),
      }),
      EvidenceLog.open(redis, deps.dataDir, a.jobId, { groupCommit: true }).then((l) => {
        opened.evidence = l;
        return l;
      }),
    ]);
    if (cancelled > 0) cancel.abort();
    // An earlier attempt that got as far as the request record (then crashed, stalled or failed) makes this one
    // a resumption, whatever BullMQ counted (a stall or a wait for locks does not count as an attempt).
    const requestedBefore = log.knownRecords().some((r) => r.kind === "requested");
    await log.append(
      "lock",
      {
        event: "acquired",
        locks: locks.locks,
        waitedMs: Date.now() - held.startedAt,
        worker: deps.workerId,
      },
      a.data.actor,
    );
    // Its stored result is read only for a job marked ended (rare): every other delivery is spared the read.
    const stored = ended ? await storedJobResult(redis, a.jobId) : undefined;
    if (ended && stored) {
      await log.append(
        "note",
        { event: "ended-before", outcome: ended, worker: deps.workerId, attempt: a.job.attemptsMade + 1 },
        a.data.actor,
      );
      a.log.warn({ outcome: ended }, "job had already ended; delivered again, nothing is run");
      return { endedBefore: ended, stored };
    }
    // Marked ended but its result was not stored (the write failed): the job runs again from its checkpoints, so
    // no finished step runs twice and its result is recorded once more.
    if (ended) a.log.warn({ outcome: ended }, "job was marked ended without a stored result; it resumes");
    const facts: JobFacts | undefined = a.plan
      ? { jobId: a.jobId, runbook: a.runbook.name, planDigest: a.plan.planDigest, requester: a.data.actor }
      : undefined;
    const result = await runJob({
      runbook: a.runbook,
      params: a.data.params,
      ...(a.plan ? { admitted: a.plan } : {}),
      jobId: a.jobId,
      fleet: deps.fleet,
      shells,
      files: jobFiles(deps.fleet, lease),
      hostChecks: hostChecks(deps.fleet, lease),
      evidence: log,
      checkpoints,
      signal: cancel.signal,
      locks: lockPort(locks, deps.lockWaitMs, deps.fleet, a.jobId),
      // Logins go through the guard only, under this job's locks, on this job's shells.
      guard: jobGuard({
        guard: deps.loginGuard,
        shells,
        fleet: deps.fleet,
        jobId: a.jobId,
        locks,
        evidence: log,
        actor: a.data.actor,
        runbook: a.runbook.name,
        redis,
        ...(facts ? { approvalFacts: facts } : {}),
      }),
      attempt: requestedBefore ? Math.max(2, a.job.attemptsMade + 1) : a.job.attemptsMade + 1,
      actor: a.data.actor,
      log: a.log,
      ...(deps.azure ? { azure: deps.azure } : {}),
      ...(deps.keyVault ? { keyVault: deps.keyVault } : {}),
      // Requests carry the requester; a granted one is re-verified (signatures, registry, plan) when read.
      approvals: facts
        ? signedApprovalsStore(deps.approvals, facts, deps.fleet, log, () =>
            loadApproverKeys(redis, deps.fleet, { checkCounters: false }),
          )
        : deps.approvals,
      approvalPollMs: deps.approvalPollMs,
      state: deps.state,
      facts: deps.facts,
    });
    succeeded = result.status === "succeeded";
    return { result, evidence: log };
  } finally {
    cancel.stop();
    await progress.end(!succeeded);
    // Shells are confirmed closed here, before the locks go (letGo): nobody else's session may start while ours lives.
    await shells.close();
  }
}

/** The lock a job that locks none of its targets holds instead (lock). */
function jobLockResource(jobId: string): string {
  return `job:${jobId}`;
}

/** The job's locks as the engine sees them: a wait for approvals keeps only the devices it will change. */
function lockPort(locks: DeviceLockSet, waitMs: number, fleet: Fleet, jobId: string): JobLocksPort {
  return {
    throwIfLost: () => locks.throwIfLost(),
    // A Managed HSM a job will change is locked as `azure:<name>` and kept like a device; the job's own lock (if it
    // holds one) is always kept.
    narrowTo: (devices) =>
      locks.releaseExcept([
        jobLockResource(jobId),
        ...devices.flatMap((d) => {
          const device = fleet.devices.find((x) => x.name === d);
          return [...(device ? [deviceLockResource(device)] : []), `azure:${d}`];
        }),
      ]),
    widen: (resources) => locks.take(resources, waitMs),
  };
}

function child(log: JobLogger, bindings: Record<string, unknown>): JobLogger {
  const withChild = log as JobLogger & { child?: (b: Record<string, unknown>) => JobLogger };
  if (typeof withChild.child === "function") return withChild.child(bindings);
  return {
    info: (o, m) => log.info({ ...bindings, ...o }, m),
    warn: (o, m) => log.warn({ ...bindings, ...o }, m),
    error: (o, m) => log.error({ ...bindings, ...o }, m),
    debug: (o, m) => log.debug({ ...bindings, ...o }, m),
  };
}
