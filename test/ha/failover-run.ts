// The failover tests' run (Sentinel and Cluster): two daemons, each its own process with its own data dir, on one
// replicated Redis run a fleet sweep (patch-verify and tcp-check on every device of the rebased demo twin, several
// rounds) plus ha-sync jobs whose Crypto Officer logins go through the login guard; mid-run the test breaks Redis
// (kills the primary, reshards). Then everything the issue names is counted from what Redis, the data dirs and the
// twin's own logs hold — nothing is taken from the daemons' word:
//   jobs     every job completed, none failed, none succeeded twice (one "succeeded" result in its evidence);
//   steps    no step finished twice (evidence) and every planned step has exactly one checkpoint; the twin saw
//            exactly one `package list` per patch-verify job and one `hagroup synchronize` per ha-sync job;
//   locks    no lock key is left; on every appliance and client host no two shells were ever open at once (the
//            twin's session log: no two holders of a device lock acted);
//   evidence every job's chain verifies, in Redis and in the data dir of the daemon that finished it;
//   ledger   for every credential, the attempts the ledger counts equal the attempts the jobs' evidence recorded
//            (no recorded attempt lost), nothing pending, nothing quarantined.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Queue } from "bullmq";
import { expect, it } from "vitest";
import { stringify } from "yaml";
import { DEMO_FLEET_FILE } from "../../src/cli/demo.ts";
import { loadFleet } from "../../src/config/load.ts";
import { RedisCheckpointStore } from "../../src/engine/checkpoints.ts";
import { evidenceKeys, verifyJobEvidence } from "../../src/evidence/log.ts";
import { type LedgerEntry, LoginLedger } from "../../src/guard/ledger.ts";
import { storedJobResult } from "../../src/queue/job-outcome.ts";
import { createJobQueue, type JobData, newJobId, submitJob } from "../../src/queue/jobs.ts";
import { connectRedis, type RedisClient, scanKeys } from "../../src/redis/client.ts";
import { startTwin, type Twin } from "../../src/sim/twin.ts";
import { until } from "../helpers/redis-ha.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const DAEMONS = ["d1", "d2"] as const;

export interface FailoverRunOptions {
  redisUrl: string;
  /** Sweep rounds (each: patch-verify + tcp-check on every device). */
  rounds: number;
  /** ha-sync ha-tokens jobs, one after another (each: three guarded CO logins, a synchronize, three logouts). */
  haSyncs: number;
  /**
   * Break Redis; resolves once the failover (or resharding) is done, as the servers report it. `running()` says how
   * many jobs run right now (to show that a later blow also landed mid-run).
   */
  disrupt(running: () => Promise<number>): Promise<void>;
  timeoutMs?: number;
}

interface RecordLine {
  kind: string;
  data: {
    event?: string;
    attemptId?: string;
    step?: string;
    status?: string;
    error?: { type?: string; message?: string };
    device?: string;
    partition?: string;
    role?: string;
  };
}

export interface FailoverCounts {
  jobs: {
    submitted: number;
    completed: number;
    failed: number;
    succeededTwice: string[];
    notSucceeded: string[];
  };
  steps: {
    finishedTwice: string[];
    checkpointMismatch: string[];
    /**
     * `starts`: how many times BullMQ started the device's patch-verify jobs (attemptsStarted: retries, stalled
     * jobs picked up again, and waits for a busy device all count) — a start whose package-list step never reached
     * its checkpoint (Redis went away first) runs that read again, which is allowed; a finished one never does.
     * `errors`: the step errors those jobs recorded (what made a step run again, if one did).
     */
    packageListPerDevice: Record<string, { sent: number; jobs: number; starts: number; errors: string[] }>;
    synchronizes: { sent: number; jobs: number; results: string[] };
  };
  locks: { left: string[]; overlaps: string[] };
  evidence: { verified: number; problems: string[] };
  ledger: {
    entries: LedgerEntry[];
    attemptsRecordedInEvidence: Record<string, number>;
    attemptsInLedger: Record<string, number>;
    pendingOrQuarantined: string[];
  };
  disruptedAt: { completed: number; active: number };
}

export async function runFailover(opts: FailoverRunOptions): Promise<FailoverCounts> {
  const tmp = mkdtempSync(join(tmpdir(), "lf-failover-"));
  const children: ChildProcess[] = [];
  let twin: Twin | undefined;
  const client = connectRedis({ url: opts.redisUrl, connectionName: "lunafleet:test" });
  let queue: Queue<JobData> | undefined;
  try {
    twin = await startTwin(loadFleet(DEMO_FLEET_FILE), { rebase: true });
    // Replies 40 ms late: a job lasts long enough to be caught between its steps when Redis breaks.
    for (const name of twin.appliances.keys()) await twin.setFault(name, "slow", "40");
    // The operator's order before a sync: hsm-b2's member recovered (ha-recover's job).
    twin.clientHosts.get("client-b")!.host.setMemberDown("hsm-b2", "par-tok", false);
    const fleetFile = join(tmp, "fleet.yaml");
    writeFileSync(fleetFile, stringify(twin.fleet));
    const dataDirs = new Map<string, string>();
    for (const id of DAEMONS) {
      const dir = join(tmp, id);
      mkdirSync(dir);
      dataDirs.set(id, dir);
    }
    await Promise.all(
      DAEMONS.map((id) => startDaemonChild(id, opts.redisUrl, fleetFile, dataDirs.get(id)!, children)),
    );

    queue = createJobQueue(client);
    // The daemons' own fleet (the file they loaded): jobs are validated against the same digest they run.
    const fleet = loadFleet(fleetFile);
    const devices = fleet.devices.map((d) => d.name);
    const submitted: { jobId: string; runbook: string; target: string }[] = [];
    // Submitting is idempotent by job id, so a submission that met a failover is simply made again.
    const submit = async (runbook: string, target: string) => {
      const jobId = newJobId(runbook);
      await until(
        async () =>
          (await submitJob(queue!, { fleet, runbook, target, jobId, actor: "operator:test" })).jobId,
        `job ${jobId} submitted`,
      );
      submitted.push({ runbook, target, jobId });
    };
    const ended = async () => {
      const c = await queue!.getJobCounts("completed", "failed");
      return (c.completed ?? 0) + (c.failed ?? 0);
    };
    // The sweep, a round at a time (patch-verify and tcp-check on every device), the next round submitted when the
    // queue runs low, at least `rounds` rounds and until every blow has landed: jobs are running whenever one does.
    let blowsDone = false;
    const sweep = (async () => {
      for (let r = 0; r < opts.rounds || !blowsDone; r++) {
        for (const d of devices) await submit("patch-verify", d);
        for (const d of devices) await submit("tcp-check", d);
        const target = submitted.length - devices.length;
        await until(
          async () => {
            const n = await ended().catch((err: Error) => {
              if (process.env.LF_HA_DEBUG) process.stderr.write(`ended? ${err.message}\n`);
              throw err;
            });
            if (process.env.LF_HA_DEBUG)
              process.stderr.write(
                `ended ${n} of ${submitted.length} ${JSON.stringify(await queue!.getJobCounts("active", "waiting", "delayed", "prioritized", "waiting-children"))}\n`,
              );
            return n >= target || undefined;
          },
          "the queue to run low",
          opts.timeoutMs ?? 180_000,
        );
      }
    })();
    // ha-sync jobs one after another, alongside the sweep: before each, hsm-b1's partition holds more objects than
    // the other members, so each job has something to synchronize and logs the CO in on all three members.
    const tok = (device: string) =>
      twin!.appliances.get(device)!.state.partitions.find((p) => p.label === "par-tok")!;
    const haSyncs = (async () => {
      for (let i = 0; i < opts.haSyncs; i++) {
        tok("hsm-b1").objects = Math.max(...["hsm-b1", "hsm-b2", "hsm-b3"].map((d) => tok(d).objects)) + 1;
        await submit("ha-sync", "ha-tokens");
        const id = submitted[submitted.length - 1]!.jobId;
        await until(
          async () => ["completed", "failed"].includes(await queue!.getJobState(id)),
          `ha-sync ${id} to end`,
          opts.timeoutMs ?? 180_000,
        );
      }
    })();

    // Awaited below; if the run fails before that, their later rejections are not unhandled errors of their own.
    sweep.catch(() => {});
    haSyncs.catch(() => {});
    // Break Redis mid-run: some jobs done, some running.
    const progress = await until(async () => {
      const c = await queue!.getJobCounts("completed", "active");
      return (c.completed ?? 0) >= devices.length * 2 && (c.active ?? 0) > 0
        ? { completed: c.completed ?? 0, active: c.active ?? 0 }
        : undefined;
    }, "a round of jobs completed while others run");
    try {
      await opts.disrupt(async () => (await queue!.getJobCounts("active")).active ?? 0);
    } finally {
      blowsDone = true;
    }
    await Promise.all([sweep, haSyncs]);
    const planned = submitted.length;

    await until(
      async () => {
        const c = await queue!.getJobCounts("completed", "failed", "active", "waiting", "delayed");
        if (process.env.LF_HA_DEBUG) process.stderr.write(`counts ${JSON.stringify(c)}\n`);
        return (c.completed ?? 0) + (c.failed ?? 0) >= planned;
      },
      "every job to end",
      opts.timeoutMs ?? 180_000,
    );
    return await count(client, queue, twin, submitted, dataDirs, progress);
  } finally {
    await queue?.close().catch(() => {});
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    await Promise.all(
      children.map((c) =>
        c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once("exit", r)) : undefined,
      ),
    );
    client.disconnect();
    await twin?.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}

function startDaemonChild(
  id: string,
  redisUrl: string,
  fleetFile: string,
  dataDir: string,
  children: ChildProcess[],
): Promise<void> {
  const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "test/ha/daemon-child.ts")], {
    cwd: ROOT,
    env: {
      ...process.env,
      REDIS_URL: redisUrl,
      LF_FLEET: fleetFile,
      LF_DATA_DIR: dataDir,
      LF_WORKER_ID: id,
      ...(process.env.LF_HA_DEBUG ? { LF_LOG_LEVEL: "warn" } : {}),
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let err = "";
  child.stderr?.on("data", (d) => {
    err = (err + String(d)).slice(-4000);
    if (process.env.LF_HA_DEBUG) process.stderr.write(`[${id}] ${d}`);
  });
  if (process.env.LF_HA_DEBUG) child.stdout?.on("data", (d) => process.stderr.write(`[${id}] ${d}`));
  return new Promise((ok, fail) => {
    child.stdout?.on("data", (d) => {
      if (String(d).includes("READY")) ok();
    });
    child.once("exit", (code) => fail(new Error(`daemon ${id} exited (${code}) before READY: ${err}`)));
  });
}

async function count(
  client: RedisClient,
  queue: Queue<JobData>,
  twin: Twin,
  submitted: { jobId: string; runbook: string; target: string }[],
  dataDirs: Map<string, string>,
  disruptedAt: { completed: number; active: number },
): Promise<FailoverCounts> {
  const counts = await queue.getJobCounts("completed", "failed");
  const checkpoints = new RedisCheckpointStore(client);
  const out: FailoverCounts = {
    jobs: {
      submitted: submitted.length,
      completed: counts.completed ?? 0,
      failed: counts.failed ?? 0,
      succeededTwice: [],
      notSucceeded: [],
    },
    steps: {
      finishedTwice: [],
      checkpointMismatch: [],
      packageListPerDevice: {},
      synchronizes: { sent: 0, jobs: 0, results: [] },
    },
    locks: { left: [], overlaps: [] },
    evidence: { verified: 0, problems: [] },
    ledger: { entries: [], attemptsRecordedInEvidence: {}, attemptsInLedger: {}, pendingOrQuarantined: [] },
    disruptedAt,
  };
  const attempts = out.ledger.attemptsRecordedInEvidence;
  const stepErrors: { target: string; text: string }[] = [];
  const startsOf = new Map<string, number>();
  for (const s of submitted) {
    const job = await queue.getJob(s.jobId);
    startsOf.set(s.jobId, job?.attemptsStarted ?? 0);
    const result = await storedJobResult(client, s.jobId);
    if (result?.status !== "succeeded") out.jobs.notSucceeded.push(`${s.runbook} ${s.target} ${s.jobId}`);
    if (s.runbook === "ha-sync")
      out.steps.synchronizes.results.push(
        `${s.jobId} attempts ${job?.attemptsMade}: ${JSON.stringify(result?.steps.find((st) => st.id === "synchronize"))}`,
      );
    const records = (await client.lrange(evidenceKeys(s.jobId).records, 0, -1)).map(
      (l) => JSON.parse(l) as RecordLine,
    );
    const succeeded = records.filter((r) => r.kind === "result" && r.data.status === "succeeded").length;
    if (succeeded !== 1) out.jobs.succeededTwice.push(`${s.jobId}: ${succeeded} succeeded results`);
    for (const r of records)
      if (r.kind === "error")
        stepErrors.push({
          target: s.target,
          text: `${s.jobId} step ${r.data.step}: ${r.data.error?.type}: ${r.data.error?.message}`,
        });
    const finished = records
      .filter((r) => r.kind === "step" && r.data.event === "finished")
      .map((r) => r.data.step);
    if (new Set(finished).size !== finished.length) out.steps.finishedTwice.push(s.jobId);
    const planned = (result?.steps ?? []).map((st) => st.id).sort();
    const done = [...(await checkpoints.finishedSteps(s.jobId)).keys()].sort();
    if (JSON.stringify(planned) !== JSON.stringify(done) || planned.length === 0)
      out.steps.checkpointMismatch.push(`${s.jobId}: planned ${planned} checkpointed ${done}`);
    // An attempt-recorded record names what the device showed under `device` (the guard's facts); its outcome
    // record, with the same attempt id, names the device.
    const deviceOf = new Map<string, string>();
    for (const r of records)
      if (r.kind === "guard" && r.data.event === "outcome" && r.data.attemptId)
        deviceOf.set(r.data.attemptId, String(r.data.device));
    for (const r of records)
      if (r.kind === "guard" && r.data.event === "attempt-recorded") {
        const device = deviceOf.get(r.data.attemptId ?? "") ?? "(no outcome recorded)";
        const k = `${device}/${r.data.partition ?? "-"}/${r.data.role}`;
        attempts[k] = (attempts[k] ?? 0) + 1;
      }
    // The copy in the data dir of the daemon that finished the job is complete.
    const dir = dataDirs.get(job?.processedBy ?? "");
    const check = dir ? await verifyJobEvidence(client, dir, s.jobId) : undefined;
    if (check?.ok) out.evidence.verified += 1;
    else
      out.evidence.problems.push(`${s.jobId} (${job?.processedBy}): ${check ? check.detail : "no data dir"}`);
  }

  // What the devices saw.
  for (const [name, a] of twin.appliances) {
    const ofDevice = submitted.filter((s) => s.runbook === "patch-verify" && s.target === name);
    const starts = ofDevice.reduce((n, s) => n + (startsOf.get(s.jobId) ?? 0), 0);
    const sent = a.state.commandLog.filter((c) => /^package list/.test(c.command)).length;
    const errors = stepErrors.filter((e) => e.target === name).map((e) => e.text);
    out.steps.packageListPerDevice[name] = { sent, jobs: ofDevice.length, starts, errors };
  }
  out.steps.synchronizes = {
    results: out.steps.synchronizes.results,
    sent: twin.clientHosts
      .get("client-b")!
      .host.commandLog.filter((c) => /hagroup synchronize/.test(c.command)).length,
    jobs: submitted.filter((s) => s.runbook === "ha-sync").length,
  };
  for (const name of [...twin.appliances.keys(), ...twin.clientHosts.keys()]) {
    const sessions = [...twin.sessionLog(name)].sort((a, b) => a.openedAt - b.openedAt);
    for (let i = 1; i < sessions.length; i++) {
      const prev = sessions[i - 1]!;
      const next = sessions[i]!;
      if (prev.closedAt === undefined || next.openedAt < prev.closedAt)
        out.locks.overlaps.push(`${name}: session ${next.session} opened while ${prev.session} was open`);
    }
  }
  out.locks.left = await scanKeys(client, "lunafleet:lock:*");

  const ledger = await new LoginLedger(client).list();
  out.ledger.entries = ledger;
  for (const e of ledger) {
    out.ledger.attemptsInLedger[`${e.device}/${e.partition ?? "-"}/${e.role}`] = e.attempts;
    if (e.pendingAttempt || e.quarantined) out.ledger.pendingOrQuarantined.push(`${e.device}/${e.role}`);
  }
  return out;
}

/**
 * The invariants both failover tests check after the kill, one `it` each: every job completes once, no finished
 * step runs twice, no two holders of a device lock acted, no evidence chain breaks, no recorded guard attempt is lost.
 * `counts` is read when the tests run (after the suite's beforeAll).
 */
export function itKeepsFailoverInvariants(counts: () => FailoverCounts): void {
  it("every job completes, once", () => {
    const { jobs } = counts();
    expect(jobs).toMatchObject({ completed: jobs.submitted, failed: 0 });
    expect(jobs.notSucceeded).toEqual([]);
    expect(jobs.succeededTwice).toEqual([]);
  });

  it("no finished step runs twice", () => {
    const { steps } = counts();
    expect(steps.finishedTwice).toEqual([]);
    expect(steps.checkpointMismatch).toEqual([]);
    // Each job reads its package list once, plus at most once more per extra start (a start whose read never
    // reached its checkpoint); finishedTwice above proves no finished read ran again.
    for (const [device, { sent, jobs, starts, errors }] of Object.entries(steps.packageListPerDevice)) {
      const why = `${device}: package list sent ${sent} times for ${jobs} patch-verify jobs started ${starts} times\n${errors.join("\n")}`;
      expect(sent, why).toBeGreaterThanOrEqual(jobs);
      expect(sent, why).toBeLessThanOrEqual(Math.max(jobs, starts));
    }
    expect(steps.synchronizes.sent, steps.synchronizes.results.join("\n")).toBe(steps.synchronizes.jobs);
  });

  it("no two holders of a device lock acted; no lock is left", () => {
    const { locks } = counts();
    expect(locks.overlaps).toEqual([]);
    expect(locks.left).toEqual([]);
  });

  it("no evidence chain breaks", () => {
    const { evidence, jobs } = counts();
    expect(evidence.problems).toEqual([]);
    expect(evidence.verified).toBe(jobs.submitted);
  });

  it("no recorded guard attempt is lost", () => {
    const { ledger, steps } = counts();
    const recorded = ledger.attemptsRecordedInEvidence;
    // Three CO logins per ha-sync job, each recorded before its password was sent.
    expect(Object.values(recorded).reduce((a, b) => a + b, 0)).toBe(3 * steps.synchronizes.jobs);
    expect(ledger.attemptsInLedger).toMatchObject(recorded);
    expect(ledger.pendingOrQuarantined).toEqual([]);
  });
}
