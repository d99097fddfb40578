// A daemon worker in its own process, for the scale-out test: REDIS_URL, LF_FLEET (a twin fleet file), LF_DATA_DIR,
// LF_WORKER_ID. Short lock and stall timings so a SIGKILLed process's jobs are picked up within a second or two.
import { loadFleet } from "../../src/config/load.ts";
import { startWorker } from "../../src/queue/worker.ts";

const env = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`worker-child: ${name} is not set`);
  return v;
};

const worker = startWorker({
  fleet: loadFleet(env("LF_FLEET")),
  dataDir: env("LF_DATA_DIR"),
  redis: { url: env("REDIS_URL") },
  concurrency: Number(process.env.LF_CONCURRENCY ?? 4),
  workerId: env("LF_WORKER_ID"),
  lockTtlMs: 900,
  lockWaitMs: 3000,
  jobLockMs: 1000,
  stalledIntervalMs: 400,
  cancelPollMs: 200,
});
await worker.worker.waitUntilReady();
process.stdout.write("READY\n");
process.once("SIGTERM", () => {
  void worker.close().then(() => process.exit(0));
});
