// A deprovision job through the daemon's real queue and worker: submitted, it waits in awaiting-approval holding ONLY
// its device lock (every client host's lock is given back, so the fleet's ha-recover and tcp-check are not stalled),
// operators approve, it takes the client hosts' locks back, re-checks their HA groups and finishes in the safe order.
// The worker's ctx.azure trusts the twin's ARM CA.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deviceLockResource, getDevice } from "../../src/config/model.ts";
import { lockKey } from "../../src/coord/locks.ts";
import { EvidenceLog } from "../../src/evidence/log.ts";
import { jobOutcome } from "../../src/queue/job-outcome.ts";
import { createJobQueue, submitJob } from "../../src/queue/jobs.ts";
import { type RunningWorker, startWorker } from "../../src/queue/worker.ts";
import { startTwin, type Twin } from "../../src/sim/twin.ts";
import { type Connections, connect, hsmResourceId } from "../helpers/deprovision.ts";
import { demoFleet } from "../helpers/engine.ts";
import { withRedis } from "../helpers/redis.ts";
import { signedApprove } from "../helpers/ssh-signing.ts";

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
    // The locks keep the worker's default TTL: this process also signs the approvals (ssh-keygen, spawnSync), which
    // stalls its event loop — the renewal timer's too. A 2 s TTL (renewed every 0.67 s) lost the device lock whenever
    // load stretched a stall past 1.3 s; nothing here is about a lock's expiry.
  });
  await worker.worker.waitUntilReady();
});

afterAll(async () => {
  await worker?.close({ force: true });
  await conn?.close();
  await twin?.stop();
});

/**
 * Waits on the condition itself, with no deadline of its own that load could beat (`what` says what is awaited); a
 * condition that never comes is caught by the test's timeout, which only a hang reaches.
 */
const until = async (_what: string, check: () => Promise<boolean>) => {
  while (!(await check())) await new Promise((r) => setTimeout(r, 25));
};

describe("deprovision through the queue and worker", () => {
  it("waits for approvals holding only the device lock, then takes the hosts back and runs to the end", async () => {
    const device = "hsm-c1"; // the demo's spare: alone in rg-hsm-c, in no HA group
    const r = redis.client();
    const queue = createJobQueue(r);
    const { jobId } = await submitJob(queue, {
      fleet: twin.fleet,
      runbook: "deprovision",
      target: device,
      params: { backupsConfirmed: true, deleteResourceGroup: true, approvalPollMs: 25 },
      actor: "operator:test", // the requester never approves its own job (alice and bob approve)
    });
    const evidence = await EvidenceLog.open(r, redis.dataDir, jobId);
    const noted = async (key: string) =>
      (await evidence.records()).some(
        (rec) => rec.kind === "note" && key in ((rec.data as { data?: object }).data ?? {}),
      );
    await until("the client hosts' locks given back", () => noted("locksGivenBack"));
    const view = await jobOutcome(queue, r, jobId);
    expect(view.outcome).toBe("awaiting-approval");
    expect(view.approval).toMatchObject({ runbook: "deprovision", device, serial: "700301" });
    expect(view.approval?.action).toMatch(
      /^zeroize hsm-c1 \(serial 700301\) and delete its Azure Dedicated HSM .*, then its resource group /,
    );
    // While it waits, the job holds the device's lock only; the client hosts are free for other jobs.
    expect(await r.get(lockKey(deviceLockResource(getDevice(twin.fleet, device))))).toMatch(
      new RegExp(`\\|${jobId}$`),
    );
    for (const h of twin.fleet.clientHosts) expect(await r.get(lockKey(`client:${h.name}`))).toBeNull();
    expect(twin.appliances.get(device)!.state.zeroized).toBe(false);

    await signedApprove(r, jobId, "alice", twin.fleet);
    await signedApprove(r, jobId, "bob", twin.fleet);
    // Approved: it takes the hosts' locks back before the re-check of their HA groups and the first change.
    await until("the locks taken back", () => noted("locksTakenBack"));
    const job = (await queue.getJob(jobId))!;
    await until("the job to finish", async () => ["completed", "failed"].includes(await job.getState()));
    const finished = (await queue.getJob(jobId))!;
    expect(await finished.getState(), finished.failedReason).toBe("completed");
    expect((await jobOutcome(queue, r, jobId)).outcome).toBe("succeeded");
    // The re-check of every client host's HA groups came after the locks were taken back, before the zeroize.
    const order = (await evidence.records()).flatMap((rec) => {
      const d = rec.data as { data?: Record<string, unknown>; command?: string; step?: string };
      if (rec.kind === "note" && d.data && "locksTakenBack" in d.data) return ["taken-back"];
      if (rec.kind === "command" && d.command === "hagroup listgroups") return ["listgroups"];
      if (rec.kind === "step" && d.step === "sanctioned-zeroize") return ["zeroize"];
      return [];
    });
    const back = order.indexOf("taken-back");
    expect(back).toBeGreaterThan(0);
    expect(order.slice(back + 1, back + 1 + twin.fleet.clientHosts.length)).toEqual(
      twin.fleet.clientHosts.map(() => "listgroups"),
    );
    expect(order.indexOf("zeroize")).toBeGreaterThan(back + twin.fleet.clientHosts.length);
    expect(twin.appliances.get(device)!.state.zeroized).toBe(true);
    expect(twin.arm!.hsmState(hsmResourceId(twin.fleet, device))).toMatchObject({
      deleted: true,
      orphaned: false,
      resourceGroupExists: false,
    });
    expect(await r.get(lockKey(deviceLockResource(getDevice(twin.fleet, device))))).toBeNull();
    await queue.close();
  });
});
