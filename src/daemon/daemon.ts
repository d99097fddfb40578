// The daemon: Redis (embedded unless REDIS_URL says otherwise), the worker, the maintenance-window schedulers, the
// published fleet, and the local HTTP endpoint (/metrics, /healthz). More daemons on the same Redis are more workers:
// device locks, checkpoints, the guard ledger and the schedulers all live in Redis.
import { hostname } from "node:os";
import { join } from "node:path";
import type { Queue } from "bullmq";
import { loadFleet } from "../config/load.ts";
import type { Fleet } from "../config/schema.ts";
import { consoleUrl } from "../console/routes.ts";
import { type EvidenceSigner, loadOrCreateSigner } from "../evidence/signing.ts";
import { type Notifier, startNotifier } from "../notify/notifier.ts";
import { createJobQueue, fleetDigest, type JobData, osAccountName, publishFleet } from "../queue/jobs.ts";
import { syncSchedules } from "../queue/schedules.ts";
import { type RunningWorker, type StartWorkerOptions, startWorker } from "../queue/worker.ts";
import {
  type ConnectRedisOptions,
  connectRedis,
  type RedisClient,
  redisTargetFromEnv,
} from "../redis/client.ts";
import { type EmbeddedRedis, startEmbeddedRedis } from "../redis/embedded-server.ts";
import { TrustStore } from "../transport/trust-store.ts";
import { type DaemonApiOptions, startDaemonApi } from "./api.ts";
import { claimFleet, type FleetClaim } from "./fleet-claim.ts";
import { registerFleetMetrics } from "./fleet-metrics.ts";
import { applyHeapGrowth } from "./heap.ts";
import { type DaemonHttp, startDaemonHttp } from "./http.ts";
import { createLogger, type DaemonLogger } from "./logger.ts";
import { createMetrics, type DaemonMetrics } from "./metrics.ts";

export interface StartDaemonOptions {
  fleet?: Fleet;
  fleetFile?: string;
  /** How the fleet is named to other daemons when it is given as an object (its file path, for the CLI). */
  fleetName?: string;
  /** A shared Redis (redis://, unix://, redis-sentinel://, redis-cluster://). Default: REDIS_* env, else embedded. */
  redisUrl?: string;
  /** lunafleet state: embedded Redis (socket, AOF), evidence files. */
  dataDir: string;
  concurrency?: number;
  /** Local HTTP port for /metrics and /healthz; 0 = ephemeral; null = no HTTP. */
  httpPort?: number | null;
  log?: DaemonLogger;
  /**
   * Host keys confirmed outside the fleet file (`lunafleet fleet trust`, `lunafleet sim --trust-host-keys`), for
   * targets the fleet file pins none for. Default: the data dir's known_hosts.json (read once, at start).
   */
  trustStore?: TrustStore;
  /** Worker tuning (lock TTLs, stall detection), mostly for tests; `azure`: the ARM gateway (twin: its ARM + CA). */
  worker?: Partial<
    Pick<
      StartWorkerOptions,
      "lockTtlMs" | "lockWaitMs" | "jobLockMs" | "stalledIntervalMs" | "cancelPollMs" | "azure" | "keyVault"
    >
  >;
  workerId?: string;
  /**
   * Start even though the daemons running on this Redis run another fleet (digest), replacing theirs; recorded as
   * evidence. Without it such a daemon refuses to start (src/daemon/fleet-claim.ts).
   */
  replaceFleet?: boolean;
  /** How often this daemon says it is alive (and looks for a replacement of its fleet); default 5 s. Tests. */
  fleetHeartbeatMs?: number;
  /** Sync the fleet's maintenance windows into job schedulers (default true). */
  schedules?: boolean;
  /** The HTTPS API (src/api); null or absent = not served. */
  api?: DaemonApiOptions | null;
  /** The ed25519 key that signs evidence chain heads; default <dataDir>/evidence-signing-key.pem (created). */
  evidenceKeyFile?: string;
  /** Stop cleanly on SIGINT/SIGTERM and then exit the process (default false; the CLI turns it on). */
  handleSignals?: boolean;
}

export interface Daemon {
  fleet: Fleet;
  dataDir: string;
  /** Where Redis is, for clients (unix://… for the embedded one). */
  redisUrl: string | undefined;
  redisOptions: ConnectRedisOptions;
  redis: RedisClient;
  queue: Queue<JobData>;
  worker: RunningWorker;
  metrics: DaemonMetrics;
  http: DaemonHttp | undefined;
  /** The HTTPS API, when served. */
  api: Awaited<ReturnType<typeof startDaemonApi>> | undefined;
  /** Webhook notifications, when the fleet lists webhooks (src/notify). */
  notifier: Notifier | undefined;
  evidenceSigner: EvidenceSigner;
  log: DaemonLogger;
  embeddedRedis: EmbeddedRedis | undefined;
  stop(): Promise<void>;
}

const STOP_STEP_MS = 10_000;

export async function startDaemon(opts: StartDaemonOptions): Promise<Daemon> {
  const log = opts.log ?? createLogger();
  const fleet = opts.fleet ?? (opts.fleetFile ? loadFleet(opts.fleetFile) : undefined);
  if (!fleet) throw new Error("startDaemon: give a fleet or a fleet file");
  const heapGrowingPercent = applyHeapGrowth();
  log.debug({ heapGrowingPercent: heapGrowingPercent ?? "v8 default" }, "heap growth policy");

  let embedded: EmbeddedRedis | undefined;
  let redisOptions: ConnectRedisOptions;
  let redisUrl: string | undefined;
  if (opts.redisUrl) {
    redisOptions = { url: opts.redisUrl };
    redisUrl = opts.redisUrl;
  } else if (redisTargetFromEnv(process.env)) {
    redisOptions = {};
    redisUrl = process.env.REDIS_URL;
  } else {
    embedded = await startEmbeddedRedis({
      dataDir: opts.dataDir,
      handleSignals: false,
      // A daemon killed with SIGKILL leaves its redis-server running: the next start replaces it (checked ours).
      onOrphanReplaced: (info) =>
        log.warn(info, "replaced the embedded redis-server a killed daemon left running on this data dir"),
    });
    redisOptions = { url: embedded.url };
    redisUrl = embedded.url;
    log.info({ socket: embedded.socketPath, pid: embedded.pid }, "embedded redis started");
  }

  const redis = connectRedis({ ...redisOptions, connectionName: "lunafleet:daemon" });
  const queue = createJobQueue(redis);
  const metrics = createMetrics(queue);
  registerFleetMetrics(metrics.registry, redis, fleet);
  let worker: RunningWorker | undefined;
  let http: DaemonHttp | undefined;
  let api: Awaited<ReturnType<typeof startDaemonApi>> | undefined;
  let notifier: Notifier | undefined;
  const evidenceSigner = loadOrCreateSigner(opts.dataDir, opts.evidenceKeyFile);
  let claim: FleetClaim | undefined;
  const cleanup = async () => {
    await bounded(claim?.release());
    await bounded(notifier?.close());
    await bounded(api?.close());
    await bounded(http?.close());
    await bounded(worker?.close());
    await bounded(queue.close());
    redis.disconnect();
    await bounded(embedded?.stop());
  };
  try {
    // One fleet per Redis: refuse (or, when told, replace and record) before publishing anything.
    claim = await claimFleet(redis, {
      daemonId: opts.workerId ?? `daemon-${hostname()}-${process.pid}`,
      digest: fleetDigest(fleet),
      fleetFile: opts.fleetFile ?? opts.fleetName ?? "(in-process fleet)",
      ...(opts.replaceFleet ? { replace: true } : {}),
      by: `operator:${osAccountName()}`,
      dataDir: opts.dataDir,
      signer: evidenceSigner,
      ...(opts.fleetHeartbeatMs ? { heartbeatMs: opts.fleetHeartbeatMs } : {}),
      onReplaced: (by) => {
        log.error(
          { fleetFile: by.fleetFile, digest: by.digest, daemonId: by.daemonId },
          "another daemon replaced this daemon's fleet (--replace-fleet): this worker takes no more jobs",
        );
        void worker?.worker.pause(true).catch(() => {});
      },
    });
    if (claim.replacementEvidence)
      log.warn(
        { evidence: claim.replacementEvidence },
        "replaced the fleet the other daemons ran (--replace-fleet)",
      );
    await publishFleet(redis, fleet);
    await evidenceSigner.publish(redis);
    if (opts.schedules ?? true) {
      const synced = await syncSchedules(queue, fleet);
      log.info(synced, "maintenance window schedulers synced");
    }
    worker = startWorker({
      fleet,
      dataDir: opts.dataDir,
      redis: redisOptions,
      concurrency: opts.concurrency ?? 16,
      log,
      metrics,
      trustStore: opts.trustStore ?? new TrustStore(join(opts.dataDir, "known_hosts.json")),
      evidenceSigner,
      ...(opts.workerId ? { workerId: opts.workerId } : {}),
      ...opts.worker,
    });
    const running = worker;
    if (opts.httpPort !== null && opts.httpPort !== undefined)
      http = await startDaemonHttp({
        port: opts.httpPort,
        registry: metrics.registry,
        health: async () => {
          const pong = await redis.ping().catch(() => "unreachable");
          const ok = pong === "PONG" && running.worker.isRunning();
          return {
            ok,
            redis: pong === "PONG" ? "ok" : pong,
            worker: running.worker.isRunning() ? "running" : "stopped",
          };
        },
      });
    if (opts.api)
      api = await startDaemonApi(
        { redis, queue, fleet, dataDir: opts.dataDir, evidenceSigner },
        opts.api,
        log,
      );
    if (fleet.notifications?.webhooks.length)
      notifier = startNotifier({
        fleet,
        dataDir: opts.dataDir,
        redis,
        redisOptions,
        jobsQueue: queue,
        evidenceSigner,
        consoleUrl: api
          ? consoleUrl(fleet, api.url)
          : fleet.console?.url
            ? `${fleet.console.url}/console/`
            : undefined,
        log,
      });
  } catch (err) {
    await cleanup();
    throw err;
  }
  log.info(
    { devices: fleet.devices.length, concurrency: opts.concurrency ?? 16, httpPort: http?.port ?? null },
    "daemon started",
  );

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      log.info({}, "daemon stopping");
      await cleanup();
      log.info({}, "daemon stopped");
    })();
    return stopping;
  };

  if (opts.handleSignals) {
    const onSignal = (signal: NodeJS.Signals) => {
      log.info({ signal }, "signal received; stopping");
      stop().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    };
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
  }

  return {
    fleet,
    dataDir: opts.dataDir,
    redisUrl,
    redisOptions,
    redis,
    queue,
    worker: worker!,
    metrics,
    http,
    api,
    notifier,
    evidenceSigner,
    log,
    embeddedRedis: embedded,
    stop,
  };
}

/** One shutdown step may not hold up the rest for ever. */
async function bounded(p: Promise<unknown> | undefined): Promise<void> {
  if (!p) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    p.catch(() => {}),
    new Promise<void>((r) => {
      timer = setTimeout(r, STOP_STEP_MS);
    }),
  ]);
  clearTimeout(timer);
}
