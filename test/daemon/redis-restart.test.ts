// Redis restarted mid-run (embedded server, append-only file): queued and running jobs survive and complete, and
// their evidence still verifies.
//
// "Some jobs run and others still wait" at the restart holds by construction, not by catching the queue at the right
// moment: the test holds the device locks of three appliances, so the jobs for them, once taken, stay active (waiting
// for their device) and, once every worker slot holds one, the rest stay queued; the jobs for the other three run
// to the end meanwhile. The held locks are given back after the restart.
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, expect, it } from "vitest";
import { DEMO_FLEET_FILE } from "../../src/cli/demo.ts";
import { loadFleet } from "../../src/config/load.ts";
import { deviceLockResource } from "../../src/config/model.ts";
import { acquireDeviceLocks } from "../../src/coord/locks.ts";
import { type Daemon, startDaemon } from "../../src/daemon/daemon.ts";
import { createLogger } from "../../src/daemon/logger.ts";
import { verifyJobEvidence } from "../../src/evidence/log.ts";
import { storedJobResult } from "../../src/queue/job-outcome.ts";
import { resultKey, submitJob } from "../../src/queue/jobs.ts";
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
    // lockWaitMs: a job waits for the device this test holds until the test gives it back; the bound is a hang guard.
    worker: { lockTtlMs: 3000, jobLockMs: 3000, stalledIntervalMs: 1000, lockWaitMs: 600_000 },
  });
});

afterAll(async () => {
  await daemon?.stop();
  await twin?.stop();
});

it("queued and running jobs survive a Redis restart and complete", async () => {
  const devices = twin.fleet.devices.slice(0, 6);
  const held = devices.slice(0, 3);
  const free = devices.slice(3);
  // Taken and kept by the test (no renewal, a TTL far beyond the test): jobs for these devices wait for them.
  const holder = await acquireDeviceLocks(daemon.redis, held.map(deviceLockResource), {
    owner: "redis-restart-test",
    ttlMs: 600_000,
    waitMs: 0,
    autoRenew: false,
  });
  // In queue order: one job per held device (3 of the 4 worker slots wait in them from the start), four per free
  // device (the fourth slot runs them), then one more per held device — the fourth slot stops in the first of these,
  // so the last two stay queued whatever the speed.
  const order = [...held, ...free.flatMap((d) => [d, d, d, d]), ...held];
  const ids: string[] = [];
  for (const device of order)
    ids.push(
      (await submitJob(daemon.queue, { fleet: twin.fleet, runbook: "patch-verify", target: device.name }))
        .jobId,
    );
  // Restart once a job has run to the end (work is under way); no deadline of its own: the test's timeout is the
  // hang guard.
  while (((await daemon.queue.getJobCounts("completed")).completed ?? 0) === 0) await sleep(20);
  const before = await daemon.queue.getJobCounts("active", "waiting", "completed");
  expect(before.active).toBeGreaterThanOrEqual(held.length);
  expect(before.waiting).toBeGreaterThan(0);
  await redis.restart();
  await holder.release();

  let counts = await daemon.queue.getJobCounts("completed", "failed");
  while ((counts.completed ?? 0) + (counts.failed ?? 0) < ids.length) {
    await sleep(100);
    counts = await daemon.queue.getJobCounts("completed", "failed");
  }
  expect(counts).toMatchObject({ completed: ids.length, failed: 0 });
  for (const id of ids) {
    const job = await daemon.queue.getJob(id);
    // BullMQ keeps the summary; the whole result, every step's answer, is stored once at the result key.
    const result = await storedJobResult(daemon.redis, id);
    expect(job?.returnvalue).toEqual({
      jobId: id,
      status: "succeeded",
      outcome: result?.outcome,
      resultKey: resultKey(id),
    });
    expect(result?.outcome).toMatch(/^succeeded/);
    expect(result?.jobId).toBe(id);
    expect(result?.steps.length).toBeGreaterThan(0);
    expect(result?.steps.every((s) => s.status === "done")).toBe(true);
    expect((await verifyJobEvidence(daemon.redis, redis.dataDir, id)).ok).toBe(true);
  }
});
