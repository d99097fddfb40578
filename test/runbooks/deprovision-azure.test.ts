// Azure-side failures of a deprovision job over the twin: each stops the job before the next destructive step with a
// clear error. Plus the rule that nothing deletes a resource group before its HSM is gone (code and gateway).
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HsmDeleteFailedError, ResourceGroupDeleteRefusedError } from "../../src/azure/errors.ts";
import type { Fleet } from "../../src/config/schema.ts";
import { approvalState } from "../../src/coord/approvals.ts";
import { buildReport } from "../../src/daemon/report.ts";
import { RedisCheckpointStore } from "../../src/engine/checkpoints.ts";
import { startTwin, type Twin } from "../../src/sim/twin.ts";
import { rawRequest } from "../helpers/azure.ts";
import {
  approveWhenAsked,
  type Connections,
  connect,
  crashingCheckpoints,
  hsmResourceId,
  removeFromHaGroups,
  runDeprovision,
} from "../helpers/deprovision.ts";
import { demoFleet } from "../helpers/engine.ts";
import { withRedis } from "../helpers/redis.ts";

const redis = await withRedis();
let twin: Twin;
let conn: Connections;
let fleet: Fleet;
const r = () => redis.client();

beforeAll(async () => {
  twin = await startTwin(demoFleet(), { rebase: true });
  fleet = twin.fleet;
  conn = connect(fleet, twin.arm!);
});

afterAll(async () => {
  await conn?.close();
  await twin?.stop();
});

const serialOf = (device: string) => fleet.devices.find((d) => d.name === device)!.serial;
const groupOf = (device: string) => hsmResourceId(fleet, device).replace(/\/providers\/.*$/, "");
const deletesOf = (path: string) =>
  twin.arm!.requestLog.filter((e) => e.method === "DELETE" && e.path.toLowerCase() === path.toLowerCase());
const logins = (device: string) =>
  twin.appliances.get(device)!.state.commandLog.filter((c) => /^hsm\s+login\b/i.test(c.command));

async function deprovision(
  device: string,
  jobId: string,
  extra: Record<string, unknown> = {},
  opts: Partial<Parameters<typeof runDeprovision>[4]> = {},
) {
  const approvals =
    (opts.attempt ?? 1) === 1
      ? approveWhenAsked(r(), jobId, [
          { principal: "alice", confirmation: serialOf(device) },
          { principal: "bob", confirmation: serialOf(device) },
        ])
      : Promise.resolve();
  const result = await runDeprovision(conn, fleet, r(), redis.dataDir, {
    jobId,
    params: { target: device, backupsConfirmed: true, approvalPollMs: 20, ...extra },
    ...opts,
  });
  await approvals;
  return result;
}

describe("deprovision: Azure failures stop the job", () => {
  it("the ARM twin is linked to the appliances: deleting a non-zeroized HSM is refused (HsmNotZeroized)", async () => {
    const id = hsmResourceId(fleet, "hsm-a3");
    const err = await conn.azure.deleteHsm(id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HsmDeleteFailedError);
    expect((err as HsmDeleteFailedError).failure.code).toBe("HsmNotZeroized");
    expect(twin.arm!.hsmState(id)).toMatchObject({ exists: true, billed: true });
  });

  it("ARM refusing the delete as not zeroized: AzureRefusedDelete, never retried, HSM and group untouched", async () => {
    const device = "hsm-b2";
    removeFromHaGroups(twin, device);
    twin.arm!.setFault({
      kind: "fail-next-delete",
      on: "hsm",
      shape: "sync",
      statusCode: 409,
      code: "HsmNotZeroized",
    });
    const result = await deprovision(device, `az-refuse-${process.pid}`);
    expect(result.status).toBe("failed");
    expect(result.error).toMatchObject({ type: "AzureRefusedDelete", retryable: false });
    expect(result.error?.message).toMatch(/Azure refused to delete .*hsm-b2: the device is not zeroized/);
    expect(result.steps.map((s) => s.status)).toEqual([
      "done",
      "done",
      "done",
      "failed",
      "pending",
      "pending",
    ]);
    expect(twin.arm!.hsmState(hsmResourceId(fleet, device))).toMatchObject({ exists: true, billed: true });
    expect(deletesOf(groupOf(device))).toHaveLength(0);
  });

  it("a failed long-running delete stops before verify/group; the resumed job finishes (group kept: not asked)", async () => {
    const device = "hsm-b1";
    removeFromHaGroups(twin, device);
    const jobId = `az-lro-${process.pid}`;
    twin.arm!.setFault({ kind: "fail-next-delete", on: "hsm", shape: "async", code: "InternalServerError" });
    const first = await deprovision(device, jobId);
    expect(first.status).toBe("failed");
    expect(first.error).toMatchObject({ type: "HsmDeleteFailedError", retryable: true });
    expect(first.error?.message).toMatch(/the long-running operation failed: InternalServerError/);
    expect(first.steps.map((s) => s.status)).toEqual([
      "done",
      "done",
      "done",
      "failed",
      "pending",
      "pending",
    ]);
    expect(twin.arm!.hsmState(hsmResourceId(fleet, device))).toMatchObject({ exists: true, billed: true });

    const resumed = await deprovision(device, jobId, {}, { attempt: 2 });
    expect(resumed.error).toBeUndefined();
    expect(resumed.steps.map((s) => s.status)).toEqual([
      "resumed",
      "resumed",
      "resumed",
      "done",
      "done",
      "done",
    ]);
    expect(resumed.steps.at(-1)?.result).toMatchObject({ skipped: "not asked", deleted: false });
    expect(twin.arm!.hsmState(hsmResourceId(fleet, device))).toMatchObject({
      deleted: true,
      resourceGroupExists: true,
    });
    expect(deletesOf(hsmResourceId(fleet, device))).toHaveLength(2); // the failed one, then the one that worked
    expect(deletesOf(groupOf(device))).toHaveLength(0);
    expect(logins(device)).toHaveLength(3); // the zeroize was not repeated
  });

  it("deleteResourceGroup on a group the fleet file says holds other devices: refused before anything, naming them", async () => {
    const device = "hsm-a1"; // rg-hsm-a also holds hsm-a2 and hsm-a3
    const jobId = `az-rg-fleet-${process.pid}`;
    const result = await runDeprovision(conn, fleet, r(), redis.dataDir, {
      jobId,
      params: { target: device, backupsConfirmed: true, deleteResourceGroup: true },
    });
    expect(result.status).toBe("failed");
    expect(result.error).toMatchObject({ type: "DeprovisionRefused", retryable: false });
    expect(result.error?.message).toMatch(/resource group rg-hsm-a also holds hsm-a2, hsm-a3 \(fleet file\)/);
    expect(result.steps).toEqual([]);
    expect(await approvalState(r(), jobId)).toBeNull();
    expect(logins(device)).toHaveLength(0);
    expect(twin.appliances.get(device)!.state.zeroized).toBe(false);
  });

  it("deleteResourceGroup on a group that holds something else in Azure: refused at preflight, before any approval", async () => {
    const device = "hsm-c1"; // alone in rg-hsm-c as far as the fleet file knows
    const vnet = { resourceGroup: "rg-hsm-c", type: "Microsoft.Network/virtualNetworks", name: "vnet-c" };
    twin.arm!.addResource(vnet);
    const jobId = `az-rg-arm-${process.pid}`;
    const before = twin.arm!.requestLog.length;
    const result = await runDeprovision(conn, fleet, r(), redis.dataDir, {
      jobId,
      params: { target: device, backupsConfirmed: true, deleteResourceGroup: true },
    });
    expect(result.status).toBe("failed");
    expect(result.error).toMatchObject({ type: "DeprovisionRefused", retryable: false });
    expect(result.error?.message).toMatch(
      /resource group rg-hsm-c would not be empty after hsm-c1 is gone: it also holds .*virtualNetworks\/vnet-c/,
    );
    expect(result.steps.map((s) => s.status)).toEqual([
      "failed",
      "pending",
      "pending",
      "pending",
      "pending",
      "pending",
    ]);
    expect(await approvalState(r(), jobId)).toBeNull();
    expect(logins(device)).toHaveLength(0);
    expect(twin.arm!.requestLog.slice(before).filter((e) => e.method === "DELETE")).toEqual([]);
  });

  it("a device no longer zeroized when the delete step resumes: no DELETE is sent", async () => {
    const device = "hsm-a2";
    removeFromHaGroups(twin, device);
    const jobId = `az-reinit-${process.pid}`;
    const first = await deprovision(
      device,
      jobId,
      {},
      {
        checkpoints: crashingCheckpoints(new RedisCheckpointStore(r()), {
          step: "verify-zeroized",
          when: "after-commit",
        }),
      },
    );
    expect(first.error?.type).toBe("SimulatedCrash");
    // Someone re-initialized the appliance while the job was down.
    twin.appliances.get(device)!.state.zeroized = false;
    const resumed = await deprovision(device, jobId, {}, { attempt: 2 });
    expect(resumed.error?.type).toBe("DeprovisionRefused");
    expect(resumed.error?.message).toMatch(/no longer reports itself zeroized/);
    expect(deletesOf(hsmResourceId(fleet, device))).toHaveLength(0);
    expect(twin.arm!.hsmState(hsmResourceId(fleet, device))).toMatchObject({ exists: true });
  });

  it("the gateway refuses a group that still holds an HSM, sending no DELETE", async () => {
    const before = twin.arm!.requestLog.length;
    const err = await conn.azure.deleteResourceGroup("rg-hsm-c").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ResourceGroupDeleteRefusedError);
    expect((err as ResourceGroupDeleteRefusedError).hsmIds).toEqual([hsmResourceId(fleet, "hsm-c1")]);
    expect(twin.arm!.requestLog.slice(before).filter((e) => e.method === "DELETE")).toEqual([]);
  });

  it("an HSM whose resource group was deleted first is marked orphaned (the report says so); no DELETE is sent", async () => {
    // Last in this block: it deletes rg-hsm-c, which the gateway test above needs holding hsm-c1.
    const device = "hsm-c1"; // alone in rg-hsm-c
    const id = hsmResourceId(fleet, device);
    const jobId = `az-orphan-${process.pid}`;
    const first = await deprovision(
      device,
      jobId,
      {},
      {
        checkpoints: crashingCheckpoints(new RedisCheckpointStore(r()), {
          step: "verify-zeroized",
          when: "after-commit",
        }),
      },
    );
    expect(first.error?.type).toBe("SimulatedCrash");
    // While the job was down, someone deleted the resource group at the ARM level (what the guide warns against).
    const del = await rawRequest(twin.arm!, "DELETE", `${groupOf(device)}?api-version=2025-04-01`);
    expect(del.status).toBe(202);
    let poll = del;
    for (let i = 0; i < 10 && poll.status !== 204; i++)
      poll = await rawRequest(twin.arm!, "GET", String(poll.headers.location ?? del.headers.location));
    expect(poll.status).toBe(204);
    expect(twin.arm!.hsmState(id)).toMatchObject({ orphaned: true, billed: true });

    const resumed = await deprovision(device, jobId, {}, { attempt: 2 });
    expect(resumed.status).toBe("failed");
    expect(resumed.error?.message).toMatch(/orphaned/);
    expect(deletesOf(id)).toHaveLength(0);
    const report = await buildReport(r(), fleet);
    const row = report.devices.find((d) => d.device === device)!;
    expect(row).toMatchObject({ state: "orphaned", retired: false });
    expect(row.facts.lifecycle).toMatchObject({ status: "problem", jobId, value: "orphaned" });
    expect(report.problems).toContainEqual(expect.stringMatching(/^hsm-c1: .*orphaned/));
  });
});

describe("no code path deletes a resource group before its HSM is gone", () => {
  const root = join(import.meta.dirname, "../..");
  const sources = (dir: string): string[] =>
    readdirSync(dir).flatMap((f) => {
      const p = join(dir, f);
      return statSync(p).isDirectory() ? sources(p) : p.endsWith(".ts") ? [p] : [];
    });

  it("deleteResourceGroup( is called only by the last step of deprovision and mhsm-retire (besides their gateways and recorded ctx wrappers)", () => {
    const callers = [...sources(join(root, "src")), ...sources(join(root, "runbooks"))]
      .filter((f) => /\bdeleteResourceGroup\s*\(/.test(readFileSync(f, "utf8")))
      .map((f) => relative(root, f))
      .sort();
    expect(callers).toEqual([
      "runbooks/deprovision.ts",
      "runbooks/mhsm-retire.ts",
      "src/azure/dedicated-hsm.ts",
      "src/azure/managed-hsm.ts",
      "src/engine/key-vault-ports.ts",
      "src/engine/recorded-azure.ts",
    ]);
    // mhsm-retire: one call, in its last step, only after the purge is proven and when asked.
    const retire = readFileSync(join(root, "runbooks/mhsm-retire.ts"), "utf8");
    const retireCalls = [...retire.matchAll(/\.deleteResourceGroup\s*\(/g)];
    expect(retireCalls).toHaveLength(1);
    const retireStep = retire.indexOf('id: "delete-resource-group"');
    expect(retireStep).toBeGreaterThan(retire.indexOf('id: "verify-purged"'));
    expect(retireCalls[0]!.index!).toBeGreaterThan(retireStep);
    const retireBody = retire.slice(retireStep, retireCalls[0]!.index!);
    expect(retireBody).toMatch(/requireCheckpoint\("verify-purged"\)/);
    expect(retireBody).toMatch(/if \(!ctx\.params\.deleteResourceGroup\)/);

    const text = readFileSync(join(root, "runbooks/deprovision.ts"), "utf8");
    const calls = [...text.matchAll(/\.deleteResourceGroup\s*\(/g)];
    expect(calls).toHaveLength(1);
    const lastStep = text.indexOf('id: "delete-resource-group"');
    expect(lastStep).toBeGreaterThan(text.indexOf('id: "verify-hsm-gone"'));
    const at = calls[0]!.index!;
    expect(at).toBeGreaterThan(lastStep);
    // Within that step, the HSM's 404 and the group's emptiness are re-read right before the call.
    const step = text.slice(lastStep, at);
    expect(step).toMatch(/requireCheckpoint\("verify-hsm-gone"\)/);
    expect(step).toMatch(/\.verifyHsmGone\(/);
    expect(step).toMatch(/\.resourceGroupHoldsDedicatedHsms\(/);
    expect(step).toMatch(/if \(!ctx\.params\.deleteResourceGroup\)/);
  });

  it("the runbook's step order is the only safe order", async () => {
    const { deprovision } = await import("../../runbooks/deprovision.ts");
    expect(deprovision.steps.map((s) => s.id)).toEqual([
      "preflight",
      "sanctioned-zeroize",
      "verify-zeroized",
      "delete-hsm-resource",
      "verify-hsm-gone",
      "delete-resource-group",
    ]);
  });
});
