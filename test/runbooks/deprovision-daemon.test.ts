// A deprovision job through the daemon's real queue and worker: submitted, it waits in awaiting-approval HOLDING its
// device lock, operators approve, and it finishes in the safe order. The worker's ctx.azure trusts the twin's ARM CA.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { approvalState, approve } from "../../src/coord/approvals.ts";
import { lockKey } from "../../src/coord/locks.ts";
import { createJobQueue, submitJob } from "../../src/queue/jobs.ts";
import { type RunningWorker, startWorker } from "../../src/queue/worker.ts";
import { startTwin, type Twin } from "../../src/sim/twin.ts";
import { demoFleet } from "../engine/support.ts";
import { withRedis } from "../helpers/redis.ts";
import { type Connections, connect, hsmResourceId, removeFromHaGroups } from "./deprovision-support.ts";

const redis = await withRedis();
let twin: Twin;
let conn: Connections;
let worker: RunningWorker;

beforeAll(async () => {
  twin = await startTwin(demoFleet(), { rebase: true });
  conn = connect(twin.fleet, twin.arm!);
  worker = startWorker({
    fleet: twin.fleet,
    dataDir: redis.dataDir,
    redis: { url: redis.url },
    concurrency: 2,
    workerId: "deprov-worker",
    azure: conn.azure,
    lockTtlMs: 2000,
  });
  await worker.worker.waitUntilReady();
});

afterAll(async () => {
  await worker?.close({ force: true });
  await conn?.close();
  await twin?.stop();
});

const until = async (what: string, check: () => Promise<boolean>, ms = 20_000) => {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
};

describe("deprovision through the queue and worker", () => {
  it("waits for approvals holding the device lock, then runs to the end", async () => {
    const device = "hsm-b3";
    removeFromHaGroups(twin, device);
    const r = redis.client();
    const queue = createJobQueue(r);
    const { jobId } = await submitJob(queue, {
      fleet: twin.fleet,
      runbook: "deprovision",
      target: device,
      params: { backupsConfirmed: true, deleteResourceGroup: true, approvalPollMs: 25 },
      actor: "alice",
    });
    await until("the approval request", async () => (await approvalState(r, jobId)) !== null);
    expect((await approvalState(r, jobId))?.status).toBe("awaiting-approval");
    // While it waits, the job holds the device's lock and the device is untouched.
    expect(await r.get(lockKey(`device:${device}`))).toMatch(new RegExp(`\\|${jobId}$`));
    await new Promise((res) => setTimeout(res, 300));
    expect(await r.get(lockKey(`device:${device}`))).toMatch(new RegExp(`\\|${jobId}$`));
    expect(twin.appliances.get(device)!.state.zeroized).toBe(false);

    await approve(r, jobId, { principal: "alice", confirmation: "700203" });
    await approve(r, jobId, { principal: "bob", confirmation: "700203" });
    const job = (await queue.getJob(jobId))!;
    await until("the job to finish", async () => ["completed", "failed"].includes(await job.getState()));
    const finished = (await queue.getJob(jobId))!;
    expect(await finished.getState(), finished.failedReason).toBe("completed");
    expect(twin.appliances.get(device)!.state.zeroized).toBe(true);
    expect(twin.arm!.hsmState(hsmResourceId(twin.fleet, device))).toMatchObject({
      deleted: true,
      orphaned: false,
      resourceGroupExists: false,
    });
    expect(await r.get(lockKey(`device:${device}`))).toBeNull();
    await queue.close();
  });
});
