// A job that had already ended is never run again when BullMQ hands it out a second time. Two ways that happens on
// a real deployment, both reproduced here on the real queue, two workers and the twin:
//   lost completion  a failover to a replica that had not seen the job's completion puts it back (here: BullMQ's own
//                    retry of the completed job);
//   stall overlap    BullMQ takes a job whose lock it could not renew for stalled and hands it to another worker
//                    while the first is still finishing it (here: the job's BullMQ lock removed while the twin holds
//                    the reply to its `hagroup recover`).
// A job that locks none of its targets (vault-placement) takes a lock of its own id for the same end.
// Either way the second delivery takes the device locks after the first let them go, finds the job marked ended,
// records that it ran nothing, and BullMQ hears the stored outcome: one result in the evidence, one command sent,
// a chain that still ends with a final seal. (Found by the Cluster failover test: one job in ~40 runs had two
// "succeeded" results.)
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keyVaultAccessFor } from "../../src/azure/key-vault-access.ts";
import { evidenceKeys, verifyJobEvidence } from "../../src/evidence/log.ts";
import type { EvidenceRecord } from "../../src/evidence/record.ts";
import {
  checkEvidenceSignatures,
  finalMarkKey,
  loadOrCreateSigner,
  localTrustedKeys,
} from "../../src/evidence/signing.ts";
import { storedJobResult } from "../../src/queue/job-outcome.ts";
import { createJobQueue, QUEUE_NAME, QUEUE_PREFIX, submitJob } from "../../src/queue/jobs.ts";
import { type RunningWorker, startWorker } from "../../src/queue/worker.ts";
import { startTwin, type Twin } from "../../src/sim/twin.ts";
import { demoFleet } from "../helpers/engine.ts";
import { withRedis } from "../helpers/redis.ts";

const redis = await withRedis();
let twin: Twin;
const workers: RunningWorker[] = [];

/** Waits on the condition itself; the test's timeout is the hang guard. */
const until = async (check: () => Promise<boolean>) => {
  while (!(await check())) await new Promise((r) => setTimeout(r, 25));
};

beforeAll(async () => {
  twin = await startTwin(demoFleet(), { rebase: true });
  const evidenceSigner = loadOrCreateSigner(redis.dataDir);
  for (const id of ["w1", "w2"])
    workers.push(
      startWorker({
        fleet: twin.fleet,
        dataDir: redis.dataDir,
        redis: { url: redis.url },
        concurrency: 2,
        workerId: id,
        evidenceSigner,
        // The second delivery waits for the first's device locks rather than going back to the queue.
        lockWaitMs: 120_000,
        stalledIntervalMs: 200,
        // Key Vault reads (vault-placement) go to the twin's ARM over HTTPS, trusting its CA.
        keyVault: keyVaultAccessFor(twin.fleet, { caPems: [twin.arm!.caPem, twin.keyVault!.caPem] })!,
      }),
    );
  await Promise.all(workers.map((w) => w.worker.waitUntilReady()));
});

afterAll(async () => {
  await Promise.all(workers.map((w) => w.close({ force: true })));
  await twin?.stop();
});

async function records(jobId: string): Promise<EvidenceRecord[]> {
  return (await redis.client().lrange(evidenceKeys(jobId).records, 0, -1)).map(
    (l) => JSON.parse(l) as EvidenceRecord,
  );
}

const data = (r: EvidenceRecord) => (r.data ?? {}) as { status?: string; event?: string; worker?: string };

/** What every second delivery must leave: one result, one ended-before note, a chain that verifies and ends final. */
async function expectRanOnce(jobId: string, outcome: string): Promise<EvidenceRecord[]> {
  const recs = await records(jobId);
  expect(recs.filter((r) => r.kind === "result").map((r) => data(r).status)).toEqual(["succeeded"]);
  const notes = recs.filter((r) => r.kind === "note" && data(r).event === "ended-before");
  expect(notes).toHaveLength(1);
  expect(notes[0]!.data).toMatchObject({ outcome });
  // The note comes after the result: the second delivery only looked.
  expect(recs.indexOf(notes[0]!)).toBeGreaterThan(recs.findIndex((r) => r.kind === "result"));
  expect(await verifyJobEvidence(redis.client(), redis.dataDir, jobId)).toMatchObject({ ok: true });
  const signed = checkEvidenceSignatures(recs, await localTrustedKeys(redis.dataDir), { require: "final" });
  expect(signed).toMatchObject({ ok: true, end: { seal: "final", outcome } });
  expect(await redis.client().get(finalMarkKey(jobId))).toBe(outcome);
  return recs;
}

describe("a job delivered again after it ended", () => {
  it("lost completion: BullMQ hands out a completed job again; nothing runs, it completes with the stored outcome", async () => {
    const r = redis.client();
    const queue = createJobQueue(r);
    const device = "hsm-a1";
    const { jobId } = await submitJob(queue, {
      fleet: twin.fleet,
      runbook: "patch-verify",
      target: device,
      actor: "operator:test",
    });
    await until(async () => (await queue.getJobState(jobId)) === "completed");
    const job = (await queue.getJob(jobId))!;
    const first = job.returnvalue;
    expect(first).toMatchObject({ jobId, status: "succeeded" });
    const stored = await storedJobResult(r, jobId);
    expect(stored?.status).toBe("succeeded");
    const log = twin.appliances.get(device)!.state.commandLog;
    const sentBefore = log.length;
    expect(log.filter((c) => c.command.startsWith("package list"))).toHaveLength(1);

    await job.retry("completed");
    // Completed again: finished later than the first time.
    await until(async () => {
      const j = await queue.getJob(jobId);
      return (await j?.getState()) === "completed" && (j?.finishedOn ?? 0) > (job.finishedOn ?? 0);
    });
    const again = (await queue.getJob(jobId))!;
    expect(again.returnvalue).toEqual(first);
    // The appliance saw nothing more: no shell, no command.
    expect(log).toHaveLength(sentBefore);
    await expectRanOnce(jobId, stored!.outcome);
    await queue.close();
  }, 120_000);

  it("stall overlap: a second worker takes the job while the first finishes it; the first ends it, the second runs nothing", async () => {
    const r = redis.client();
    const queue = createJobQueue(r);
    const host = twin.clientHosts.get("client-b")!;
    await twin.setFault("client-b", "hold", "hagroup recover");
    const { jobId } = await submitJob(queue, {
      fleet: twin.fleet,
      runbook: "ha-recover",
      target: "ha-tokens",
      actor: "operator:test",
    });
    // Redis's own account of the order of writes (keyspace events, published as each command runs): the job must be
    // marked ended before its first lock is let go, or a delivery that takes the lock could miss the mark.
    await r.config("SET", "notify-keyspace-events", "Eg$");
    const sub = r.duplicate();
    const writes: string[] = [];
    sub.on("message", (channel: string, key: string) => writes.push(`${channel.split(":").pop()} ${key}`));
    await sub.subscribe("__keyevent@0__:set", "__keyevent@0__:del");
    const recovers = () => host.host.commandLog.filter((c) => /hagroup recover/.test(c.command)).length;
    // The job sits inside its recovery command, holding the device and client locks.
    await until(async () => recovers() === 1);
    const firstWorker = (await queue.getJob(jobId))!.processedBy;
    // BullMQ loses the job's lock (as when its holder could not renew it through a failover): its stall check
    // hands the job to a worker again, which waits for the locks the first delivery still holds.
    await r.del(`${QUEUE_PREFIX}:${QUEUE_NAME}:${jobId}:lock`);
    await until(async () => ((await queue.getJob(jobId))?.attemptsStarted ?? 0) >= 2);
    await twin.setFault("client-b", "hold", "off");
    // Only the second delivery can complete it: BullMQ refuses the first's word (it no longer holds the job's lock).
    await until(async () => (await queue.getJobState(jobId)) === "completed");

    const stored = await storedJobResult(r, jobId);
    expect(stored?.status).toBe("succeeded");
    const recs = await expectRanOnce(jobId, stored!.outcome);
    expect(recovers()).toBe(1);
    // The first delivery ran the job to its end; the second took the locks only after they were let go.
    const acquired = recs.filter((x) => x.kind === "lock" && data(x).event === "acquired");
    const released = recs.filter((x) => x.kind === "lock" && data(x).event === "released");
    expect(acquired).toHaveLength(2);
    expect(released).toHaveLength(2);
    expect(data(acquired[0]!).worker).toBe(firstWorker);
    expect(recs.indexOf(released[0]!)).toBeLessThan(recs.indexOf(acquired[1]!));
    expect(recs.findIndex((x) => x.kind === "result")).toBeLessThan(recs.indexOf(released[0]!));
    const markSet = writes.indexOf(`set ${finalMarkKey(jobId)}`);
    const firstLockLetGo = writes.findIndex((w) => w.startsWith("del lunafleet:lock:"));
    expect(markSet).toBeGreaterThanOrEqual(0);
    expect(firstLockLetGo).toBeGreaterThan(markSet);
    sub.disconnect();
    await queue.close();
  }, 120_000);

  it("stall overlap of a job that locks none of its targets (vault-placement only reads): its own lock keeps the second delivery out", async () => {
    const r = redis.client();
    const queue = createJobQueue(r);
    const arm = twin.arm!;
    const seenBefore = arm.requestLog.length;
    arm.setFault({ kind: "hold" });
    let jobId = "";
    try {
      ({ jobId } = await submitJob(queue, {
        fleet: twin.fleet,
        runbook: "vault-placement",
        target: "fleet",
        actor: "operator:test",
      }));
      // The job sits in its first ARM read.
      await until(async () => arm.heldRequests() === 1);
      await r.del(`${QUEUE_PREFIX}:${QUEUE_NAME}:${jobId}:lock`);
      await until(async () => ((await queue.getJob(jobId))?.attemptsStarted ?? 0) >= 2);
    } finally {
      arm.clearFaults();
    }
    await until(async () => (await queue.getJobState(jobId)) === "completed");

    const stored = await storedJobResult(r, jobId);
    expect(stored?.status).toBe("succeeded");
    const recs = await expectRanOnce(jobId, stored!.outcome);
    // Each vault was read once: the second delivery sent ARM nothing.
    expect(arm.requestLog.slice(seenBefore).map((x) => `${x.method} ${x.path.split("/").pop()}`)).toEqual([
      "GET kv-app-std",
      "GET kv-sign",
    ]);
    // Both deliveries took the lock of the job's own id, the second only after the first let it go.
    const acquired = recs.filter((x) => x.kind === "lock" && data(x).event === "acquired");
    const released = recs.filter((x) => x.kind === "lock" && data(x).event === "released");
    const resources = (x: EvidenceRecord) =>
      ((x.data as { locks?: { resource: string }[] }).locks ?? []).map((l) => l.resource);
    expect(acquired.map(resources)).toEqual([[`job:${jobId}`], [`job:${jobId}`]]);
    expect(released).toHaveLength(2);
    expect(recs.indexOf(released[0]!)).toBeLessThan(recs.indexOf(acquired[1]!));
    await queue.close();
  }, 120_000);

  it("a job its worker cannot admit (the worker's fleet no longer names its device) holds its own lock while it records its one failed result", async () => {
    const r = redis.client();
    const queue = createJobQueue(r);
    // Submitted against a fleet that still had the device; the workers' fleet does not.
    const retired = { ...twin.fleet.devices[0]!, name: "hsm-retired" };
    const submittedFleet = { ...twin.fleet, devices: [...twin.fleet.devices, retired] };
    const { jobId } = await submitJob(queue, {
      fleet: submittedFleet,
      runbook: "patch-verify",
      target: "hsm-retired",
      actor: "operator:test",
    });
    await until(async () => (await queue.getJobState(jobId)) === "failed");
    const recs = await records(jobId);
    expect(recs.filter((x) => x.kind === "result").map((x) => data(x).status)).toEqual(["failed"]);
    const acquired = recs.filter((x) => x.kind === "lock" && data(x).event === "acquired");
    expect(
      acquired.map((x) => (x.data as { locks: { resource: string }[] }).locks.map((l) => l.resource)),
    ).toEqual([[`job:${jobId}`]]);
    expect(recs.findIndex((x) => x.kind === "result")).toBeLessThan(
      recs.findIndex((x) => x.kind === "lock" && data(x).event === "released"),
    );
    await queue.close();
  }, 120_000);
});
