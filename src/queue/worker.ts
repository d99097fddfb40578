// The worker: takes jobs from the queue and runs them through the engine, `concurrency` at a time.
//
// Per job: admit → lock → scope → settle (process-job.ts): the plan is computed once, the locks of every device and
// client host it declares are taken (one fixed order, all or nothing), the steps run with checkpoints in Redis (a
// job picked up again after a crash or a stall skips every finished step), the locks are released and the outcome
// settled. Whether BullMQ retries a failed job is the engine's decision (`error.retryable`); a non-retryable failure
// is an UnrecoverableError, so no retry policy can touch it.
//
// One SshPool per worker process: connections are reused across jobs; the shells on them belong to one job (its
// JobShells, through a lease on the pool, closed and confirmed before the job's locks are released).
import { Worker } from "bullmq";
import { armGatewayFor } from "../azure/access.ts";
import { keyVaultAccessFor } from "../azure/key-vault-access.ts";
import type { Fleet } from "../config/schema.ts";
import { redact } from "../config/secret.ts";
import { approvalsStore } from "../coord/approvals.ts";
import type { KeyVaultPort } from "../engine/key-vault-ports.ts";
import type { AzurePort, JobLogger } from "../engine/ports.ts";
import { RedisStateStore } from "../engine/state.ts";
import type { EvidenceSigner } from "../evidence/signing.ts";
import { RedisFactStore } from "../facts/store.ts";
import { LoginGuard } from "../guard/guard.ts";
import { type ConnectRedisOptions, connectRedis, type RedisClient } from "../redis/client.ts";
import { type PoolEvent, SshPool } from "../transport/pool.ts";
import type { TrustStore } from "../transport/trust-store.ts";
import { fleetDigest, type JobData, type JobSummary, QUEUE_NAME, QUEUE_PREFIX } from "./jobs.ts";
import { type JobProcessDeps, processJob } from "./process-job.ts";

/** What the daemon's metrics want to hear from a worker (prom-client lives in src/daemon). */
export interface WorkerMetrics {
  lockWait(seconds: number, acquired: boolean): void;
  stepFinished(runbook: string, step: string, seconds: number): void;
  jobStarted(runbook: string): void;
  /**
   * `outcome`: the job's outcome word (src/engine/outcome.ts), `error` when the worker itself failed, `ended-before`
   * for a delivery of a job that had already ended (nothing run).
   */
  jobFinished(runbook: string, outcome: string): void;
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
  /** How often a job waiting for approvals re-reads them (default 1 s). */
  approvalPollMs?: number;
  workerId?: string;
  log?: JobLogger;
  metrics?: WorkerMetrics;
  trustStore?: TrustStore;
  /** Signs each job's evidence chain head when an attempt ends. */
  evidenceSigner?: EvidenceSigner;
  /**
   * ARM for deprovisioning (ctx.azure). Default: `armGatewayFor(fleet)` (the fleet's `azure` block, system CA store,
   * DefaultAzureCredential); the twin's daemon passes one built for the twin's ARM (its endpoint and CA).
   */
  azure?: AzurePort;
  /**
   * Managed HSM / Key Vault (ctx.keyVault). Default: `keyVaultAccessFor(fleet)` (production endpoints, system CA
   * store, DefaultAzureCredential); the twin's daemon passes one built for the twin (its endpoints and CAs).
   */
  keyVault?: KeyVaultPort;
  /** Start taking jobs right away (default true). */
  autorun?: boolean;
}

export interface RunningWorker {
  worker: Worker<JobData, JobSummary>;
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
  const redis = connectRedis({ ...opts.redis, flavour: "command", connectionName: `lunafleet:${workerId}` });
  const azure = opts.azure ?? defaultAzure(fleet, log);
  const keyVault = opts.keyVault ?? defaultKeyVault(fleet, log);
  const approvals = approvalsStore(redis);
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

  const deps: JobProcessDeps = {
    fleet,
    digest,
    redis,
    pool,
    loginGuard: new LoginGuard(redis),
    // Durable facts between jobs (ha-recover's per-member breaker): without it such runbooks fail at their first step.
    state: new RedisStateStore(redis),
    approvals,
    facts: new RedisFactStore(redis),
    azure,
    keyVault,
    metrics,
    log,
    workerId,
    dataDir: opts.dataDir,
    lockTtlMs: opts.lockTtlMs ?? 15_000,
    lockWaitMs: opts.lockWaitMs ?? 10_000,
    cancelPollMs: opts.cancelPollMs ?? 500,
    approvalPollMs: opts.approvalPollMs ?? 1_000,
    evidenceSigner: opts.evidenceSigner,
  };
  const worker = new Worker<JobData, JobSummary>(QUEUE_NAME, (job, token) => processJob(deps, job, token), {
    connection: bullConnection as never,
    prefix: QUEUE_PREFIX,
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

/** Managed HSM / Key Vault access for fleets that declare it (src/azure/key-vault-access.ts rules); else undefined. */
function defaultKeyVault(fleet: Fleet, log: JobLogger): KeyVaultPort | undefined {
  try {
    return keyVaultAccessFor(fleet);
  } catch (err) {
    log.warn(
      { error: (err as Error).message },
      "azure: Managed HSM / Key Vault not configured; their runbooks will stop at ctx.keyVault",
    );
    return undefined;
  }
}
