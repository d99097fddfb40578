// The sanctioned zeroize over the twin: refused without a job id, without two distinct unexpired approvals, with a
// wrong serial (typed or reported by the device), without the device lock; the happy path sends failing SO logins
// with random strings, answers `proceed` only at the LAST caution, and verifies `HSM IS ZEROIZED`; a resume sends
// nothing. The last-attempt exception issuer can be claimed only once (sanctioned-zeroize.ts holds it).
import type { Redis } from "ioredis";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { requestApproval } from "../../src/coord/approvals.ts";
import { SanctionedZeroizeRefused } from "../../src/guard/errors.ts";
import { LoginGuard } from "../../src/guard/guard.ts";
import { jobGuard } from "../../src/guard/job-guard.ts";
import { ledgerKeyFor, ledgerRedisKey } from "../../src/guard/ledger.ts";
import { checkApprovals, sanctionedZeroize } from "../../src/guard/sanctioned-zeroize.ts";
import { claimLastAttemptExceptionIssuer } from "../../src/shell/last-attempt-exception.ts";
import {
  type GuardTwin,
  lockDevice,
  MemoryEvidence,
  resetGuardTest,
  startGuardTwin,
  WorkerShells,
} from "../helpers/guard.ts";
import { withRedis } from "../helpers/redis.ts";
import { signedApprove, withDemoApprovers } from "../helpers/ssh-signing.ts";

const redis = await withRedis();
let g: GuardTwin;
let shells: WorkerShells;
let r: Redis;

beforeAll(async () => {
  g = await startGuardTwin();
  shells = new WorkerShells(g.fleet);
  r = redis.client();
}, 30_000);
afterAll(async () => {
  await shells?.close();
  await g?.twin.stop();
});
beforeEach(() => resetGuardTest(g, r));

const state = () => g.twin.appliances.get("hsm-g1")!.state;
const recent = (minutesAgo: number) => new Date(Date.now() - minutesAgo * 60_000).toISOString();
const twoApprovals = () => [
  { principal: "alice", at: recent(5) },
  { principal: "bob", at: recent(2) },
];

async function zeroize(over: Partial<Parameters<typeof sanctionedZeroize>[1]> = {}) {
  const locks = await lockDevice(r, g.fleet, "hsm-g1", "deprovision-hsm-g1-1");
  const evidence = new MemoryEvidence();
  try {
    const result = await sanctionedZeroize(r, {
      session: await shells.lunash("hsm-g1"),
      fleet: g.fleet,
      device: "hsm-g1",
      deprovisionJobId: "deprovision-hsm-g1-1",
      approvals: twoApprovals(),
      confirmation: "700501",
      locks,
      evidence,
      ...over,
    });
    return { result, evidence };
  } catch (err) {
    return { error: err as Error, evidence };
  } finally {
    await locks.release().catch(() => {});
  }
}

const loginsSent = () => state().commandLog.filter((c) => c.command.startsWith("hsm login")).length;

describe("sanctioned zeroize", () => {
  it("refuses without a job id, without two distinct unexpired approvals, with a wrong serial; nothing is sent", async () => {
    const cases: [Partial<Parameters<typeof sanctionedZeroize>[1]>, RegExp][] = [
      [{ deprovisionJobId: "" }, /deprovision job id is required/],
      [{ approvals: [{ principal: "alice", at: recent(1) }] }, /2 distinct principals, has 1/],
      [
        {
          approvals: [
            { principal: "alice", at: recent(1) },
            { principal: "Alice", at: recent(2) },
          ],
        },
        /has 1/,
      ],
      [
        {
          approvals: [
            { principal: "alice", at: recent(1) },
            { principal: "bob", at: recent(61) },
          ],
        },
        /bob expired/,
      ],
      [{ confirmation: "700502" }, /does not match hsm-g1's serial/],
    ];
    for (const [over, why] of cases) {
      const { error, evidence } = await zeroize(over);
      expect(error).toBeInstanceOf(SanctionedZeroizeRefused);
      expect(error?.message).toMatch(why);
      expect(evidence.events()).toEqual(["zeroize-refused"]);
    }
    // The device itself reports another serial (the fleet file points at the wrong box).
    state().serial = "799999";
    const { error } = await zeroize();
    state().serial = "700501";
    expect(error?.message).toMatch(/reports serial 799999/);
    expect(loginsSent()).toBe(0);
    expect(state().zeroized).toBe(false);
  });

  it("refuses without the device lock", async () => {
    const locks = await lockDevice(r, g.fleet, "hsm-g2", "deprovision-x");
    const err = await sanctionedZeroize(r, {
      session: await shells.lunash("hsm-g1"),
      fleet: g.fleet,
      device: "hsm-g1",
      deprovisionJobId: "deprovision-x",
      approvals: twoApprovals(),
      confirmation: "700501",
      locks,
      evidence: new MemoryEvidence(),
    }).catch((e) => e);
    await locks.release();
    expect(err).toBeInstanceOf(SanctionedZeroizeRefused);
    expect(err.message).toMatch(/does not hold the device lock/);
    expect(loginsSent()).toBe(0);
  });

  it("zeroizes with three failing random logins (proceed only at the LAST caution) and verifies; a resume sends nothing", async () => {
    const { result, error, evidence } = await zeroize();
    expect(error).toBeUndefined();
    expect(result).toMatchObject({
      device: "hsm-g1",
      serial: "700501",
      alreadyZeroized: false,
      loginsSent: 3,
    });
    expect(state().zeroized).toBe(true);
    expect(loginsSent()).toBe(3);
    // What the driver typed: three logins, each password redacted, `proceed` once — after the third login only.
    const sent = (await shells.lunash("hsm-g1")).transcript.entries
      .filter((e) => e.dir === "sent" && e.text !== "hsm show")
      .map((e) => e.text);
    expect(sent).toEqual([
      "hsm login",
      "[REDACTED]",
      "hsm login",
      "[REDACTED]",
      "hsm login",
      "proceed",
      "[REDACTED]",
    ]);
    expect(evidence.events()).toEqual([
      "zeroize-intent",
      "zeroize-login-sent",
      "zeroize-login-outcome",
      "zeroize-login-sent",
      "zeroize-login-outcome",
      "zeroize-login-sent",
      "zeroize-login-outcome",
      "zeroize-verified",
    ]);
    expect(evidence.records[0]?.data).toMatchObject({ approvedBy: ["alice", "bob"] });
    expect(JSON.stringify(evidence.records)).not.toContain("HsmSo-G1-secret");
    expect(
      await r.hget(ledgerRedisKey(ledgerKeyFor(g.fleet, "hsm-g1", "hsmSo")), "quarantineReason"),
    ).toMatch(/sanctioned zeroize by deprovision job deprovision-hsm-g1-1/);

    // Resume (the worker died after the zeroize): the device says it is zeroized, nothing more is sent.
    const resumed = await zeroize();
    expect(resumed.result).toMatchObject({ alreadyZeroized: true, loginsSent: 0 });
    expect(resumed.evidence.events()).toEqual(["zeroize-already-done"]);
    expect(loginsSent()).toBe(3);
  });

  it("through the job guard (ctx.guard.sanctionedZeroize): approvals and confirmation come from the approvals store", async () => {
    const jobId = "deprovision-hsm-g1-2";
    const locks = await lockDevice(r, g.fleet, "hsm-g1", jobId);
    try {
      const fleet = withDemoApprovers(g.fleet);
      const facts = { jobId, runbook: "deprovision", planDigest: "ab".repeat(32), requester: "ops" };
      const jg = jobGuard({
        guard: new LoginGuard(r),
        shells: shells.shells,
        fleet,
        approvalFacts: facts,
        jobId,
        locks,
        evidence: new MemoryEvidence(),
        redis: r,
      });
      // Not approved yet: refused, nothing sent.
      await requestApproval(r, jobId, {
        device: "hsm-g1",
        serial: "700501",
        required: 2,
        expiresMinutes: 60,
        runbook: facts.runbook,
        planDigest: facts.planDigest,
        requester: facts.requester,
      });
      await signedApprove(r, jobId, "alice", fleet);
      await expect(jg.sanctionedZeroize("hsm-g1")).rejects.toThrow(/no granted approval/);
      expect(loginsSent()).toBe(0);
      await signedApprove(r, jobId, "bob", fleet);
      const res = await jg.sanctionedZeroize("hsm-g1");
      expect(res).toMatchObject({ alreadyZeroized: false, loginsSent: 3 });
      expect(state().zeroized).toBe(true);
    } finally {
      await locks.release();
    }
  });

  it("the exception issuer is claimed once per process (by sanctioned-zeroize.ts); nobody else gets one", () => {
    expect(() => claimLastAttemptExceptionIssuer()).toThrow(/already claimed/);
  });

  it("checkApprovals: distinct, unexpired, not future-dated, listed when the fleet lists approvers", () => {
    const now = Date.now();
    const policy = { required: 2, expiresMinutes: 60 };
    expect(checkApprovals(twoApprovals(), policy, now)).toMatchObject({ ok: true });
    expect(
      checkApprovals(
        [
          { principal: "a", at: new Date(now + 3_600_000) },
          { principal: "b", at: new Date(now) },
        ],
        policy,
        now,
      ),
    ).toMatchObject({ ok: false, reason: expect.stringMatching(/future/) });
    expect(checkApprovals(twoApprovals(), { ...policy, principals: ["alice"] }, now)).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/bob is not an approver/),
    });
    // A policy asking for one approval still needs two.
    expect(
      checkApprovals([{ principal: "alice", at: new Date(now) }], { required: 1, expiresMinutes: 60 }, now),
    ).toMatchObject({ ok: false });
  });
});
