// Kill at each step: a deprovision job dies after each step in turn (before its checkpoint is committed, and right
// after), then resumes. Every run must end in the same final state, with the same order in the ARM request log, and
// no destructive action repeated: exactly one zeroize sequence, one HSM DELETE, one group DELETE. One variant is a
// real child process SIGKILLed by itself at the chosen point.
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Fleet } from "../../src/config/schema.ts";
import { RedisCheckpointStore } from "../../src/engine/checkpoints.ts";
import { EvidenceLog } from "../../src/evidence/index.ts";
import { startTwin, type Twin } from "../../src/sim/twin.ts";
import {
  approveWhenAsked,
  type Connections,
  connect,
  crashingCheckpoints,
  hsmResourceId,
  runDeprovision,
} from "../helpers/deprovision.ts";
import { demoFleet } from "../helpers/engine.ts";
import { withRedis } from "../helpers/redis.ts";

const STEPS = [
  "preflight",
  "sanctioned-zeroize",
  "verify-zeroized",
  "delete-hsm-resource",
  "verify-hsm-gone",
  "delete-resource-group",
] as const;
const CASES = STEPS.flatMap((step) =>
  (["before-commit", "after-commit"] as const).map((when) => ({ step, when })),
);

const redis = await withRedis();
let twin: Twin;
let conn: Connections;
let fleet: Fleet;
const r = () => redis.client();

/**
 * The demo fleet with one lone appliance per crash case (each in its own resource group, so its group may be
 * deleted) plus the baseline and the child-process case; no HA groups, one client host whose lunacm is checked.
 */
function crashFleet(count: number): Fleet {
  const demo = demoFleet();
  const template = demo.devices.find((d) => d.name === "hsm-b3")!;
  const sub = demo.azure!.subscriptionId!;
  const devices = Array.from({ length: count }, (_, i) => {
    const n = String(i + 1).padStart(2, "0");
    return {
      ...structuredClone(template),
      name: `hsm-k${n}`,
      host: `127.0.1.${100 + i}`,
      serial: `7009${n}`,
      credentials: { appliance: `Appliance-K${n}-pw`, hsmSo: `HsmSo-K${n}-secret` },
      azure: {
        resourceId: `/subscriptions/${sub}/resourceGroups/rg-crash-${n}/providers/Microsoft.HardwareSecurityModules/dedicatedHSMs/hsm-k${n}`,
      },
      partitions: [{ ...structuredClone(template.partitions[0]!), serial: `17009${n}000001` }],
      sim: { ...template.sim!, rebootPatch: true },
    };
  });
  // Two bystanders in an HA group on the client host: its groups are really listed and matched, and none is ours.
  const [by1, by2] = devices.splice(count - 2, 2) as [(typeof devices)[number], (typeof devices)[number]];
  by1.name = "bystander-1";
  by2.name = "bystander-2";
  devices.push(by1, by2);
  const client = structuredClone(demo.clientHosts.find((c) => c.name === "client-b")!);
  client.assignments = [by1, by2, devices[0]!].map((d) => ({ device: d.name, partitions: ["par-tok"] }));
  client.sim = { ...client.sim!, membersDown: [] };
  const group = structuredClone(demo.haGroups.find((g) => g.label === "ha-tokens")!);
  group.label = "ha-bystanders";
  group.members = [by1, by2].map((d) => ({ device: d.name, partition: "par-tok" }));
  return { ...demo, devices, clientHosts: [client], haGroups: [group], maintenanceWindows: [] };
}

beforeAll(async () => {
  twin = await startTwin(crashFleet(CASES.length + 5), { rebase: true });
  fleet = twin.fleet;
  conn = connect(fleet, twin.arm!);
});

afterAll(async () => {
  await conn?.close();
  await twin?.stop();
});

const serialOf = (device: string) => fleet.devices.find((d) => d.name === device)!.serial;
const params = (device: string) => ({
  target: device,
  backupsConfirmed: true,
  deleteResourceGroup: true,
  approvalPollMs: 20,
});

/** What must be true after every run, crash or not; returns the run's ARM order signature. */
async function assertFinalState(device: string, jobId: string): Promise<string[]> {
  const id = hsmResourceId(fleet, device);
  const group = id.replace(/\/providers\/.*$/, "").toLowerCase();
  expect(twin.appliances.get(device)!.state.zeroized).toBe(true);
  expect(twin.arm!.hsmState(id)).toMatchObject({
    exists: false,
    deleted: true,
    orphaned: false,
    billed: false,
    resourceGroupExists: false,
  });
  const logins = twin.appliances
    .get(device)!
    .state.commandLog.filter((c) => /^hsm\s+login\b/i.test(c.command));
  expect(logins).toHaveLength(3); // one zeroize sequence
  // The ARM calls on this device's HSM and group, in order, as labels.
  const mine = twin.arm!.requestLog.filter(
    (e) => e.path.toLowerCase() === id.toLowerCase() || e.path.toLowerCase() === group,
  );
  const deletes = mine.filter((e) => e.method === "DELETE");
  expect(deletes.map((e) => (e.path.toLowerCase() === group ? "group" : "hsm"))).toEqual(["hsm", "group"]);
  expect(Date.parse(deletes[0]!.at)).toBeGreaterThanOrEqual(logins.at(-1)!.at);
  const first404 = mine.findIndex(
    (e) => e.method === "GET" && e.status === 404 && e.path.toLowerCase() !== group,
  );
  expect(first404).toBeGreaterThan(mine.indexOf(deletes[0]!));
  expect(mine.indexOf(deletes[1]!)).toBeGreaterThan(first404);
  // Every step has exactly one checkpoint; the evidence chain is intact.
  const finished = await new RedisCheckpointStore(r()).finishedSteps(jobId);
  expect([...finished.keys()]).toEqual([...STEPS]);
  const log = await EvidenceLog.open(r(), redis.dataDir, jobId);
  expect((await log.verify()).ok).toBe(true);
  // The order signature: the first occurrence of each kind of ARM call, in order.
  const labels = mine.map((e) =>
    e.method === "DELETE"
      ? `DELETE ${e.path.toLowerCase() === group ? "group" : "hsm"}`
      : e.method === "GET" && e.status === 404
        ? "GET hsm 404"
        : null,
  );
  return labels.filter((l, i): l is string => l !== null && labels.indexOf(l) === i);
}

/** How many times each step was started, from the job's evidence. */
async function startsPerStep(jobId: string): Promise<Record<string, number>> {
  const recs = await (await EvidenceLog.open(r(), redis.dataDir, jobId)).records();
  const out: Record<string, number> = {};
  for (const x of recs) {
    const d = x.data as { step?: string; event?: string };
    if (x.kind === "step" && d.event === "started" && d.step) out[d.step] = (out[d.step] ?? 0) + 1;
  }
  return out;
}

let baseline: string[] | undefined;

describe("deprovision: kill at each step, then resume", () => {
  it("baseline (no crash) gives the reference ARM order", async () => {
    const device = fleet.devices[0]!.name;
    const jobId = `crash-base-${process.pid}`;
    const approvals = approveWhenAsked(r(), jobId, [
      { principal: "alice", confirmation: serialOf(device) },
      { principal: "bob", confirmation: serialOf(device) },
    ]);
    const result = await runDeprovision(conn, fleet, r(), redis.dataDir, { jobId, params: params(device) });
    await approvals;
    expect(result.status).toBe("succeeded");
    baseline = await assertFinalState(device, jobId);
    expect(baseline).toEqual(["DELETE hsm", "GET hsm 404", "DELETE group"]);
  });

  it.each(CASES.map((c, i) => ({ ...c, device: `hsm-k${String(i + 2).padStart(2, "0")}` })))(
    "dies $when of $step, resumes, and ends the same",
    async ({ step, when, device }) => {
      const jobId = `crash-${step}-${when}-${process.pid}`;
      const approvals = approveWhenAsked(r(), jobId, [
        { principal: "alice", confirmation: serialOf(device) },
        { principal: "bob", confirmation: serialOf(device) },
      ]);
      const store = new RedisCheckpointStore(r());
      const first = await runDeprovision(conn, fleet, r(), redis.dataDir, {
        jobId,
        params: params(device),
        checkpoints: crashingCheckpoints(store, { step, when }),
      });
      await approvals;
      expect(first.status).toBe("failed");
      expect(first.error).toMatchObject({ type: "SimulatedCrash", retryable: true });

      const resumed = await runDeprovision(conn, fleet, r(), redis.dataDir, {
        jobId,
        params: params(device),
        attempt: 2,
      });
      expect(resumed.error).toBeUndefined();
      expect(resumed.status).toBe("succeeded");
      const crashedAt = STEPS.indexOf(step);
      // Finished steps were not run again; only the step that died uncommitted ran a second time.
      for (const [i, s] of STEPS.entries()) {
        const expected =
          i < crashedAt ? "resumed" : i === crashedAt && when === "after-commit" ? "resumed" : "done";
        expect(resumed.steps[i]?.status, s).toBe(expected);
      }
      const starts = await startsPerStep(jobId);
      for (const [i, s] of STEPS.entries())
        expect(starts[s], s).toBe(i === crashedAt && when === "before-commit" ? 2 : 1);
      expect(await assertFinalState(device, jobId)).toEqual(baseline);
    },
  );

  it("a real worker process SIGKILLed right after the zeroize checkpoint: another process resumes it", async () => {
    const device = `hsm-k${String(CASES.length + 2).padStart(2, "0")}`;
    const jobId = `crash-sigkill-${process.pid}`;
    const fleetFile = join(redis.dataDir, "crash-fleet.json");
    writeFileSync(fleetFile, JSON.stringify(fleet));
    const approvals = approveWhenAsked(r(), jobId, [
      { principal: "alice", confirmation: serialOf(device) },
      { principal: "bob", confirmation: serialOf(device) },
    ]);
    const script = fileURLToPath(new URL("./deprovision-worker.ts", import.meta.url));
    const child = spawn(
      process.execPath,
      ["--import", "tsx", script, fleetFile, jobId, device, "sanctioned-zeroize", "after-commit"],
      {
        env: {
          ...process.env,
          REDIS_URL: redis.url,
          LF_DATA_DIR: redis.dataDir,
          LF_ARM: JSON.stringify({
            endpoint: twin.arm!.endpoint,
            caPem: twin.arm!.caPem,
            subscriptionId: twin.arm!.subscriptionId,
          }),
        },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let stderr = "";
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on("exit", (code, signal) => resolve({ code, signal })),
    );
    await approvals;
    expect(exit.signal, stderr).toBe("SIGKILL");
    // Died holding its locks (TTL 1 s) with two steps committed and the device zeroized.
    expect([...(await new RedisCheckpointStore(r()).finishedSteps(jobId)).keys()]).toEqual([
      "preflight",
      "sanctioned-zeroize",
    ]);
    expect(twin.appliances.get(device)!.state.zeroized).toBe(true);

    const resumed = await runDeprovision(conn, fleet, r(), redis.dataDir, {
      jobId,
      params: params(device),
      attempt: 2,
    });
    expect(resumed.error).toBeUndefined();
    expect(resumed.steps.map((s) => s.status)).toEqual([
      "resumed",
      "resumed",
      "done",
      "done",
      "done",
      "done",
    ]);
    expect(await assertFinalState(device, jobId)).toEqual(baseline);
  });

  it("a job cancelled while Azure is deleting the HSM: cancelled, and the resumed job re-attaches and finishes", async () => {
    const device = `hsm-k${String(CASES.length + 3).padStart(2, "0")}`;
    const jobId = `crash-abort-lro-${process.pid}`;
    const hsmPath = hsmResourceId(fleet, device).toLowerCase();
    const approvals = approveWhenAsked(r(), jobId, [
      { principal: "alice", confirmation: serialOf(device) },
      { principal: "bob", confirmation: serialOf(device) },
    ]);
    twin.arm!.setFault({ kind: "slow-polls", delayMs: 150 });
    const cancel = new AbortController();
    const running = runDeprovision(conn, fleet, r(), redis.dataDir, {
      jobId,
      params: params(device),
      signal: cancel.signal,
    });
    // Waits on the request itself (the twin's log), with no deadline load could beat: a job that never sends the
    // DELETE fails the test at its timeout, which only a hang reaches.
    while (!twin.arm!.requestLog.some((e) => e.method === "DELETE" && e.path.toLowerCase() === hsmPath))
      await new Promise((res) => setTimeout(res, 10));
    cancel.abort();
    const first = await running;
    await approvals;
    twin.arm!.clearFaults();
    expect(first.status).toBe("cancelled");
    expect(first.error?.message).toMatch(/cancelled while Azure was deleting/);
    expect(first.steps.find((s) => s.id === "delete-hsm-resource")?.status).toBe("pending");

    const resumed = await runDeprovision(conn, fleet, r(), redis.dataDir, {
      jobId,
      params: params(device),
      attempt: 2,
    });
    expect(resumed.error).toBeUndefined();
    expect(resumed.status).toBe("succeeded");
    expect(
      twin.appliances.get(device)!.state.commandLog.filter((c) => /^hsm\s+login\b/i.test(c.command)),
    ).toHaveLength(3);
    expect(twin.arm!.hsmState(hsmResourceId(fleet, device))).toMatchObject({
      deleted: true,
      orphaned: false,
      resourceGroupExists: false,
    });
  });
});
