// Scale-out: three worker processes on one Redis run 60 jobs over the seven devices of a (rebased) demo twin.
// - The twin's own session logs show that no two shells on one device (or client host) ever overlapped.
// - One process is SIGKILLed while it runs a job: every job still completes, and no step finished twice (the job
//   picked up again resumed from its checkpoints).
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { loadFleet } from "../../src/config/load.ts";
import { RedisCheckpointStore } from "../../src/engine/checkpoints.ts";
import { evidenceKeys } from "../../src/evidence/log.ts";
import { storedJobResult } from "../../src/queue/job-outcome.ts";
import { createJobQueue, submitJob } from "../../src/queue/jobs.ts";
import { startTwin, type Twin } from "../../src/sim/twin.ts";
import { withRedis } from "../helpers/redis.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const redis = await withRedis();
let twin: Twin;
let fleetFile: string;
let tmp: string;
const children = new Map<string, ChildProcess>();

function startChild(id: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "test/e2e/worker-child.ts")], {
    cwd: ROOT,
    env: {
      ...process.env,
      REDIS_URL: redis.url,
      LF_FLEET: fleetFile,
      LF_DATA_DIR: redis.dataDir,
      LF_WORKER_ID: id,
      LF_CONCURRENCY: "4",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.set(id, child);
  let err = "";
  child.stderr?.on("data", (d) => {
    err += String(d);
  });
  return new Promise((ok, fail) => {
    child.stdout?.on("data", (d) => {
      if (String(d).includes("READY")) ok(child);
    });
    child.once("exit", (code) => fail(new Error(`worker ${id} exited (${code}) before READY: ${err}`)));
  });
}

beforeAll(async () => {
  twin = await startTwin(loadFleet(join(ROOT, "config/demo.yaml")), { rebase: true });
  // Every appliance reply 100 ms late: a job lasts long enough to be caught between two of its steps.
  for (const name of twin.appliances.keys()) await twin.setFault(name, "slow", "100");
  tmp = mkdtempSync(join(tmpdir(), "lf-scale-"));
  fleetFile = join(tmp, "fleet.yaml");
  writeFileSync(fleetFile, stringify(twin.fleet));
  await Promise.all(["w1", "w2", "w3"].map(startChild));
});

afterAll(async () => {
  for (const c of children.values()) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  await twin?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

describe("three worker processes on one Redis", () => {
  it("run 60 jobs, never overlap sessions on a device, and survive a SIGKILL mid-job without re-running a step", async () => {
    const client = redis.client();
    const queue = createJobQueue(client);
    const devices = twin.fleet.devices.map((d) => d.name);
    const ids: string[] = [];
    for (let i = 0; i < 60; i++) {
      const device = devices[i % devices.length]!;
      const runbook = Math.floor(i / devices.length) % 2 === 0 ? "patch-verify" : "tcp-check";
      ids.push((await submitJob(queue, { fleet: twin.fleet, runbook, target: device, actor: "test" })).jobId);
    }

    // Kill the process running the first job that has finished at least one step (so it must resume).
    let killed: { worker: string; jobId: string } | undefined;
    const checkpoints = new RedisCheckpointStore(client);
    for (let tries = 0; tries < 400 && !killed; tries++) {
      for (const job of await queue.getActive()) {
        // A patch-verify job with its first step done: the second one (100 ms+ of device time) is still running.
        if (!job.id || !job.processedBy || job.data.runbook !== "patch-verify") continue;
        if ((await checkpoints.finishedSteps(job.id)).size !== 1) continue;
        children.get(job.processedBy)?.kill("SIGKILL");
        killed = { worker: job.processedBy, jobId: job.id };
        break;
      }
      if (!killed) await sleep(10);
    }
    expect(killed, "a job was caught mid-run").toBeDefined();

    // Every job ended, awaited with no deadline of its own that load could beat (the test's timeout is the hang guard).
    for (;;) {
      const counts = await queue.getJobCounts("completed", "failed");
      if ((counts.completed ?? 0) + (counts.failed ?? 0) >= 60) break;
      await sleep(100);
    }
    const counts = await queue.getJobCounts("completed", "failed", "active", "waiting", "delayed");
    if (counts.completed !== 60) {
      for (const j of [
        ...(await queue.getActive()),
        ...(await queue.getDelayed()),
        ...(await queue.getWaiting()),
      ])
        console.log(
          "UNFINISHED",
          j.id,
          await j.getState(),
          j.processedBy,
          j.attemptsMade,
          j.attemptsStarted,
          j.stalledCounter,
          killed,
          j.failedReason,
        );
      console.log("FIRST/LAST", (await queue.getCompleted(0, 0))[0]?.finishedOn, Date.now());
    }
    expect(counts).toMatchObject({ completed: 60, failed: 0 });

    // No step finished twice, in any job; the killed job resumed (its finished steps were not re-run).
    for (const id of ids) {
      const records = (await client.lrange(evidenceKeys(id).records, 0, -1)).map(
        (l) => JSON.parse(l) as { kind: string; data: { event?: string; step?: string } },
      );
      const finished = records
        .filter((r) => r.kind === "step" && r.data.event === "finished")
        .map((r) => r.data.step);
      expect(new Set(finished).size, `job ${id}: a step finished twice`).toBe(finished.length);
      // Every planned step has exactly one checkpoint (a step killed after its checkpoint but before its evidence
      // line counts as finished: the checkpoint is the commit point, and the resumed job did not re-run it).
      const job = await queue.getJob(id);
      expect(job?.returnvalue).toMatchObject({ jobId: id, status: "succeeded" });
      const planned = ((await storedJobResult(client, id))?.steps ?? []).map((st) => st.id);
      expect(planned.length).toBeGreaterThan(0);
      expect([...(await checkpoints.finishedSteps(id)).keys()].sort()).toEqual([...planned].sort());
      for (const step of finished) expect(planned).toContain(step);
      if (id === killed!.jobId) {
        expect(records.some((r) => r.kind === "note" && r.data.event === "resumed")).toBe(true);
        expect(records.some((r) => r.kind === "step" && r.data.event === "resumed")).toBe(true);
      }
    }
    const killedJob = await queue.getJob(killed!.jobId);
    expect(killedJob?.returnvalue?.status).toBe("succeeded");
    expect(killedJob?.processedBy).not.toBe(killed!.worker);

    // The twin's session logs: on every machine, each shell closed before the next one opened.
    for (const name of [...twin.appliances.keys(), ...twin.clientHosts.keys()]) {
      const sessions = [...twin.sessionLog(name)].sort((a, b) => a.openedAt - b.openedAt);
      expect(sessions.length, `${name} saw no session`).toBeGreaterThan(0);
      for (let i = 1; i < sessions.length; i++) {
        const prev = sessions[i - 1]!;
        const next = sessions[i]!;
        expect(prev.closedAt, `${name}: session ${prev.session} never closed`).toBeDefined();
        expect(
          next.openedAt,
          `${name}: session ${next.session} opened while ${prev.session} was open`,
        ).toBeGreaterThanOrEqual(prev.closedAt!);
      }
    }
    await queue.close();
  });
});
