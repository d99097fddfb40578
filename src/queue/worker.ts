// The worker: takes jobs from the queue and runs them through the engine, `concurrency` at a time.
//
// Per job: take the locks of every device and client host the runbook declares (one fixed order, all or nothing),
// open the job's evidence, run the steps with checkpoints in Redis (a job picked up again after a crash or a stall
// skips every finished step), release the locks. Whether BullMQ retries a failed job is the engine's decision
// (`error.retryable`); a non-retryable failure is an UnrecoverableError, so no retry policy can touch it.
//
// One SshPool per worker process: connections are reused across jobs; the shells on them belong to one job (see
// job-sessions.ts).
import { DelayedError, type Job, UnrecoverableError, Worker } from "bullmq";
import { getRunbook } from "../../runbooks/index.ts";
import { armGatewayFor } from "../azure/access.ts";
import type { Fleet } from "../config/schema.ts";
import { redact } from "../config/secret.ts";
import { approvalsPort } from "../coord/approvals.ts";
import { acquireDeviceLocks, type DeviceLockSet, LockUnavailableError } from "../coord/locks.ts";
import { type CheckpointRecord, type CheckpointStore, RedisCheckpointStore } from "../engine/checkpoints.ts";
import type { AzurePort, JobLogger } from "../engine/context.ts";
import { JobCancelled } from "../engine/errors.ts";
import { planJob } from "../engine/plan.ts";
import type { JobTargets } from "../engine/runbook.ts";
import { type JobResult, runJob } from "../engine/runner.ts";
import { RedisStateStore } from "../engine/state.ts";
import { EvidenceLog } from "../evidence/log.ts";
import { LoginGuard } from "../guard/guard.ts";
import { jobGuard } from "../guard/job-guard.ts";
import { type ConnectRedisOptions, connectRedis, type RedisClient } from "../redis/client.ts";
import { type PoolEvent, SshPool } from "../transport/pool.ts";
import type { TrustStore } from "../transport/trust-store.ts";
import { recordFindings } from "./findings.ts";
import { openJobSessions } from "./job-sessions.ts";
import { cancelKey, fleetDigest, type JobData, QUEUE_NAME, resultKey } from "./jobs.ts";
import { delayUntilWindow, findWindow } from "./schedules.ts";

/** What the daemon's metrics want to hear from a worker (prom-client lives in src/daemon). */
export interface WorkerMetrics {
  lockWait(seconds: number, acquired: boolean): void;
  stepFinished(runbook: string, step: string, seconds: number): void;
  jobStarted(runbook: string): void;
  jobFinished(runbook: string, status: string): void;
  sshConnections(delta: number): void;
  shellChannels(delta: number): void;
}

export interface JobProgress {
  total: number;
  done: number;
  step?: string;
  title?: string;
}

export interface StartWorkerOptions {
  fleet: Fleet;
  /** Evidence files live under `<dataDir>/evidence`. */
  dataDir: string;
  /** Where Redis is (url/target/socketPath, or REDIS_* env). */
  redis: ConnectRedisOptions;
  /** Jobs run at once by this process (default 16). */
  concurrency?: number;
  /** Device lock TTL; renewed every third of it (default 15 s). A dead worker's locks free themselves after it. */
  lockTtlMs?: number;
  /** How long a job waits for its device locks before going back to the queue for a while (default 10 s). */
  lockWaitMs?: number;
  /** BullMQ job lock; a worker that stops renewing it (killed) has its jobs picked up again (default 15 s). */
  jobLockMs?: number;
  /** How often BullMQ looks for stalled jobs (default 5 s). */
  stalledIntervalMs?: number;
  /** How often a running job checks its cancel flag (default 500 ms). */
  cancelPollMs?: number;
  workerId?: string;
  log?: JobLogger;
  metrics?: WorkerMetrics;
  trustStore?: TrustStore;
  /**
   * ARM for deprovisioning (ctx.azure). Default: `armGatewayFor(fleet)` (the fleet's `azure` block, system CA store,
   * DefaultAzureCredential); the twin's daemon passes one built for the twin's ARM (its endpoint and CA).
   */
  azure?: AzurePort;
  /** Start taking jobs right away (default true). */
  autorun?: boolean;
}

export interface RunningWorker {
  worker: Worker<JobData, JobResult>;
  pool: SshPool;
  redis: RedisClient;
  readonly workerId: string;
  /** Stop taking jobs, let the running ones finish (or give up after `timeoutMs`), close connections. */
  close(opts?: { force?: boolean }): Promise<void>;
}

const silent: JobLogger = { info() {}, warn() {}, error() {}, debug() {} };

export function startWorker(opts: StartWorkerOptions): RunningWorker {
  const fleet = opts.fleet;
  const digest = fleetDigest(fleet);
  const log = opts.log ?? silent;
  const metrics = opts.metrics;
  const workerId = opts.workerId ?? `worker-${process.pid}`;
  const lockTtlMs = opts.lockTtlMs ?? 15_000;
  const lockWaitMs = opts.lockWaitMs ?? 10_000;
  const cancelPollMs = opts.cancelPollMs ?? 500;
  const redis = connectRedis({ ...opts.redis, flavour: "command", connectionName: `lunafleet:${workerId}` });
  const azure = opts.azure ?? defaultAzure(fleet, log);
  const approvals = approvalsPort(redis);
  const bullConnection = connectRedis({
    ...opts.redis,
    flavour: "worker",
    connectionName: `lunafleet:${workerId}:bull`,
  });
  const pool = new SshPool({
    trustStore: opts.trustStore,
    onEvent: (e: PoolEvent) => {
      if (e.type === "connect") metrics?.sshConnections(1);
      else if (e.type === "closed") metrics?.sshConnections(-1);
    },
  });

  const loginGuard = new LoginGuard(redis);
  // Durable facts between jobs (ha-recover's per-member breaker): without it such runbooks fail at their first step.
  const state = new RedisStateStore(redis);

  const processJob = async (job: Job<JobData, JobResult>, token?: string): Promise<JobResult> => {
    const data = job.data;
    const jobId = job.id;
    if (!jobId) throw new UnrecoverableError("job without id");
    const jlog = child(log, { jobId, runbook: data.runbook, worker: workerId });
    if (data.fleetDigest && data.fleetDigest !== digest)
      jlog.warn(
        { submitted: data.fleetDigest, worker: digest },
        "job was validated against another version of the fleet; this worker's fleet decides",
      );
    let runbook: ReturnType<typeof getRunbook>;
    try {
      runbook = getRunbook(data.runbook);
    } catch (err) {
      throw new UnrecoverableError(redact((err as Error).message));
    }

    // A scheduled job runs inside its window only; outside it, it waits for the next window start.
    if (data.window) {
      const window = findWindow(fleet, data.window);
      if (!window) throw new UnrecoverableError(`maintenance window '${data.window}' is not in the fleet`);
      const delay = delayUntilWindow(window);
      if (delay > 0) {
        jlog.info(
          { window: data.window, delayMs: delay },
          "outside its maintenance window; waits for the next",
        );
        await job.moveToDelayed(Date.now() + delay, token);
        throw new DelayedError();
      }
    }

    // What the job touches. A job whose parameters or targets do not resolve runs without locks: the engine
    // refuses it before step 1 and records why.
    let targets: JobTargets | undefined;
    let total = 0;
    try {
      const plan = planJob(runbook, data.params, fleet);
      targets = plan.targets;
      total = plan.steps.length;
    } catch {
      targets = undefined;
    }
    const resources = targets
      ? [...targets.devices.map((d) => `device:${d}`), ...targets.clientHosts.map((h) => `client:${h}`)]
      : [];

    let locks: DeviceLockSet | undefined;
    const lockStart = Date.now();
    if (resources.length > 0) {
      try {
        locks = await acquireDeviceLocks(redis, resources, {
          owner: jobId,
          ttlMs: lockTtlMs,
          waitMs: lockWaitMs,
          onLost: (err) =>
            jlog.error({ error: err.message }, "device lock lost; the job stops before its next step"),
        });
        metrics?.lockWait((Date.now() - lockStart) / 1000, true);
      } catch (err) {
        if (err instanceof LockUnavailableError) {
          // Busy devices: give the worker slot back and try again a little later (not a failed attempt).
          metrics?.lockWait((Date.now() - lockStart) / 1000, false);
          jlog.info(
            { resource: err.resource, heldBy: err.heldBy },
            "device busy; job goes back to the queue",
          );
          await job.moveToDelayed(Date.now() + 250 + Math.floor(Math.random() * 750), token);
          throw new DelayedError();
        }
        throw err;
      }
    }

    const cancel = new AbortController();
    const poll = setInterval(() => {
      redis
        .exists(cancelKey(jobId))
        .then((n) => {
          if (n > 0 && !cancel.signal.aborted) {
            jlog.warn({}, "cancel requested");
            cancel.abort(new JobCancelled(`job ${jobId} cancelled by an operator`));
          }
        })
        .catch(() => {});
    }, cancelPollMs);
    poll.unref();
    const scope = openJobSessions(fleet, pool, {
      onChannelOpen: () => metrics?.shellChannels(1),
      onChannelClose: () => metrics?.shellChannels(-1),
    });
    let evidence: EvidenceLog | undefined;
    let finishedStatus = "error";
    metrics?.jobStarted(runbook.name);
    try {
      if ((await redis.exists(cancelKey(jobId))) > 0) cancel.abort();
      evidence = await EvidenceLog.open(redis, opts.dataDir, jobId, { groupCommit: true });
      // An earlier attempt that got as far as the request record (then crashed, stalled or failed) makes this one
      // a resumption, whatever BullMQ counted (a stall or a wait for locks does not count as an attempt).
      const requestedBefore = evidence.knownRecords().some((r) => r.kind === "requested");
      if (locks)
        await evidence.append(
          "lock",
          { event: "acquired", locks: locks.locks, waitedMs: Date.now() - lockStart, worker: workerId },
          data.actor,
        );
      const store = new RedisCheckpointStore(redis);
      // Read once: the runner asks for the same job's finished steps right after (one round trip less per job).
      const finishedAtStart = await store.finishedSteps(jobId);
      let done = finishedAtStart.size;
      if (done > 0) await job.updateProgress({ total, done } satisfies JobProgress).catch(() => {});
      let firstRead: Promise<Map<string, CheckpointRecord>> | undefined = Promise.resolve(finishedAtStart);
      const checkpoints: CheckpointStore = {
        finishedSteps: (id) => {
          const read = id === jobId && firstRead ? firstRead : store.finishedSteps(id);
          firstRead = undefined;
          return read;
        },
        async recordStepResult(id, stepId, result, meta) {
          await store.recordStepResult(id, stepId, result, meta);
          done += 1;
          const seconds = (Date.parse(meta.finishedAt) - Date.parse(meta.startedAt)) / 1000;
          metrics?.stepFinished(runbook.name, stepId.split(":")[0] ?? stepId, seconds);
          await job
            .updateProgress({ total, done, step: stepId, title: meta.title } satisfies JobProgress)
            .catch(() => {});
        },
      };
      const result = await runJob({
        runbook,
        params: data.params,
        jobId,
        fleet,
        sessions: scope.provider,
        evidence,
        checkpoints,
        signal: cancel.signal,
        ...(locks
          ? {
              locks,
              // Logins go through the guard only, under this job's locks, on this job's shells.
              guard: jobGuard({
                guard: loginGuard,
                sessions: scope.sessions,
                fleet,
                jobId,
                locks,
                evidence,
                actor: data.actor,
                redis: redis,
              }),
            }
          : {}),
        attempt: requestedBefore ? Math.max(2, job.attemptsMade + 1) : job.attemptsMade + 1,
        actor: data.actor,
        log: jlog,
        ...(azure ? { azure } : {}),
        approvals,
        state,
      });
      await redis.set(resultKey(jobId), JSON.stringify(result), "EX", 30 * 86_400);
      finishedStatus = result.status;
      if (result.status === "succeeded") {
        await recordFindings(redis, result);
        return result;
      }
      const why = `${result.error?.type ?? "Error"}: ${result.error?.message ?? "failed"}`;
      if (result.status === "cancelled" || !result.error?.retryable) throw new UnrecoverableError(why);
      throw new Error(why);
    } finally {
      metrics?.jobFinished(runbook.name, finishedStatus);
      clearInterval(poll);
      // Shells first (confirmed closed), then the locks: nobody else's session may start while ours lives.
      await scope.close();
      if (locks) {
        const released = await locks.release().catch(() => [] as string[]);
        await evidence
          ?.append("lock", { event: "released", resources: released, worker: workerId }, data.actor)
          .catch(() => {});
      }
      // The chain is sealed: its file copy complete and fsynced (group commit), the seal hooks run.
      await evidence?.close();
    }
  };

  const worker = new Worker<JobData, JobResult>(QUEUE_NAME, processJob, {
    connection: bullConnection as never,
    concurrency: opts.concurrency ?? 16,
    lockDuration: opts.jobLockMs ?? 15_000,
    stalledInterval: opts.stalledIntervalMs ?? 5_000,
    maxStalledCount: 3,
    autorun: opts.autorun ?? true,
    name: workerId,
  });
  worker.on("error", (err) => log.error({ error: redact(err.message) }, "worker error"));
  worker.on("failed", (job, err) =>
    log.warn(
      { jobId: job?.id, error: redact(err.message), attempts: job?.attemptsMade },
      "job attempt failed",
    ),
  );
  worker.on("completed", (job) => log.info({ jobId: job.id, runbook: job.data.runbook }, "job completed"));

  let closing: Promise<void> | undefined;
  return {
    worker,
    pool,
    redis,
    workerId,
    close(closeOpts = {}) {
      closing ??= (async () => {
        await worker.close(closeOpts.force ?? false).catch(() => {});
        await pool.closeAll().catch(() => {});
        redis.disconnect();
        bullConnection.disconnect();
      })();
      return closing;
    },
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

/**
 * The ARM gateway for fleets that name Dedicated HSM resources (src/azure/access.ts rules); undefined (ctx.azure
 * unavailable, the job stops there) when there is none or it cannot be built safely.
 */
function defaultAzure(fleet: Fleet, log: JobLogger): AzurePort | undefined {
  try {
    return armGatewayFor(fleet);
  } catch (err) {
    log.warn(
      { error: (err as Error).message },
      "azure: not configured; deprovisioning jobs will stop at ctx.azure",
    );
    return undefined;
  }
}
