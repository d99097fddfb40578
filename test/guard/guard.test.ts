// The login guard over the twin (real SSH) with a real Redis: the happy path, a wrong credential (quarantine, and
// the device counter still refusing after a release), a person's failure seen on the device's own counter, the
// fence (no lock, no login), a stale pending attempt, the LAST caution answered `quit`, partition roles over lunacm,
// and quarantine + release both in the evidence (including `lunafleet guard status|release`).
import { execFile } from "node:child_process";
import { userInfo } from "node:os";
import { promisify } from "node:util";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { deviceLockResource, getDevice } from "../../src/config/model.ts";
import { lockKey } from "../../src/coord/locks.ts";
import { NonRetryable } from "../../src/errors/non-retryable.ts";
import { EvidenceLog } from "../../src/evidence/log.ts";
import { GuardRefused, LoginFailed } from "../../src/guard/errors.ts";
import { type GuardEvidence, LoginGuard } from "../../src/guard/guard.ts";
import { jobGuard } from "../../src/guard/job-guard.ts";
import { ledgerKeyFor, ledgerRedisKey } from "../../src/guard/ledger.ts";
import { releaseQuarantine } from "../../src/guard/release.ts";
import { publishFleet } from "../../src/queue/jobs.ts";
import { attemptHsmSoLogin } from "../../src/sim/state.ts";
import {
  type GuardTwin,
  lockDevice,
  MemoryEvidence,
  resetGuardTest,
  startGuardTwin,
  WorkerShells,
} from "../helpers/guard.ts";
import { withRedis } from "../helpers/redis.ts";

const run = promisify(execFile);
const redis = await withRedis();
let g: GuardTwin;
let shells: WorkerShells;
let r: Redis;
let guard: LoginGuard;

beforeAll(async () => {
  g = await startGuardTwin();
  shells = new WorkerShells(g.fleet);
  r = redis.client();
  guard = new LoginGuard(r);
}, 30_000);

afterAll(async () => {
  await shells?.close();
  await g?.twin.stop();
});

beforeEach(() => resetGuardTest(g, r));

const state = (d: string) => g.twin.appliances.get(d)!.state;
const logins = (d: string) => state(d).commandLog.filter((c) => /^hsm login/.test(c.command));

async function soLogin(jobId: string, evidence: GuardEvidence = new MemoryEvidence()) {
  const locks = await lockDevice(r, g.fleet, "hsm-g1", jobId);
  try {
    return await guard.login({
      session: await shells.lunash("hsm-g1"),
      fleet: g.fleet,
      device: "hsm-g1",
      role: "hsmSo",
      jobId,
      locks,
      evidence,
    });
  } finally {
    await locks.release();
  }
}

describe("login guard over the twin", () => {
  it("logs in as HSM SO: counter read first, attempt recorded before the login, outcome recorded; no secret on the record", async () => {
    const ev = new MemoryEvidence();
    const res = await soLogin("job-ok-1", ev);
    expect(res.role).toBe("hsmSo");
    expect(state("hsm-g1").soLoggedIn).toBe(true);
    expect(ev.events()).toEqual(["attempt-recorded", "outcome"]);
    const cmds = state("hsm-g1").commandLog.map((c) => c.command);
    expect(cmds.indexOf("hsm show")).toBeGreaterThanOrEqual(0);
    expect(cmds.indexOf("hsm show")).toBeLessThan(cmds.findIndex((c) => c.startsWith("hsm login")));
    expect(cmds.some((c) => /-force|-p(assword)?\b/.test(c))).toBe(false);
    const entry = await guard.ledger.get(ledgerKeyFor(g.fleet, "hsm-g1", "hsmSo"));
    expect(entry).toMatchObject({
      failures: 0,
      quarantined: false,
      lastOutcome: "success",
      deviceAttemptsLeft: 3,
    });
    expect(entry.pendingAttempt).toBeUndefined();
    expect(JSON.stringify(ev.records)).not.toContain("HsmSo-G1-secret");
  });

  it("a wrong credential: one failure, quarantined, LoginFailed (not retryable); released, the device counter still refuses", async () => {
    g.fleet.devices[0]!.credentials.hsmSo = "Wrong-SO-password-1";
    const ev = new MemoryEvidence();
    const err = await soLogin("job-wrong-1", ev).catch((e) => e);
    expect(err).toBeInstanceOf(LoginFailed);
    expect(err).toMatchObject({ outcome: "wrong" });
    expect(err).toBeInstanceOf(NonRetryable);
    expect(state("hsm-g1").soFailures).toBe(1);
    expect(await guard.ledger.get(ledgerKeyFor(g.fleet, "hsm-g1", "hsmSo"))).toMatchObject({
      failures: 1,
      quarantined: true,
      quarantineJob: "job-wrong-1",
    });
    expect(ev.records.at(-1)?.data).toMatchObject({ event: "outcome", outcome: "wrong", quarantined: true });

    // Quarantined: refused without a word to the device.
    const before = logins("hsm-g1").length;
    const again = await soLogin("job-wrong-2").catch((e) => e);
    expect(again).toBeInstanceOf(GuardRefused);
    expect(again.message).toMatch(/quarantined/);
    expect(logins("hsm-g1").length).toBe(before);

    // The operator fixes the credential and releases: the ledger is clean, but the device still shows 2 of 3.
    g.fleet.devices[0]!.credentials.hsmSo = g.rightCredentials.get("hsm-g1:hsmSo")!;
    await releaseQuarantine(r, redis.dataDir, {
      device: "hsm-g1",
      role: "hsmSo",
      reason: "rotated the SO password in the vault",
      principal: "alice",
    });
    const third = await soLogin("job-wrong-3").catch((e) => e);
    expect(third).toBeInstanceOf(GuardRefused);
    expect(third.message).toMatch(/2 of 3 attempts left/);
    expect(logins("hsm-g1").length).toBe(before);
    expect(state("hsm-g1").soFailures).toBe(1);
  });

  it("refuses SO login when the device counter shows a failure made by a person outside lunafleet", async () => {
    expect(attemptHsmSoLogin(state("hsm-g1"), "fat-fingered-at-the-console")).toBe("wrong");
    const ev = new MemoryEvidence();
    const err = await soLogin("job-person-1", ev).catch((e) => e);
    expect(err).toBeInstanceOf(GuardRefused);
    expect(err.message).toMatch(
      /device shows 2 of 3 attempts left: someone failed a login outside lunafleet/,
    );
    expect(logins("hsm-g1")).toHaveLength(0);
    expect(ev.records).toHaveLength(1);
    expect(ev.records[0]?.data).toMatchObject({
      event: "refused",
      reason: expect.stringMatching(/someone failed a login outside/),
      device: { attemptsLeft: 2, state: "ok" },
    });
    expect(await guard.ledger.get(ledgerKeyFor(g.fleet, "hsm-g1", "hsmSo"))).toMatchObject({
      deviceAttemptsLeft: 2,
    });
  });

  it("without the device lock nothing is sent; with a stale fencing token the ledger refuses", async () => {
    const locks = await lockDevice(r, g.fleet, "hsm-g2", "job-otherdev");
    const session = await shells.lunash("hsm-g1");
    const err = await guard
      .login({
        session,
        fleet: g.fleet,
        device: "hsm-g1",
        role: "hsmSo",
        jobId: "job-nolock",
        locks,
        evidence: new MemoryEvidence(),
      })
      .catch((e) => e);
    await locks.release();
    expect(err).toBeInstanceOf(GuardRefused);
    // The lock is the appliance's: its serial and where it answers, not the fleet's name for it.
    const g1 = getDevice(g.fleet, "hsm-g1");
    expect(err.message).toContain(`does not hold the device lock device:700501@${g1.host}:${g1.port}`);

    // A holder whose lock was taken over (expired, someone else now holds it) fails the fence inside the ledger.
    const mine = await lockDevice(r, g.fleet, "hsm-g1", "job-stale", { ttlMs: 5000 });
    await r.set(lockKey(deviceLockResource(getDevice(g.fleet, "hsm-g1"))), "999|job-thief");
    const stale = await guard
      .login({
        session,
        fleet: g.fleet,
        device: "hsm-g1",
        role: "hsmSo",
        jobId: "job-stale",
        locks: mine,
        evidence: new MemoryEvidence(),
      })
      .catch((e) => e);
    await r.del(lockKey(deviceLockResource(getDevice(g.fleet, "hsm-g1"))));
    await mine.release().catch(() => {});
    expect(stale).toBeInstanceOf(GuardRefused);
    expect(stale.message).toMatch(/fencing token mismatch/);
    expect(logins("hsm-g1")).toHaveLength(0);
  });

  it("a pending attempt whose worker lost the lock is resolved as a failure and quarantines", async () => {
    // A worker recorded an attempt under a lock it no longer holds, then died.
    await guard.ledger.begin(ledgerKeyFor(g.fleet, "hsm-g1", "hsmSo"), "job-dead:1", {
      lockValue: "1|job-dead",
      maxPriorFailures: 0,
      jobId: "job-dead",
    });
    const ev = new MemoryEvidence();
    const err = await soLogin("job-after-crash", ev).catch((e) => e);
    expect(err).toBeInstanceOf(GuardRefused);
    expect(ev.events()).toEqual(["stale-attempt-resolved", "refused"]);
    expect(await guard.ledger.get(ledgerKeyFor(g.fleet, "hsm-g1", "hsmSo"))).toMatchObject({
      failures: 1,
      quarantined: true,
      quarantineJob: "job-dead",
      lastOutcome: "unknown",
    });
    expect(logins("hsm-g1")).toHaveLength(0);
  });

  it("the LAST-attempt caution is answered quit, never proceed (a person failed twice between the read and the login)", async () => {
    const ev = new MemoryEvidence();
    ev.onAppend = (_kind, data) => {
      // Right after the attempt is recorded, before the login is sent: two failures at the console.
      if ((data as { event?: string }).event === "attempt-recorded") state("hsm-g1").soFailures = 2;
    };
    const session = await shells.lunash("hsm-g1");
    const err = await soLogin("job-last", ev).catch((e) => e);
    expect(err).toBeInstanceOf(LoginFailed);
    expect(err.outcome).toBe("unknown");
    expect(err.message).toMatch(/LAST|last-attempt-caution/);
    expect(state("hsm-g1").zeroized).toBe(false);
    expect(state("hsm-g1").soFailures).toBe(2); // the aborted login was not an attempt
    // What the driver typed: the login, then `quit` at the caution; never `proceed`, never a password.
    const sent = session.transcript.entries.filter((e) => e.dir === "sent").map((e) => e.text);
    expect(sent.slice(-2)).toEqual(["hsm login", "quit"]);
    expect(sent).not.toContain("proceed");
    expect(await guard.ledger.get(ledgerKeyFor(g.fleet, "hsm-g1", "hsmSo"))).toMatchObject({
      quarantined: true,
    });
  });

  it("partition roles log in through lunacm after reading partition showinfo / role show; a wrong CO password quarantines", async () => {
    const ev = new MemoryEvidence();
    const locks = await lockDevice(r, g.fleet, "hsm-g1", "job-co-1");
    const session = await shells.lunacm("client-g");
    const applianceSession = await shells.lunash("hsm-g1");
    try {
      const ok = await guard.login({
        session,
        applianceSession,
        fleet: g.fleet,
        device: "hsm-g1",
        partition: "par-g1",
        role: "co",
        jobId: "job-co-1",
        locks,
        evidence: ev,
      });
      expect(ok.partition).toBe("par-g1");
      const out = await session.run("role logout");
      expect(out.footer).toBe("Command Result : No Error");
      const recorded = ev.records[0]?.data as {
        policy: { effect: string; threshold: number };
        device: { reads: string[]; policy15: number };
      };
      expect(recorded.policy).toMatchObject({ effect: "permanent-lockout", threshold: 4 });
      expect(recorded.device.policy15).toBe(0);
      expect(recorded.device.reads).toEqual(
        expect.arrayContaining(["partition showinfo", "role show -name co", "hsm showPolicies"]),
      );

      g.fleet.devices[0]!.partitions[0]!.credentials.co = "Wrong-CO-password-1";
      const err = await guard
        .login({
          session,
          applianceSession,
          fleet: g.fleet,
          device: "hsm-g1",
          partition: "par-g1",
          role: "co",
          jobId: "job-co-2",
          locks,
          evidence: ev,
        })
        .catch((e) => e);
      expect(err).toBeInstanceOf(LoginFailed);
      expect(state("hsm-g1").partitions[0]!.failures.co).toBe(1);
      expect(await guard.ledger.get(ledgerKeyFor(g.fleet, "hsm-g1", "co", "par-g1"))).toMatchObject({
        quarantined: true,
        failures: 1,
      });
    } finally {
      await locks.release();
    }
  });

  it("CO under policy 15 = 1 (healing) with policy 20 = 3 read from the device: allowed while two attempts remain", async () => {
    const p = state("hsm-g2").partitions[0]!;
    p.failures.co = 1; // two left of three
    const locks = await lockDevice(r, g.fleet, "hsm-g2", "job-heal-1");
    const ev = new MemoryEvidence();
    try {
      const ok = await guard.login({
        session: await shells.lunacm("client-g"),
        applianceSession: await shells.lunash("hsm-g2"),
        fleet: g.fleet,
        device: "hsm-g2",
        partition: "par-g2",
        role: "co",
        jobId: "job-heal-1",
        locks,
        evidence: ev,
      });
      expect(ok.attemptsLeftAfterFailure).toBe(1);
      await (await shells.lunacm("client-g")).run("role logout");
      expect(ev.records[0]?.data).toMatchObject({ policy: { effect: "healing-lockout", threshold: 3 } });
      p.failures.co = 2; // one left: a failure would lock it out
      const err = await guard
        .login({
          session: await shells.lunacm("client-g"),
          applianceSession: await shells.lunash("hsm-g2"),
          fleet: g.fleet,
          device: "hsm-g2",
          partition: "par-g2",
          role: "co",
          jobId: "job-heal-2",
          locks,
          evidence: ev,
        })
        .catch((e) => e);
      expect(err).toBeInstanceOf(GuardRefused);
      expect(err.message).toMatch(/only 1 attempt\(s\) left/);
    } finally {
      await locks.release();
    }
  });

  it("ctx.guard-style job guard picks the sessions and logs in the Partition SO", async () => {
    const locks = await lockDevice(r, g.fleet, "hsm-g1", "job-jg-1");
    try {
      const jg = jobGuard({
        guard,
        shells: shells.shells,
        fleet: g.fleet,
        jobId: "job-jg-1",
        locks,
        evidence: new MemoryEvidence(),
      });
      const res = await jg.login("hsm-g1", "partitionSo", { partition: "par-g1" });
      expect(res).toMatchObject({ device: "hsm-g1", partition: "par-g1", role: "partitionSo" });
      await (await shells.lunacm("client-g")).run("role logout");
      await expect(jg.login("hsm-g1", "co")).rejects.toThrow(/needs \{ partition \}/);
    } finally {
      await locks.release();
    }
  });

  it("quarantine and release are both in the evidence; guard status and release from the CLI", async () => {
    g.fleet.devices[0]!.credentials.hsmSo = "Wrong-SO-password-2";
    const jobId = "job-q-evidence";
    const evidence = await EvidenceLog.open(r, redis.dataDir, jobId);
    await soLogin(jobId, evidence).catch(() => {});
    const jobRecords = (await evidence.records()).map(
      (x) => x.data as { event?: string; quarantined?: boolean },
    );
    expect(jobRecords.find((d) => d.event === "outcome")).toMatchObject({ quarantined: true });

    const cli = (...args: string[]) =>
      run(
        process.execPath,
        ["--import", "tsx", "src/cli/main.ts", "guard", ...args, "--data-dir", redis.dataDir],
        {
          cwd: process.cwd(),
        },
      );
    const status = await cli("status", "--json");
    const entries = JSON.parse(status.stdout) as {
      device: string;
      role: string;
      quarantined: boolean;
      quarantineJob?: string;
      deviceAttemptsLeft?: number;
    }[];
    expect(entries).toContainEqual(
      expect.objectContaining({
        device: "hsm-g1",
        role: "hsmSo",
        quarantined: true,
        quarantineJob: jobId,
        deviceAttemptsLeft: 3,
      }),
    );
    const text = await cli("status");
    expect(text.stdout).toMatch(/hsm-g1 hsmSo: QUARANTINED/);

    // The CLI acts on the daemon's published fleet, as the OS account's principal (guard-admin by localRoles).
    await publishFleet(r, g.fleet);
    const thin = await cli("release", "hsm-g1", "hsmSo", "--reason", "vault entry fixed").catch((e) => e);
    expect(thin.code).toBe(1);
    expect(thin.stderr).toMatch(/needs a reason of substance/);
    // An HSM SO release waits for a second principal's signed approval; the ledger stays quarantined meanwhile.
    const rel = await cli(
      "release",
      "hsm-g1",
      "hsmSo",
      "--reason",
      "the vault entry held last year's SO password; rotated and checked by hand",
    );
    const request = /(guard-release-[a-z0-9]+-[0-9a-f]{6}) awaits a second principal's signed approval/.exec(
      rel.stdout,
    )?.[1];
    expect(request, rel.stdout).toBeDefined();
    expect(rel.stdout).toContain(`approve: lunafleet approve ${request} --key`);
    const relLog = await EvidenceLog.open(r, redis.dataDir, request!);
    const relRecords = await relLog.records();
    expect(relRecords[0]).toMatchObject({
      actor: `os:${userInfo().username}`,
      data: { event: "release-requested", quarantinedBy: jobId },
    });
    expect(await r.hget(ledgerRedisKey(ledgerKeyFor(g.fleet, "hsm-g1", "hsmSo")), "quarantined")).toBe("1");

    const again = await cli("release", "hsm-g1", "auditor", "--reason", "x").catch((e) => e);
    expect(again.code).toBe(1);
    expect(String(again.stderr)).toMatch(/not quarantined/);
  }, 120_000); // four CLI processes through tsx: about 50 s on a loaded 2-core machine
});
