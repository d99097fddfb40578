// Redis restarted mid-run (embedded server, append-only file): queued and running jobs survive and complete, and
// their evidence still verifies.
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, expect, it } from "vitest";
import { DEMO_FLEET_FILE } from "../../src/cli/demo.ts";
import { loadFleet } from "../../src/config/load.ts";
import { type Daemon, startDaemon } from "../../src/daemon/daemon.ts";
import { createLogger } from "../../src/daemon/logger.ts";
import { verifyJobEvidence } from "../../src/evidence/log.ts";
import { submitJob } from "../../src/queue/jobs.ts";
import { startTwin, type Twin } from "../../src/sim/twin.ts";
import { withRedis } from "../helpers/redis.ts";

const redis = await withRedis();
let twin: Twin;
let daemon: Daemon;

beforeAll(async () => {
  twin = await startTwin(loadFleet(DEMO_FLEET_FILE), { rebase: true });
  for (const name of twin.appliances.keys()) await twin.setFault(name, "slow", "60");
  daemon = await startDaemon({
    fleet: twin.fleet,
    redisUrl: redis.url,
    dataDir: redis.dataDir,
    concurrency: 4,
    httpPort: null,
    schedules: false,
    log: createLogger({ level: "silent" }),
    worker: { lockTtlMs: 3000, jobLockMs: 3000, stalledIntervalMs: 1000 },
  });
});

afterAll(async () => {
  await daemon?.stop();
  await twin?.stop();
});

it("queued and running jobs survive a Redis restart and complete", async () => {
  const ids: string[] = [];
  for (let i = 0; i < 18; i++) {
    const device = twin.fleet.devices[i % 6]!.name;
    ids.push(
      (await submitJob(daemon.queue, { fleet: twin.fleet, runbook: "patch-verify", target: device })).jobId,
    );
  }
  // Restart while some jobs run and others still wait.
  for (let i = 0; i < 200; i++) {
    const c = await daemon.queue.getJobCounts("active", "completed");
    if ((c.active ?? 0) > 0 && (c.completed ?? 0) > 0) break;
    await sleep(20);
  }
  const before = await daemon.queue.getJobCounts("active", "waiting", "completed");
  expect(before.active).toBeGreaterThan(0);
  expect(before.waiting).toBeGreaterThan(0);
  await redis.restart();

  const deadline = Date.now() + 30_000;
  let counts = await daemon.queue.getJobCounts("completed", "failed");
  while ((counts.completed ?? 0) + (counts.failed ?? 0) < ids.length && Date.now() < deadline) {
    await sleep(100);
    counts = await daemon.queue.getJobCounts("completed", "failed");
  }
  expect(counts).toMatchObject({ completed: ids.length, failed: 0 });
  for (const id of ids) {
    const job = await daemon.queue.getJob(id);
    expect(job?.returnvalue?.status).toBe("succeeded");
    expect((await verifyJobEvidence(daemon.redis, redis.dataDir, id)).ok).toBe(true);
  }
});
