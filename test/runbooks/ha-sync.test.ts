// ha-sync end to end over the twin (demo fleet rebased, real Redis; the twin prints no cloning-domain line — no Luna
// does): the fleet file's declarations first, then the CO login on every live member through the real login guard
// (ledger, evidence, device locks), `hagroup synchronize` as lunacm's own cloning check with no password prompt, logout.
// hsm-a3's foreign domain is caught by lunacm's warning whether or not ha-payments needs a sync; a declared foreign
// member stops the job before anything is sent; a member that cannot be checked is a finding.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getRunbook } from "../../runbooks/index.ts";
import { deviceLockResource, getDevice } from "../../src/config/model.ts";
import { acquireDeviceLocks } from "../../src/coord/locks.ts";
import { buildReport } from "../../src/daemon/report.ts";
import { renderReport } from "../../src/daemon/report-render.ts";
import { RedisCheckpointStore } from "../../src/engine/checkpoints.ts";
import { planJob } from "../../src/engine/plan.ts";
import { runJob } from "../../src/engine/runner.ts";
import { RedisFactStore } from "../../src/facts/store.ts";
import { LoginGuard } from "../../src/guard/guard.ts";
import { jobGuard } from "../../src/guard/job-guard.ts";
import { UnexpectedPrompt } from "../../src/shell/errors.ts";
import { JobShells } from "../../src/shell/job-shells.ts";
import { startTwin, type Twin } from "../../src/sim/twin.ts";
import { SshPool } from "../../src/transport/pool.ts";
import { demoFleet, JobEvidence } from "../helpers/engine.ts";
import { type FleetShells, fleetShells } from "../helpers/fleet-shells.ts";
import { withRedis } from "../helpers/redis.ts";

const redis = await withRedis();
let twin: Twin;
let ssh: FleetShells;
let seq = 0;

beforeAll(async () => {
  twin = await startTwin(demoFleet(), { rebase: true });
  ssh = fleetShells(twin.fleet);
  // The operator's order: hsm-b2 recovered (ha-recover's job), client-a's trust of hsm-a1 repaired.
  twin.clientHosts.get("client-b")!.host.setMemberDown("hsm-b2", "par-tok", false);
  const a = twin.clientHosts.get("client-a")!.host;
  a.serverCerts.set("hsm-a1", twin.appliances.get("hsm-a1")!.state.ntls.certPem);
  for (const d of ["hsm-a1", "hsm-a2", "hsm-a3"]) a.setMemberDown(d, "par-pay", false);
});

afterAll(async () => {
  await ssh?.close();
  await twin?.stop();
  await redis.stop();
});

/** One job as the worker runs it: the runbook's device locks, the real login guard on the job's shells. */
async function run(target: string) {
  const runbook = getRunbook("ha-sync");
  const jobId = `ha-sync-${process.pid}-${++seq}`;
  const evidence = new JobEvidence(redis, jobId);
  const { targets } = planJob(runbook, { target }, twin.fleet);
  const locks = await acquireDeviceLocks(
    redis.client(),
    [
      ...targets.devices.map((d) => deviceLockResource(getDevice(twin.fleet, d))),
      ...targets.clientHosts.map((h) => `client:${h}`),
    ],
    { owner: jobId, ttlMs: 15_000, waitMs: 5_000 },
  );
  try {
    const result = await runJob({
      runbook,
      params: { target },
      jobId,
      fleet: twin.fleet,
      shells: ssh.shells,
      files: ssh.files,
      evidence,
      checkpoints: new RedisCheckpointStore(redis.client()),
      facts: new RedisFactStore(redis.client()),
      locks,
      guard: jobGuard({
        guard: new LoginGuard(redis.client()),
        shells: ssh.shells,
        fleet: twin.fleet,
        jobId,
        locks,
        evidence,
      }),
    });
    return { result, evidence };
  } finally {
    await locks.release();
  }
}

const tokPartition = (device: string) =>
  twin.appliances.get(device)!.state.partitions.find((p) => p.label === "par-tok")!;
const syncCommands = (host: string) =>
  twin.clientHosts.get(host)!.host.commandLog.filter((e) => /^hagroup synchronize\b/i.test(e.command));

/** The fleet report (the operator's `lunafleet report`) over what these jobs observed. */
async function reportOf(device: string) {
  const report = await buildReport(redis.client(), twin.fleet);
  const row = report.devices.find((d) => d.device === device)!;
  const line = renderReport(report)
    .split("\n")
    .find((l) => l.startsWith(`${device} `))!;
  return { row, line, problems: report.problems.filter((p) => p.startsWith(`${device}: `)) };
}

const payPartition = (device: string) =>
  twin.appliances.get(device)!.state.partitions.find((p) => p.label === "par-pay")!;
const resultOf = <T>(result: { steps: { id: string; result?: unknown }[] }, id: string) =>
  result.steps.find((s) => s.id === id)!.result as T;

describe("ha-sync over the twin with the login guard", () => {
  it("ha-tokens: logs the CO in on every member through the guard, synchronizes once, logs out; in sync, lunacm's check still runs", async () => {
    tokPartition("hsm-b1").objects = 7;
    tokPartition("hsm-b2").objects = 3;
    tokPartition("hsm-b3").objects = 3;
    const { result, evidence } = await run("ha-tokens");
    expect(result.error, JSON.stringify(result.error)).toBeUndefined();
    expect(result.outcome).toBe("succeeded");
    const sync = resultOf<{
      neededSync: boolean;
      checked: unknown[];
      loginAttempts: string[];
      findings: unknown[];
    }>(result, "synchronize");
    expect(sync).toMatchObject({ neededSync: true, findings: [] });
    expect(sync.checked).toHaveLength(3);
    expect(sync.loginAttempts).toHaveLength(3);

    // The client saw exactly one synchronize, after the three CO logins, and no password was typed for it.
    const log = twin.clientHosts.get("client-b")!.host.commandLog;
    expect(syncCommands("client-b").map((e) => e.command)).toEqual(["hagroup synchronize -group ha-tokens"]);
    const syncAt = log.findIndex((e) => /^hagroup synchronize/.test(e.command));
    expect(log.slice(0, syncAt).filter((e) => e.command === "role login -name co")).toHaveLength(3);
    expect(log[syncAt + 1]?.command).not.toMatch(/^\[REDACTED\]$|CryptoOff/);
    expect(["hsm-b1", "hsm-b2", "hsm-b3"].map((d) => tokPartition(d).objects)).toEqual([7, 7, 7]);

    // The guard's ledger: one successful CO login per member, nothing pending or quarantined.
    const ledger = await new LoginGuard(redis.client()).ledger.list();
    for (const device of ["hsm-b1", "hsm-b2", "hsm-b3"]) {
      const e = ledger.find((x) => x.device === device && x.partition === "par-tok" && x.role === "co");
      expect(e, device).toMatchObject({ failures: 0, quarantined: false, lastOutcome: "success" });
      expect(e!.pendingAttempt).toBeUndefined();
      expect(tokPartition(device).failures.co).toBe(0);
      // Logged out again: no CO login is left in the session.
      expect(tokPartition(device).loggedIn).toBeUndefined();
    }
    const outcomes = (await evidence.records())
      .filter((r) => r.kind === "guard")
      .map((r) => r.data as { event?: string; outcome?: string; device?: string })
      .filter((d) => d.event === "outcome");
    expect(outcomes.map((o) => `${o.device}:${o.outcome}`).sort()).toEqual([
      "hsm-b1:success",
      "hsm-b2:success",
      "hsm-b3:success",
    ]);
    expect(log.filter((e) => e.command === "role logout")).toHaveLength(3);
    const text = await evidence.text();
    for (const pw of ["CryptoOff-B1-secret", "CryptoOff-B2-secret", "CryptoOff-B3-secret"])
      expect(text).not.toContain(pw);
    expect(await evidence.verify()).toBe(true);

    // In sync now: nothing to copy, but the members' domains are only verified by lunacm's own check, so it runs
    // again; it prints no conflict, and the job had nothing to do.
    const again = await run("ha-tokens");
    expect(again.result.outcome).toBe("nothing-to-do");
    expect(resultOf(again.result, "synchronize")).toMatchObject({ neededSync: false, findings: [] });
    expect(syncCommands("client-b")).toHaveLength(2);
    expect(["hsm-b1", "hsm-b2", "hsm-b3"].map((d) => tokPartition(d).objects)).toEqual([7, 7, 7]);
  });

  for (const needsSync of [true, false])
    it(`ha-payments ${needsSync ? "needing" : "not needing"} a sync: lunacm's cloning warning names hsm-a3 as foreign, with the remediation plan; nothing is copied`, async () => {
      for (const d of ["hsm-a1", "hsm-a2", "hsm-a3"]) payPartition(d).objects = 5;
      if (needsSync) payPartition("hsm-a1").objects = 8;
      const host = twin.clientHosts.get("client-a")!.host;
      const before = host.commandLog.length;
      const { result, evidence } = await run("ha-payments");
      expect(result.outcome).toBe("failed");
      expect(result.error!.type).toBe("CloningDomainMismatch");
      // lunacm names the slots; the job names the members behind them and the way out.
      expect(result.error!.message).toMatch(
        /conflicting settings for private key cloning between slot \d+ \(hsm-a1\) and slot \d+ \(hsm-a3\)/,
      );
      expect(result.error!.message).toMatch(
        /hagroup removemember -group ha-payments -serialnumber 1700103000001/,
      );
      const note = (await evidence.records())
        .filter((r) => r.kind === "note")
        .map(
          (r) =>
            (
              r.data as {
                data?: {
                  cloningDomains?: { findings: { kind: string; device: string; remediation: unknown[] }[] };
                };
              }
            ).data?.cloningDomains,
        )
        .find(Boolean)!;
      expect(note.findings.map((f) => [f.kind, f.device])).toEqual([["foreign-member", "hsm-a3"]]);
      expect(note.findings[0]!.remediation.length).toBeGreaterThan(0);
      const sent = host.commandLog.slice(before).map((e) => e.command);
      expect(sent.filter((c) => /^hagroup synchronize/.test(c))).toHaveLength(1);
      // The CO logged in on each member for the check and out again afterwards; nothing was copied.
      expect(sent.filter((c) => c === "role login -name co")).toHaveLength(3);
      expect(sent.filter((c) => c === "role logout")).toHaveLength(3);
      expect(["hsm-a1", "hsm-a2", "hsm-a3"].map((d) => payPartition(d).objects)).toEqual(
        needsSync ? [8, 5, 5] : [5, 5, 5],
      );
      // The fleet report says so too: hsm-a3 FOREIGN, with lunacm's evidence and the way out; hsm-a1 and hsm-a2 are
      // not shown to be in the group's domain (lunacm names only the conflicting slots): not verified, never green.
      const a3 = await reportOf("hsm-a3");
      expect(a3.row.ha[0]!.cloningDomain).toMatchObject({ status: "problem", summary: "FOREIGN" });
      expect(a3.line).toMatch(/ha-payments:\S+ domain FOREIGN/);
      const foreignLine = a3.problems.find((p) => /foreign cloning domain/.test(p));
      expect(foreignLine).toMatch(
        /^hsm-a3: ha-payments: hsm-a3\/par-pay \(1700103000001\) is in a foreign cloning domain \(.*private key cloning.*\); remediation: .*hagroup removemember -group ha-payments -serialnumber 1700103000001/,
      );
      for (const d of ["hsm-a1", "hsm-a2"]) {
        const other = await reportOf(d);
        expect(other.row.ha[0]!.cloningDomain).toMatchObject({
          status: "check-failed",
          summary: "NOT VERIFIED",
        });
        expect(other.problems.some((p) => /cloning domain not verified/.test(p))).toBe(true);
      }
    });

  it("two live members in conflict: lunacm does not say which is foreign, so neither is named foreign and no member is to be removed", async () => {
    // hsm-a1 down: lunacm compares hsm-a2 and hsm-a3 only. Its warning says the two differ, not which one is outside
    // the group's domain; the remediation replaces a member, and replacing the wrong one would drop the good copy.
    for (const d of ["hsm-a1", "hsm-a2", "hsm-a3"]) payPartition(d).objects = 5;
    const host = twin.clientHosts.get("client-a")!.host;
    host.setMemberDown("hsm-a1", "par-pay", true);
    try {
      const { result, evidence } = await run("ha-payments");
      expect(result.outcome).toBe("failed");
      expect(result.error!.type).toBe("CloningDomainMismatch");
      expect(result.error!.message).toMatch(
        /conflicting settings for private key cloning between slot \d+ \(hsm-a2\) and slot \d+ \(hsm-a3\)/,
      );
      expect(result.error!.message).toMatch(
        /lunacm does not say which of hsm-a2\/par-pay and hsm-a3\/par-pay is outside the group's cloning domain/,
      );
      expect(result.error!.message).not.toMatch(/removemember|Remediation/);
      const note = (await evidence.records())
        .filter((r) => r.kind === "note")
        .map(
          (r) =>
            (r.data as { data?: { cloningDomains?: { findings: { kind: string; device: string }[] } } }).data
              ?.cloningDomains,
        )
        .find(Boolean)!;
      expect(note.findings.map((f) => [f.kind, f.device])).toEqual([
        ["domain-unverifiable", "hsm-a2"],
        ["domain-unverifiable", "hsm-a3"],
      ]);
      // The report: both NOT VERIFIED with why, neither FOREIGN, never green.
      for (const [d, other] of [
        ["hsm-a2", "hsm-a3"],
        ["hsm-a3", "hsm-a2"],
      ] as const) {
        const r = await reportOf(d);
        expect(r.row.ha[0]!.cloningDomain).toMatchObject({ status: "check-failed", summary: "NOT VERIFIED" });
        expect(r.problems).toContainEqual(
          expect.stringMatching(
            new RegExp(
              `${d}/par-pay: cloning domain not verified: its cloning domain conflicts with ${other}/par-pay`,
            ),
          ),
        );
        expect(r.problems.some((p) => /FOREIGN|foreign cloning domain/.test(p))).toBe(false);
      }
    } finally {
      host.setMemberDown("hsm-a1", "par-pay", false);
    }
  });

  it("a member the fleet file declares in another domain stops the job before any login or synchronize", async () => {
    const fleet = structuredClone(twin.fleet);
    fleet.devices.find((d) => d.name === "hsm-b1")!.partitions[0]!.cloningDomain = "other";
    const before = twin.clientHosts.get("client-b")!.host.commandLog.length;
    const ownPool = new SshPool();
    const own = JobShells.forFleet(fleet, ownPool.lease());
    const jobId = `ha-sync-decl-${process.pid}-${++seq}`;
    try {
      const result = await runJob({
        runbook: getRunbook("ha-sync"),
        params: { target: "ha-tokens" },
        jobId,
        fleet,
        shells: own,
        evidence: new JobEvidence(redis, jobId),
        checkpoints: new RedisCheckpointStore(redis.client()),
        facts: new RedisFactStore(redis.client()),
      });
      expect(result.error, JSON.stringify(result.error)).toMatchObject({ type: "CloningDomainMismatch" });
      expect(result.error!.message).toMatch(/fleet file declares domain 'other' for hsm-b1\/par-tok/);
      expect(result.steps.find((s) => s.id === "synchronize")!.status).toBe("pending");
    } finally {
      await own.close();
      await ownPool.closeAll();
    }
    const sent = twin.clientHosts
      .get("client-b")!
      .host.commandLog.slice(before)
      .map((e) => e.command);
    // A fresh session starts lunacm from the host's shell; then only the listing, before the job stopped.
    expect(sent).toEqual(["lunacm", "hagroup listgroups"]);
    // The report: hsm-b1 FOREIGN by this job, with the declaration as evidence and the way out; the members' state
    // that the listing showed before the stop is kept (all up, seen by this job), not dropped with the stop.
    const b1 = await reportOf("hsm-b1");
    expect(b1.row.ha[0]!.cloningDomain).toMatchObject({ status: "problem", summary: "FOREIGN", jobId });
    expect(b1.line).toMatch(/ha-tokens:up domain FOREIGN/);
    expect(b1.problems).toContainEqual(
      expect.stringMatching(
        /^hsm-b1: ha-tokens: hsm-b1\/par-tok \(\d+\) is in a foreign cloning domain \(the fleet file's declaration\); remediation: /,
      ),
    );
    for (const d of ["hsm-b1", "hsm-b2", "hsm-b3"]) {
      const { row } = await reportOf(d);
      expect(row.ha[0]!.member, d).toMatchObject({ status: "ok", summary: "up", jobId });
    }
    for (const d of ["hsm-b2", "hsm-b3"])
      expect((await reportOf(d)).row.ha[0]!.cloningDomain, d).toMatchObject({
        status: "check-failed",
        jobId,
      });
  });

  it("a member that is down takes no part in the check: its domain is not verified, and that is a finding", async () => {
    const host = twin.clientHosts.get("client-b")!.host;
    host.setMemberDown("hsm-b2", "par-tok", true);
    try {
      const { result } = await run("ha-tokens");
      expect(result.outcome).toBe("succeeded-with-findings");
      expect(result.findings).toEqual([
        expect.stringMatching(/^ha-tokens: hsm-b2\/par-tok is down: /),
        expect.stringMatching(/^ha-tokens: hsm-b2\/par-tok: cloning domain not verified: not checked: /),
      ]);
      const sync = resultOf<{ checked: { device: string }[]; findings: { kind: string }[] }>(
        result,
        "synchronize",
      );
      expect(sync.checked.map((m) => m.device)).toEqual(["hsm-b1", "hsm-b3"]);
      expect(sync.findings.map((f) => f.kind)).toEqual(["member-down", "domain-unverifiable"]);
      // …and in the fleet report: hsm-b2 DOWN with its domain NOT VERIFIED, a problem line with when and which job;
      // the members lunacm's check covered are in the group's domain.
      const b2 = await reportOf("hsm-b2");
      expect(b2.line).toMatch(/ha-tokens:DOWN domain NOT VERIFIED/);
      expect(b2.row.ha[0]!.cloningDomain).toMatchObject({ status: "check-failed", jobId: result.jobId });
      expect(b2.problems).toContainEqual(
        expect.stringMatching(
          new RegExp(
            `^hsm-b2: cloning-domain: CHECK FAILED at .* \\(ha-sync job ${result.jobId}\\): ha-tokens: hsm-b2/par-tok: cloning domain not verified: not checked: `,
          ),
        ),
      );
      expect((await reportOf("hsm-b1")).row.ha[0]!.cloningDomain).toMatchObject({ status: "ok" });
    } finally {
      host.setMemberDown("hsm-b2", "par-tok", false);
    }
  });

  it("a synchronize nobody logged in for meets the password prompt: the shell has no token, aborts and types nothing", async () => {
    tokPartition("hsm-b1").objects = 9;
    const ownPool = new SshPool();
    const own = JobShells.forFleet(twin.fleet, ownPool.lease());
    try {
      const cm = await own.lunacm("client-b");
      const err = await cm.run("hagroup synchronize -group ha-tokens").catch((e) => e);
      expect(err).toBeInstanceOf(UnexpectedPrompt);
      expect(err.message).toMatch(/login password prompt the step holds no \(unused\) LoginToken/);
      expect(cm.usable).toBe(false);
    } finally {
      await own.close();
      await ownPool.closeAll();
    }
    expect(["hsm-b1", "hsm-b2", "hsm-b3"].map((d) => tokPartition(d).failures.co)).toEqual([0, 0, 0]);
    expect(["hsm-b1", "hsm-b2", "hsm-b3"].map((d) => tokPartition(d).objects)).toEqual([9, 7, 7]);
    tokPartition("hsm-b1").objects = 7;
  });
});
