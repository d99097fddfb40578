// `npm start`'s daemon (runDemo, rebased twin) deprovisions a device end to end: the worker's ARM client trusts the
// twin's ARM CA (and nothing else was configured by hand), two distinct principals approve through the approvals
// API with the device serial, the appliance is zeroized, the HSM resource is deleted and answers 404 — in that order
// in the ARM twin's request log. Also: what `lunafleet sim` publishes (endpoint + CA file) is enough for a separately
// started daemon's ARM access, and a twin CA is never accepted for a production fleet.
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { armAccessFromFlags, armGatewayFor } from "../../src/azure/access.ts";
import { describeArmTwin } from "../../src/cli/commands/sim.ts";
import { type DemoRun, runDemo } from "../../src/cli/demo.ts";
import { approvalState } from "../../src/coord/approvals.ts";
import { EvidenceLog } from "../../src/evidence/index.ts";
import { submitJob } from "../../src/queue/jobs.ts";
import { publishArmTwin, readSimState, removeSimState, writeSimState } from "../../src/sim/control.ts";
import { hsmResourceId, removeFromHaGroups } from "../helpers/deprovision.ts";
import { signedApprove } from "../helpers/ssh-signing.ts";

const dataDir = mkdtempSync(join(tmpdir(), "lf-demo-deprov-"));
let demo: DemoRun;

beforeAll(async () => {
  demo = await runDemo({ dataDir, rebase: true, httpPort: null, concurrency: 4, print: () => {} });
});

afterAll(async () => {
  await demo?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

/**
 * Waits on the condition itself (`what` says which), with no deadline of its own that load could beat: the test's
 * timeout is the hang guard.
 */
async function until<T>(_what: string, read: () => Promise<T>, done: (v: T) => boolean): Promise<T> {
  for (;;) {
    const v = await read();
    if (done(v)) return v;
    await sleep(25);
  }
}

describe("npm start daemon: deprovision over the twin's ARM", () => {
  it("a deprovision job is approved twice through the approvals API and completes; HSM 404 at the ARM twin", async () => {
    const { twin, daemon } = demo;
    const arm = twin.arm!;
    const device = "hsm-b3";
    const serial = twin.fleet.devices.find((d) => d.name === device)!.serial;
    const id = hsmResourceId(twin.fleet, device);
    removeFromHaGroups(twin, device); // the demo devices are HA members; an operator takes them out first
    const logStart = arm.requestLog.length;

    const { jobId } = await submitJob(daemon.queue, {
      fleet: twin.fleet,
      runbook: "deprovision",
      target: device,
      params: { backupsConfirmed: true, approvalPollMs: 25 },
      actor: "operator:test",
    });
    const asked = await until(
      "the approval request",
      async () => {
        const job = await daemon.queue.getJob(jobId);
        if ((await job?.getState()) === "failed") throw new Error(`job failed: ${job?.failedReason}`);
        return approvalState(daemon.redis, jobId);
      },
      (s) => s !== null,
    );
    expect(asked).toMatchObject({ status: "awaiting-approval", required: 2, device, serial });
    expect(twin.appliances.get(device)!.state.zeroized).toBe(false);

    const evidence = await EvidenceLog.open(daemon.redis, dataDir, jobId);
    const first = await signedApprove(daemon.redis, jobId, "alice", twin.fleet, { evidence });
    expect(first.status).toBe("awaiting-approval");
    const second = await signedApprove(daemon.redis, jobId, "bob", twin.fleet, { evidence });
    expect(second.status).toBe("approved");

    const job = (await daemon.queue.getJob(jobId))!;
    const state = await until(
      "the job to finish",
      () => job.getState(),
      (s) => s === "completed" || s === "failed",
    );
    const finished = (await daemon.queue.getJob(jobId))!;
    expect(state, finished.failedReason).toBe("completed");

    // The device is zeroized, the HSM resource deleted (not orphaned), its group kept (not asked to delete it).
    const appliance = twin.appliances.get(device)!.state;
    expect(appliance.zeroized).toBe(true);
    expect(arm.hsmState(id)).toMatchObject({ exists: false, deleted: true, orphaned: false });
    expect(arm.hsmState(id).resourceGroupExists).toBe(true);
    expect(arm.hsmState(hsmResourceId(twin.fleet, "hsm-b1")).exists).toBe(true);

    // ARM request log, this job only: GET 200 (preflight) → DELETE (after the zeroize) → … → GET 404; no group DELETE.
    const log = arm.requestLog.slice(logStart);
    const onHsm = log.filter((e) => e.path.toLowerCase() === id.toLowerCase());
    const firstGet = onHsm.findIndex((e) => e.method === "GET" && e.status === 200);
    const del = onHsm.findIndex((e) => e.method === "DELETE");
    const gone = onHsm.findIndex((e) => e.method === "GET" && e.status === 404);
    expect(firstGet).toBe(0);
    expect(del).toBeGreaterThan(firstGet);
    expect(gone).toBeGreaterThan(del);
    expect(onHsm.filter((e) => e.method === "DELETE")).toHaveLength(1);
    expect(onHsm[del]!.status).toBe(202);
    expect(log.some((e) => e.method === "DELETE" && e.path.toLowerCase() !== id.toLowerCase())).toBe(false);
    const zeroizedAt = appliance.commandLog.filter((c) => /^hsm\s+login\b/i.test(c.command)).at(-1)!.at;
    expect(Date.parse(onHsm[del]!.at)).toBeGreaterThanOrEqual(zeroizedAt);
    const approvedAt = Date.parse((await approvalState(daemon.redis, jobId))!.approvals.at(-1)!.at);
    expect(Date.parse(onHsm[del]!.at)).toBeGreaterThanOrEqual(approvedAt);

    // Both approvals are on the job's record.
    const approvals = (await evidence.records()).filter((r) => r.kind === "approval");
    expect(approvals.map((r) => r.actor)).toEqual(["alice", "bob"]);
  });

  it("what `lunafleet sim` publishes lets a separately started daemon reach the same ARM twin", async () => {
    const { twin } = demo;
    const stateDir = join(dataDir, "sim-state");
    const published = publishArmTwin(stateDir, twin.arm!);
    expect(readFileSync(published.caFile, "utf8")).toBe(twin.arm!.caPem);
    expect(published.arm).toEqual({
      endpoint: twin.arm!.endpoint,
      subscriptionId: twin.arm!.subscriptionId,
      caFile: published.caFile,
    });

    // `lunafleet daemon --azure-endpoint … --azure-ca …` (or the LUNAFLEET_AZURE_* env) resolves to the same access.
    const fromFlags = armAccessFromFlags(
      { azureEndpoint: twin.arm!.endpoint, azureCa: published.caFile },
      {},
    );
    const fromEnv = armAccessFromFlags(
      {},
      { LUNAFLEET_AZURE_ENDPOINT: twin.arm!.endpoint, LUNAFLEET_AZURE_CA_FILE: published.caFile },
    );
    expect(fromEnv).toEqual(fromFlags);
    const gateway = armGatewayFor(twin.fleet, fromFlags)!;
    expect(await gateway.getHsm(hsmResourceId(twin.fleet, "hsm-a1"))).toMatchObject({ isLuna: true });

    // Without the twin's CA the system store is used, and the twin's certificate is not trusted.
    const untrusting = armGatewayFor(twin.fleet, {
      endpoint: twin.arm!.endpoint,
      retryOptions: { maxRetries: 0 },
    })!;
    await expect(untrusting.getHsm(hsmResourceId(twin.fleet, "hsm-a1"))).rejects.toThrow(/certificate/i);

    // A production fleet (twin: false) never takes a custom ARM CA; a twin fleet never talks to a non-loopback ARM.
    const production = { ...twin.fleet, twin: false };
    expect(() => armGatewayFor(production, fromFlags)).toThrow(/twin fleets only/);
    expect(() => armGatewayFor(twin.fleet, { endpoint: "https://management.azure.com" })).toThrow(/loopback/);
  });
});

describe("lunafleet sim state", () => {
  it("sim.json records the ARM twin; the banner prints the daemon flags; stopping removes the CA file", () => {
    const stateDir = join(dataDir, "sim-json");
    const { arm } = publishArmTwin(stateDir, demo.twin.arm!);
    writeSimState(stateDir, {
      pid: process.pid,
      url: "http://127.0.0.1:1",
      token: "t",
      fleetFile: "config/demo.yaml",
      startedAt: new Date().toISOString(),
      arm,
    });
    expect(readSimState(stateDir).arm).toEqual(arm);
    const banner = describeArmTwin(arm, "config/demo.yaml").join("\n");
    expect(banner).toContain(`--azure-endpoint ${demo.twin.arm!.endpoint}`);
    expect(banner).toMatch(/--azure-ca \S*twin-arm-ca\.pem/);
    expect(banner).toContain("LUNAFLEET_AZURE_CA_FILE");
    removeSimState(stateDir);
    expect(existsSync(arm.caFile)).toBe(false);
    expect(existsSync(join(stateDir, "sim.json"))).toBe(false);
  });
});
