// ha-sync end to end over the twin (demo fleet rebased, real Redis): validation, the CO login on every member through
// the real login guard (ledger, evidence, device locks), `hagroup synchronize` with no password prompt, logout; and
// the foreign cloning domain of ha-payments still caught before any synchronize.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getRunbook } from "../../runbooks/index.ts";
import { deviceLockResource, getDevice } from "../../src/config/model.ts";
import { acquireDeviceLocks } from "../../src/coord/locks.ts";
import { RedisCheckpointStore } from "../../src/engine/checkpoints.ts";
import { planJob } from "../../src/engine/plan.ts";
import { runJob } from "../../src/engine/runner.ts";
import { LoginGuard } from "../../src/guard/guard.ts";
import { jobGuard } from "../../src/guard/job-guard.ts";
import { JobShells } from "../../src/shell/job-shells.ts";
import { startTwin, type Twin } from "../../src/sim/twin.ts";
import { UnexpectedPrompt } from "../../src/transport/errors.ts";
import { SshPool } from "../../src/transport/pool.ts";
import { demoFleet, JobEvidence } from "../engine/support.ts";
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

describe("ha-sync over the twin with the login guard", () => {
  it("ha-tokens: validates, logs the CO in on every member through the guard, synchronizes once, logs out", async () => {
    tokPartition("hsm-b1").objects = 7;
    tokPartition("hsm-b2").objects = 3;
    tokPartition("hsm-b3").objects = 3;
    const { result, evidence } = await run("ha-tokens");
    expect(result.error, JSON.stringify(result.error)).toBeUndefined();
    expect(result.status).toBe("succeeded");
    const sync = result.steps.find((s) => s.id === "synchronize")!.result as {
      synchronized: boolean;
      loginAttempts: string[];
    };
    expect(sync.synchronized).toBe(true);
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

    // In sync now: a second run validates and leaves the group alone (no login, no synchronize).
    const again = await run("ha-tokens");
    expect(again.result.status).toBe("succeeded");
    expect(again.result.steps.find((s) => s.id === "synchronize")!.result).toMatchObject({
      synchronized: false,
    });
    expect(syncCommands("client-b")).toHaveLength(1);
  });

  it("ha-payments: hsm-a3's foreign domain stops the job before any login or synchronize, with the remediation plan", async () => {
    const before = twin.clientHosts.get("client-a")!.host.commandLog.length;
    const { result } = await run("ha-payments");
    expect(result.status).toBe("failed");
    expect(result.error!.type).toBe("CloningDomainMismatch");
    expect(result.error!.message).toMatch(/hsm-a3\/par-pay/);
    expect(result.error!.message).toMatch(
      /hagroup removemember -group ha-payments -serialnumber 1700103000001/,
    );
    expect(result.steps.find((s) => s.id === "synchronize")!.status).toBe("pending");
    const after = twin.clientHosts.get("client-a")!.host.commandLog.slice(before);
    expect(after.some((e) => /hagroup synchronize|role login/.test(e.command))).toBe(false);
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
