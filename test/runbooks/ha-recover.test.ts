// ha-recover over the real twin: lunacm on the client hosts, lunash partition show, TCP probes, the per-member breaker
// in real Redis (ctx.state), typed findings, and the garbled reply that stops the job. (ha-sync: ha-sync.test.ts.)
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getRunbook } from "../../runbooks/index.ts";
import { breakerOpenGauge, releaseBreaker } from "../../runbooks/lib/breaker.ts";
import { RedisCheckpointStore } from "../../src/engine/checkpoints.ts";
import { runJob } from "../../src/engine/runner.ts";
import { RedisStateStore } from "../../src/engine/state.ts";
import { JobShells } from "../../src/shell/job-shells.ts";
import { startTwin, type Twin } from "../../src/sim/twin.ts";
import { SshPool } from "../../src/transport/pool.ts";
import { demoFleet, JobEvidence } from "../helpers/engine.ts";
import { type FleetShells, fleetShells } from "../helpers/fleet-shells.ts";
import { withRedis } from "../helpers/redis.ts";

const redis = await withRedis();
let twin: Twin;
let ssh: FleetShells;
let state: RedisStateStore;
let seq = 0;

beforeAll(async () => {
  twin = await startTwin(demoFleet(), { rebase: true });
  ssh = fleetShells(twin.fleet);
  state = new RedisStateStore(redis.client());
});

afterAll(async () => {
  await ssh?.close();
  await twin?.stop();
  await redis.stop();
});

async function run(runbook: string, params: Record<string, unknown>) {
  const jobId = `${runbook}-${process.pid}-${++seq}`;
  const evidence = new JobEvidence(redis, jobId);
  const result = await runJob({
    runbook: getRunbook(runbook),
    params,
    jobId,
    fleet: twin.fleet,
    shells: ssh.shells,
    files: ssh.files,
    evidence,
    checkpoints: new RedisCheckpointStore(redis.client()),
    state,
  });
  return { result, evidence };
}

type Report = {
  groups: {
    group: string;
    recovered: string[];
    stillDown: string[];
    breakerTripped: string[];
    skipped: { member: string; why: string }[];
    settingsMatched: boolean;
    settingsChanged: string[];
  }[];
};
const reportOf = (r: Awaited<ReturnType<typeof run>>) =>
  r.result.steps.find((s) => s.id === "report")?.result as unknown as Report;
const recoverCount = (host: string, group: string) =>
  twin.clientHosts.get(host)!.host.commandLog.filter((e) => e.command === `hagroup recover -group ${group}`)
    .length;
const member = (host: string, device: string) =>
  twin.clientHosts
    .get(host)!
    .host.haGroups.flatMap((g) => g.members)
    .find((m) => m.device === device)!;

describe("ha-recover over the twin", () => {
  it("recovers hsm-b2's downed member and sets client-b's retry count 0 to the fleet value", async () => {
    expect(member("client-b", "hsm-b2").down).toBe(true);
    expect(twin.clientHosts.get("client-b")!.host.haSettings.retryCount).toBe(0);
    const r = await run("ha-recover", { target: "ha-tokens" });
    expect(r.result.error).toBeUndefined();
    expect(r.result.outcome).toBe("succeeded");
    const g = reportOf(r).groups[0]!;
    expect(g.recovered).toEqual(["hsm-b2/par-tok"]);
    expect(g.stillDown).toEqual([]);
    expect(member("client-b", "hsm-b2").down).toBe(false);
    expect(g.settingsMatched).toBe(false);
    expect(g.settingsChanged).toContain("retry count 0 -> 3");
    expect(twin.clientHosts.get("client-b")!.host.haSettings.retryCount).toBe(3);
    expect(await r.evidence.verify()).toBe(true);
    // Again: nothing down, settings match, no recover sent.
    const before = recoverCount("client-b", "ha-tokens");
    const againRun = await run("ha-recover", { target: "ha-tokens" });
    expect(againRun.result.outcome).toBe("nothing-to-do");
    const again = reportOf(againRun).groups[0]!;
    expect(again.settingsMatched).toBe(true);
    expect(recoverCount("client-b", "ha-tokens")).toBe(before);
  });

  it("trips the breaker after the configured number of failed recoveries, then leaves the member alone until released", async () => {
    const host = twin.clientHosts.get("client-a")!.host;
    // client-a's stale trust of hsm-a1 (ntls-cert-sync's job) would keep hsm-a1 down too: repair it here.
    host.serverCerts.set("hsm-a1", twin.appliances.get("hsm-a1")!.state.ntls.certPem);
    host.setMemberDown("hsm-a1", "par-pay", false);
    host.setMemberDown("hsm-a2", "par-pay", true);
    host.setMemberRecoverFails("hsm-a2", "par-pay", true);
    const threshold = twin.fleet.defaults.breakerThreshold;
    for (let i = 1; i <= threshold; i++) {
      const attempt = await run("ha-recover", { auto: true });
      // A member still down after the recover is a failed job (never green), named in its findings, not retried.
      expect(attempt.result.outcome).toBe("failed");
      expect(attempt.result.error).toMatchObject({ type: "GoalNotMet", retryable: false });
      expect(attempt.result.findings).toContain(
        "ha-payments: hsm-a2/par-pay still down after hagroup recover",
      );
      const g = reportOf(attempt).groups.find((x) => x.group === "ha-payments")!;
      expect(g.stillDown).toEqual(["hsm-a2/par-pay"]);
      expect(g.breakerTripped).toEqual(i === threshold ? ["hsm-a2/par-pay"] : []);
    }
    expect(recoverCount("client-a", "ha-payments")).toBe(threshold);
    const gauge = await breakerOpenGauge.get();
    expect(gauge.values.find((v) => v.labels.member === "hsm-a2/par-pay")?.value).toBe(1);
    // Open: the member is not touched again (no further recover for it).
    const openRun = await run("ha-recover", { target: "ha-payments" });
    // Left alone behind its open breaker: still down, so not green either — a finding.
    expect(openRun.result.outcome).toBe("succeeded-with-findings");
    expect(openRun.result.findings?.[0]).toMatch(
      /^ha-payments: hsm-a2\/par-pay down, not recovered: breaker open/,
    );
    const open = reportOf(openRun).groups[0]!;
    expect(open.skipped.find((s) => s.member === "hsm-a2/par-pay")?.why).toMatch(/breaker open/);
    expect(recoverCount("client-a", "ha-payments")).toBe(threshold);
    // Released and fixed: the next job recovers it.
    expect(await releaseBreaker(state, "ha-payments", "hsm-a2/par-pay")).toBe(threshold);
    host.setMemberRecoverFails("hsm-a2", "par-pay", false);
    const back = reportOf(await run("ha-recover", { target: "ha-payments" })).groups[0]!;
    expect(back.recovered).toEqual(["hsm-a2/par-pay"]);
    expect(recoverCount("client-a", "ha-payments")).toBe(threshold + 1);
  });

  it("garbled listgroups output stops the job with a clear error, and the group stays as it was", async () => {
    const host = twin.clientHosts.get("client-b")!.host;
    host.setMemberDown("hsm-b3", "par-tok", true);
    const before = recoverCount("client-b", "ha-tokens");
    await twin.setFault("client-b", "garble", "hagroup listgroups");
    try {
      const { result } = await run("ha-recover", { target: "ha-tokens" });
      expect(result.status).toBe("failed");
      expect(result.error!.type).toMatch(/ParseFailed|UnexpectedResult/);
      expect(`${result.error!.host ?? ""} ${result.error!.message}`).toMatch(/client-b/);
    } finally {
      await twin.setFault("client-b", "garble", "off");
    }
    expect(recoverCount("client-b", "ha-tokens")).toBe(before);
    expect(member("client-b", "hsm-b3").down).toBe(true);
    // The fault cleared, the next job on the same JobShells reads the group cleanly (the garbled shell was
    // abandoned, not lent again out of step) and recovers the member.
    const next = await run("ha-recover", { target: "ha-tokens" });
    expect(next.result.error, JSON.stringify(next.result.error)).toBeUndefined();
    expect(reportOf(next).groups[0]!.recovered).toEqual(["hsm-b3/par-tok"]);
    expect(member("client-b", "hsm-b3").down).toBe(false);
    host.setMemberDown("hsm-b3", "par-tok", false);
  });
});

describe("ha-sync over the twin", () => {
  it("a member whose declared domain differs in the fleet file is refused from the fleet file alone", async () => {
    const fleet = structuredClone(twin.fleet);
    fleet.devices.find((d) => d.name === "hsm-b1")!.partitions[0]!.cloningDomain = "other";
    const jobId = `ha-sync-decl-${++seq}`;
    // Fresh sessions: client-b's lunacm session saw garbled output in an earlier test.
    const ownPool = new SshPool();
    const ownShells = JobShells.forFleet(fleet, ownPool.lease());
    const result = await runJob({
      runbook: getRunbook("ha-sync"),
      params: { target: "ha-tokens" },
      jobId,
      fleet,
      shells: ownShells,
      evidence: new JobEvidence(redis, jobId),
      checkpoints: new RedisCheckpointStore(redis.client()),
    });
    expect(result.error, JSON.stringify(result.error)).toMatchObject({ type: "CloningDomainMismatch" });
    await ownShells.close();
    await ownPool.closeAll();
    expect(result.error!.message).toMatch(/fleet file declares domain 'other' for hsm-b1\/par-tok/);
    expect(
      twin.clientHosts.get("client-b")!.host.commandLog.some((e) => /hagroup synchronize/.test(e.command)),
    ).toBe(false);
  });
});
