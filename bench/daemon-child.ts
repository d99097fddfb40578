// One daemon in its own process for the scale-out figure (bench/scale-out.ts). Usage:
//   node --import tsx bench/daemon-child.ts <endpoints.json> <redis-url> <data-dir> <worker-id> <concurrency>
// The fleet is rebuilt from the device count and the twin's endpoints (names, addresses, host keys — no secrets on
// disk), exactly as the parent built it. Prints "READY" once its worker takes jobs; then, on stdin, `stats` answers
// one JSON line {cpuMs, rss, lockWaitSeconds}; `stop` (or stdin closing) stops it.
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { startDaemon } from "../src/daemon/daemon.ts";
import { createLogger } from "../src/daemon/logger.ts";
import { type BenchEndpoint, benchFleet, pinFleet } from "./fleet.ts";

const [endpointsFile, redisUrl, dataDir, workerId, concurrency] = process.argv.slice(2);
if (!endpointsFile || !redisUrl || !dataDir || !workerId || !concurrency) {
  process.stderr.write(
    "usage: daemon-child.ts <endpoints.json> <redis-url> <data-dir> <worker-id> <concurrency>\n",
  );
  process.exit(2);
}
const endpoints = JSON.parse(readFileSync(endpointsFile, "utf8")) as BenchEndpoint[];
const fleet = pinFleet(benchFleet(endpoints.length), endpoints);
const daemon = await startDaemon({
  fleet,
  redisUrl,
  dataDir,
  workerId,
  concurrency: Number(concurrency),
  httpPort: null,
  schedules: false,
  log: createLogger({ level: "silent" }),
});
await daemon.worker.worker.waitUntilReady();
process.stdout.write("READY\n");

const lockWaitSeconds = async () => {
  const metric = daemon.metrics.registry.getSingleMetric("lunafleet_device_lock_wait_seconds");
  return ((await metric?.get())?.values ?? [])
    .filter((v) => (v as { metricName?: string }).metricName?.endsWith("_sum"))
    .reduce((sum, v) => sum + v.value, 0);
};
let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await daemon.stop();
  process.exit(0);
};
const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => {
  if (line.trim() === "stats") {
    const u = process.cpuUsage();
    void lockWaitSeconds().then((lw) =>
      process.stdout.write(
        `${JSON.stringify({ cpuMs: (u.user + u.system) / 1000, rss: process.memoryUsage.rss(), lockWaitSeconds: lw })}\n`,
      ),
    );
  } else if (line.trim() === "stop") void stop();
});
rl.on("close", () => void stop());
