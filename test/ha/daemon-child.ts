// A whole daemon in its own process for the failover tests: REDIS_URL (Sentinel or Cluster), LF_FLEET (a twin fleet
// file), LF_DATA_DIR, LF_WORKER_ID. Lock and stall timings short enough that a job whose locks a failover took is
// picked up again within seconds, long enough that a failover (a second or two) does not take them.
import { startDaemon } from "../../src/daemon/daemon.ts";
import { createLogger } from "../../src/daemon/logger.ts";

const env = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`daemon-child: ${name} is not set`);
  return v;
};

const daemon = await startDaemon({
  fleetFile: env("LF_FLEET"),
  redisUrl: env("REDIS_URL"),
  dataDir: env("LF_DATA_DIR"),
  workerId: env("LF_WORKER_ID"),
  concurrency: Number(process.env.LF_CONCURRENCY ?? 4),
  httpPort: null,
  schedules: false,
  log: createLogger({ level: process.env.LF_LOG_LEVEL ?? "silent" }),
  worker: { lockTtlMs: 8000, lockWaitMs: 3000, jobLockMs: 8000, stalledIntervalMs: 2000, cancelPollMs: 500 },
});
await daemon.worker.worker.waitUntilReady();
process.stdout.write("READY\n");
process.once("SIGTERM", () => {
  void daemon.stop().then(() => process.exit(0));
});
