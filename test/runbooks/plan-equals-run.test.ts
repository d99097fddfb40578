// Plan = run: each device runbook runs over the twin (demo fleet, rebased, real SSH, real Redis, the real login guard)
// and every command the devices received — read from the twin's own logs, lunash per appliance, lunacm and the host
// shell per client host, so the login guard's reads and anything the engine did not record count too — and every
// probe, file transfer and Azure call on the job's evidence, must appear in `lunafleet plan` for the same target and
// parameters (`<...>` in the plan matches any value; a planned guard login stands for what the guard sends for it,
// src/guard/login-plan.ts). Azure calls are planned in prose: the resource each went to must be a planned one.
// The Azure-only runbooks: plan-equals-run-azure.test.ts.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getRunbook } from "../../runbooks/index.ts";
import { deviceLockResource, getDevice } from "../../src/config/model.ts";
import { approvalsStore } from "../../src/coord/approvals.ts";
import { acquireDeviceLocks } from "../../src/coord/locks.ts";
import { signedApprovalsStore } from "../../src/coord/signed-approvals.ts";
import { admitJob } from "../../src/engine/admit.ts";
import { RedisCheckpointStore } from "../../src/engine/checkpoints.ts";
import { type JobPlan, planJob } from "../../src/engine/plan.ts";
import { type SentCommand, unplannedAzureResources, unplannedCommands } from "../../src/engine/plan-match.ts";
import type { CommandChannel } from "../../src/engine/runbook.ts";
import type { JobResult } from "../../src/engine/runner.ts";
import { runJob } from "../../src/engine/runner.ts";
import { RedisStateStore } from "../../src/engine/state.ts";
import { EvidenceLog } from "../../src/evidence/index.ts";
import type { EvidenceRecord } from "../../src/evidence/record.ts";
import { LoginGuard } from "../../src/guard/guard.ts";
import { jobGuard } from "../../src/guard/job-guard.ts";
import { generateSelfSignedCert } from "../../src/sim/certs.ts";
import { startTwin, type Twin } from "../../src/sim/twin.ts";
import { approveWhenAsked, type Connections, connect, runDeprovision } from "../helpers/deprovision.ts";
import { demoFleet, JobEvidence } from "../helpers/engine.ts";
import { withRedis } from "../helpers/redis.ts";

const redis = await withRedis();
let twin: Twin;
let conn: Connections;
let seq = 0;

beforeAll(async () => {
  twin = await startTwin(demoFleet(), { rebase: true });
  conn = connect(twin.fleet, twin.arm!);
}, 60_000);

afterAll(async () => {
  await conn?.close();
  await twin?.stop();
  await redis.stop();
});

/** Where each twin log stands now, to take what one job sent. */
function logMarks() {
  const marks = new Map<string, number>();
  for (const [name, a] of twin.appliances) marks.set(name, a.state.commandLog.length);
  for (const [name, c] of twin.clientHosts) marks.set(name, c.host.commandLog.length);
  return marks;
}

/** Shell commands: the twin's logs since `marks` (the shell's own `exit` and the host's `lunacm` launch are not sends). */
function sentToDevices(marks: Map<string, number>): SentCommand[] {
  const sent: SentCommand[] = [];
  for (const [name, a] of twin.appliances)
    for (const e of a.state.commandLog.slice(marks.get(name)))
      if (!/^exit$/i.test(e.command)) sent.push({ via: "lunash", on: name, command: e.command });
  for (const [name, c] of twin.clientHosts)
    for (const e of c.host.commandLog.slice(marks.get(name))) {
      if (/^(exit|quit|lunacm)$/i.test(e.command.trim())) continue;
      sent.push({ via: e.shell === "lunacm" ? "lunacm" : "host", on: name, command: e.command });
    }
  return sent;
}

const OTHER_CHANNELS: readonly string[] = ["tcp", "tls", "sftp", "host"];

/** Probes, transfers and host writes, as the job's evidence records them. */
function sentElsewhere(records: readonly EvidenceRecord[]): SentCommand[] {
  const out: SentCommand[] = [];
  for (const r of records) {
    const d = r.data as { via?: string; on?: string; command?: string; operation?: string; event?: string };
    if (!d?.via || !d.on || !OTHER_CHANNELS.includes(d.via)) continue;
    if (r.kind === "command" && d.command)
      out.push({ via: d.via as CommandChannel, on: d.on, command: d.command });
  }
  return out;
}

interface Checked {
  result: JobResult;
  sent: SentCommand[];
  plan: JobPlan;
}

/** Run a job as the worker does (device locks, the login guard) and compare what was sent with its plan. */
async function runAndCompare(
  name: string,
  params: Record<string, unknown>,
  /** Who approves when the job asks (alice and bob sign its statement with their demo keys). */
  approvers: { principal: string; confirmation: string }[] = [],
): Promise<Checked> {
  const runbook = getRunbook(name);
  const plan = planJob(runbook, params, twin.fleet);
  const jobId = `plan-run-${name}-${process.pid}-${++seq}`;
  const approving = approvers.length > 0 ? approveWhenAsked(redis.client(), jobId, approvers) : undefined;
  const marks = logMarks();
  const evidence = new JobEvidence(redis, jobId);
  const locks = await acquireDeviceLocks(
    redis.client(),
    [
      ...plan.targets.devices.map((d) => deviceLockResource(getDevice(twin.fleet, d))),
      ...plan.targets.clientHosts.map((h) => `client:${h}`),
    ],
    { owner: jobId, ttlMs: 15_000, waitMs: 5_000 },
  );
  let result: JobResult;
  try {
    result = await runJob({
      runbook,
      params,
      jobId,
      fleet: twin.fleet,
      shells: conn.shells,
      files: conn.files,
      evidence,
      checkpoints: new RedisCheckpointStore(redis.client()),
      state: new RedisStateStore(redis.client()),
      locks,
      guard: jobGuard({
        guard: new LoginGuard(redis.client()),
        shells: conn.shells,
        fleet: twin.fleet,
        jobId,
        locks,
        evidence,
      }),
      // As a worker hands it: requests carry the requester, a granted one is re-verified against the admitted plan.
      approvals: signedApprovalsStore(
        approvalsStore(redis.client()),
        {
          jobId,
          runbook: runbook.name,
          planDigest: admitJob(runbook, params, twin.fleet).planDigest,
          requester: "test-operator",
        },
        twin.fleet,
        await EvidenceLog.open(redis.client(), redis.dataDir, jobId),
      ),
      approvalPollMs: 25,
    });
    await approving;
  } finally {
    await locks.release();
  }
  const sent = [...sentToDevices(marks), ...sentElsewhere(await evidence.records())];
  return { result, sent, plan };
}

function expectWithinPlan({ result, sent, plan }: Checked) {
  expect(result.error, JSON.stringify(result.error)).toBeUndefined();
  expect(sent.length).toBeGreaterThan(0);
  expect(unplannedCommands(plan, sent)).toEqual([]);
}

const touched = (sent: SentCommand[], via: CommandChannel) => [
  ...new Set(sent.filter((c) => c.via === via).map((c) => c.on)),
];

describe("plan = run over the twin", () => {
  it("tcp-check fleet: the probes and vtl verify it plans", async () => {
    expectWithinPlan(await runAndCompare("tcp-check", { target: "fleet" }));
  });

  it("patch-verify fleet", async () => {
    expectWithinPlan(await runAndCompare("patch-verify", { target: "fleet" }));
  });

  it("ntls-cert-sync hsm-a1 repair=true: touches hsm-a1 and client-a only, and only what its plan names", async () => {
    // The demo's broken pair, both halves: client-a trusts an old certificate, hsm-a1 holds another one for client-a.
    const a1 = twin.appliances.get("hsm-a1")!.state;
    const reg = a1.clients.get("client-a")!;
    reg.certPem = (await generateSelfSignedCert({ commonName: "client-a", validDays: 365 })).certPem;
    const checked = await runAndCompare("ntls-cert-sync", { target: "hsm-a1", repair: true });
    expectWithinPlan(checked);
    const { sent, plan } = checked;
    expect(plan.targets.devices).toEqual(["hsm-a1"]);
    expect(touched(sent, "lunash")).toEqual(["hsm-a1"]);
    expect(touched(sent, "lunacm").concat(touched(sent, "host"))).toEqual(
      expect.not.arrayContaining(["client-b"]),
    );
    expect(sent.some((c) => /^vtl addServer /.test(c.command))).toBe(true);
    const planned = plan.steps.flatMap((s) => s.commands.map((c) => c.on));
    expect(planned.every((on) => on === "hsm-a1" || on === "client-a" || /:\d+$/.test(on))).toBe(true);
  });

  it("ntls-cert-sync hsm-a3 regen=true (approved): the download, the regeneration and the re-registration", async () => {
    const serial = getDevice(twin.fleet, "hsm-a3").serial;
    const checked = await runAndCompare("ntls-cert-sync", { target: "hsm-a3", regen: true, repair: true }, [
      { principal: "alice", confirmation: serial },
      { principal: "bob", confirmation: serial },
    ]);
    expectWithinPlan(checked);
    expect(checked.sent.some((c) => c.via === "lunash" && /^sysconf regenCert\b/.test(c.command))).toBe(true);
  });

  it("ha-recover ha-tokens: the down member's checks and the recovery", async () => {
    const checked = await runAndCompare("ha-recover", { target: "ha-tokens" });
    expectWithinPlan(checked);
    expect(checked.sent.some((c) => /^hagroup recover /.test(c.command))).toBe(true);
  });

  it("ha-sync ha-tokens: the guard's logins (its counter reads included), synchronize, logouts", async () => {
    const tok = (d: string) => twin.appliances.get(d)!.state.partitions.find((p) => p.label === "par-tok")!;
    tok("hsm-b1").objects = 9;
    twin.clientHosts.get("client-b")!.host.setMemberDown("hsm-b2", "par-tok", false);
    const checked = await runAndCompare("ha-sync", { target: "ha-tokens" });
    expectWithinPlan(checked);
    expect(checked.sent.filter((c) => c.command === "role login -name co")).toHaveLength(3);
    expect(checked.sent.some((c) => c.via === "lunash" && c.command === "hsm showPolicies")).toBe(true);
  });

  it("deprovision hsm-c1: approvals, the guard's sanctioned zeroize, the Azure deletes", async () => {
    const jobId = `plan-run-deprovision-${process.pid}-${++seq}`;
    const params = {
      target: "hsm-c1",
      backupsConfirmed: true,
      deleteResourceGroup: true,
      approvalPollMs: 20,
    };
    const plan = planJob(getRunbook("deprovision"), params, twin.fleet);
    const marks = logMarks();
    const approvals = approveWhenAsked(redis.client(), jobId, [
      { principal: "alice", confirmation: "700301" },
      { principal: "bob", confirmation: "700301" },
    ]);
    const result = await runDeprovision(conn, twin.fleet, redis.client(), redis.dataDir, { jobId, params });
    await approvals;
    const records = await (await EvidenceLog.open(redis.client(), redis.dataDir, jobId)).records();
    const sent = [...sentToDevices(marks), ...sentElsewhere(records)];
    expectWithinPlan({ result, sent, plan });
    expect(result.status).toBe("succeeded");
    expect(sent.filter((c) => c.command === "hsm login").length).toBeGreaterThan(0);
    const azureCalls = records
      .filter((r) => r.kind === "azure" && (r.data as { event?: string }).event === "request")
      .map((r) => (r.data as { on: string }).on);
    expect(azureCalls.length).toBeGreaterThan(0);
    expect(unplannedAzureResources(plan, azureCalls)).toEqual([]);
  });
});
