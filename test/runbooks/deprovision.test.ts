// Deprovisioning end to end over the twin (appliances over SSH + the ARM twin over HTTPS, rebased), real Redis:
// the happy path in the only safe order, and every failure stopping before the next destructive step.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Fleet } from "../../src/config/schema.ts";
import { approvalState, reject } from "../../src/coord/approvals.ts";
import { RedisCheckpointStore } from "../../src/engine/checkpoints.ts";
import { EvidenceLog } from "../../src/evidence/index.ts";
import { startTwin, type Twin } from "../../src/sim/twin.ts";
import { passDeadline } from "../helpers/approvals.ts";
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
let seq = 0;
const jobId = (what: string) => `deprov-${what}-${process.pid}-${++seq}`;
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

const arm = () => twin.arm!;
const hsmLogins = (device: string) =>
  twin.appliances.get(device)!.state.commandLog.filter((c) => /^hsm\s+login\b/i.test(c.command));
const armCalls = (method: string, path: string) =>
  arm().requestLog.filter((e) => e.method === method && e.path.toLowerCase() === path.toLowerCase());
const groupPath = (device: string) => hsmResourceId(fleet, device).replace(/\/providers\/.*$/, "");

async function records(id: string) {
  return (await EvidenceLog.open(r(), redis.dataDir, id)).records();
}

describe("deprovision over the twin", () => {
  it("happy path: approvals, zeroize, HSM DELETE after zeroization, 404, then the group DELETE", async () => {
    const device = "hsm-c1"; // the demo's spare: alone in rg-hsm-c, in no HA group
    const id = jobId("happy");
    const approvals = approveWhenAsked(r(), id, [
      { principal: "alice", confirmation: "700301" },
      { principal: "bob", confirmation: "700301" },
    ]);
    const result = await runDeprovision(conn, fleet, r(), redis.dataDir, {
      jobId: id,
      params: { target: device, backupsConfirmed: true, deleteResourceGroup: true, approvalPollMs: 20 },
    });
    await approvals;
    expect(result.error).toBeUndefined();
    expect(result.status).toBe("succeeded");
    expect(result.steps.map((s) => [s.id, s.status])).toEqual([
      ["preflight", "done"],
      ["sanctioned-zeroize", "done"],
      ["verify-zeroized", "done"],
      ["delete-hsm-resource", "done"],
      ["verify-hsm-gone", "done"],
      ["delete-resource-group", "done"],
    ]);

    // Final state: zeroized appliance, HSM resource really deleted (not orphaned), group gone.
    const appliance = twin.appliances.get(device)!.state;
    expect(appliance.zeroized).toBe(true);
    const hsm = arm().hsmState(hsmResourceId(fleet, device));
    expect(hsm).toMatchObject({ exists: false, deleted: true, orphaned: false, billed: false });
    expect(hsm.resourceGroupExists).toBe(false);
    expect(await conn.azure.getHsm(hsmResourceId(fleet, "hsm-b1"))).not.toBeNull(); // the neighbours untouched

    // Exactly one zeroize sequence (three failing SO logins) and one DELETE of each resource.
    expect(hsmLogins(device)).toHaveLength(3);
    const hsmDeletes = armCalls("DELETE", hsmResourceId(fleet, device));
    const groupDeletes = armCalls("DELETE", groupPath(device));
    expect(hsmDeletes).toHaveLength(1);
    expect(groupDeletes).toHaveLength(1);

    // Order: the HSM DELETE after the device zeroized; the group DELETE after the HSM answered 404.
    const zeroizedAt = hsmLogins(device).at(-1)!.at;
    expect(Date.parse(hsmDeletes[0]!.at)).toBeGreaterThanOrEqual(zeroizedAt);
    const log = arm().requestLog;
    const first404 = log.findIndex(
      (e) =>
        e.method === "GET" &&
        e.status === 404 &&
        e.path.toLowerCase() === hsmResourceId(fleet, device).toLowerCase(),
    );
    expect(first404).toBeGreaterThan(log.indexOf(hsmDeletes[0]!));
    expect(log.indexOf(groupDeletes[0]!)).toBeGreaterThan(first404);

    // The job's record: approvals, the guard's zeroize, ARM calls; chain intact, no password anywhere.
    const recs = await records(id);
    const text = JSON.stringify(recs);
    expect(text).not.toContain("HsmSo-C1-secret");
    const guardEvents = recs
      .filter((x) => x.kind === "guard")
      .map((x) => (x.data as { event: string }).event);
    expect(guardEvents).toContain("zeroize-intent");
    expect(guardEvents).toContain("zeroize-verified");
    expect(recs.some((x) => x.kind === "azure")).toBe(true);
    const approvalNotes = recs
      .filter((x) => x.kind === "note")
      .map((x) => (x.data as { data?: { approvals?: string } }).data?.approvals)
      .filter(Boolean);
    expect(approvalNotes).toContain("awaiting-approval");
    expect(approvalNotes.at(-1)).toBe("approved");
    expect((await (await EvidenceLog.open(r(), redis.dataDir, id)).verify()).ok).toBe(true);
  });

  it("an HA membership found in preflight stops the job before approvals are even asked", async () => {
    const device = "hsm-a2"; // still a member of ha-payments on client-a
    const id = jobId("ha");
    const result = await runDeprovision(conn, fleet, r(), redis.dataDir, {
      jobId: id,
      params: { target: device, backupsConfirmed: true },
    });
    expect(result.status).toBe("failed");
    expect(result.error).toMatchObject({ type: "DeprovisionRefused", retryable: false });
    expect(result.error?.message).toMatch(/client-a: HA group 'ha-payments' member 1700102000001/);
    expect(result.steps.slice(1).every((s) => s.status === "pending")).toBe(true);
    expect(await approvalState(r(), id)).toBeNull();
    expect(twin.appliances.get(device)!.state.zeroized).toBe(false);
    expect(hsmLogins(device)).toHaveLength(0);
    expect(armCalls("DELETE", hsmResourceId(fleet, device))).toHaveLength(0);

    // A partition the fleet file does not declare is still found: the appliance's own listing is used too.
    const undeclared = {
      ...fleet,
      devices: fleet.devices.map((d) => (d.name === device ? { ...d, partitions: [] } : d)),
    };
    const again = await runDeprovision(conn, undeclared, r(), redis.dataDir, {
      jobId: jobId("ha-undeclared"),
      params: { target: device, backupsConfirmed: true },
    });
    expect(again.error?.type).toBe("DeprovisionRefused");
    expect(again.error?.message).toMatch(/HA group 'ha-payments' member 1700102000001/);
    expect(hsmLogins(device)).toHaveLength(0);
  });

  it("no backups confirmation and no (or a too short) waiver: refused before approvals", async () => {
    const device = "hsm-a3";
    removeFromHaGroups(twin, device);
    const none = await runDeprovision(conn, fleet, r(), redis.dataDir, {
      jobId: jobId("nobackup"),
      params: { target: device },
    });
    expect(none.error?.type).toBe("DeprovisionRefused");
    expect(none.error?.message).toMatch(/backups are neither confirmed/);
    const short = await runDeprovision(conn, fleet, r(), redis.dataDir, {
      jobId: jobId("shortwaiver"),
      params: { target: device, waiver: "too short" },
    });
    expect(short.error?.type).toBe("ParamsInvalid");
    expect(twin.appliances.get(device)!.state.zeroized).toBe(false);
  });

  it("a duplicate principal and a wrong serial do not count: approvals expire, nothing is zeroized", async () => {
    const device = "hsm-a3";
    removeFromHaGroups(twin, device);
    const id = jobId("dup");
    const approvals = approveWhenAsked(r(), id, [
      { principal: "alice", confirmation: "700103" },
      { principal: "alice", confirmation: "700103" },
      { principal: "bob", confirmation: "700101" },
    ]);
    const running = runDeprovision(conn, fleet, r(), redis.dataDir, {
      jobId: id,
      params: {
        target: device,
        waiver: "lab device, test keys only, nothing to back up",
        approvalPollMs: 20,
      },
    });
    // Every decision is in (none counted twice, the wrong serial refused); then the deadline passes.
    await approvals;
    await passDeadline(r(), id);
    const result = await running;
    expect(result.status).toBe("failed");
    expect(result.error).toMatchObject({ type: "ApprovalNotGranted", retryable: false });
    expect(result.error?.message).toMatch(/approvals expired .* with 1\/2 granted/);
    const state = await approvalState(r(), id);
    expect(state?.refusals.map((x) => [x.principal, x.reason])).toEqual([
      ["alice", "duplicate-principal"],
      ["bob", "wrong-confirmation"],
    ]);
    expect(result.steps.slice(1).every((s) => s.status === "pending")).toBe(true);
    expect(twin.appliances.get(device)!.state.zeroized).toBe(false);
    expect(hsmLogins(device)).toHaveLength(0);
    // The waiver is on the record.
    expect(JSON.stringify(await records(id))).toContain("lab device, test keys only");
  });

  it("approvals that expire between preflight and the zeroize (a job resumed late): nothing is sent", async () => {
    const device = "hsm-a3";
    removeFromHaGroups(twin, device);
    const id = jobId("late");
    const approvals = approveWhenAsked(r(), id, [
      { principal: "alice", confirmation: "700103" },
      { principal: "bob", confirmation: "700103" },
    ]);
    const first = await runDeprovision(conn, fleet, r(), redis.dataDir, {
      jobId: id,
      params: { target: device, backupsConfirmed: true, approvalPollMs: 10 },
      checkpoints: crashingCheckpoints(new RedisCheckpointStore(r()), {
        step: "preflight",
        when: "after-commit",
      }),
    });
    await approvals;
    expect(first.error?.type).toBe("SimulatedCrash");
    expect((await approvalState(r(), id))?.status).toBe("approved");
    // The job is resumed late: its approvals' deadline has passed meanwhile.
    await passDeadline(r(), id);
    const resumed = await runDeprovision(conn, fleet, r(), redis.dataDir, {
      jobId: id,
      params: { target: device, backupsConfirmed: true, approvalPollMs: 10 },
      attempt: 2,
    });
    expect(resumed.error).toMatchObject({ type: "ApprovalNotGranted", retryable: false });
    expect(resumed.error?.message).toMatch(
      /approvals are expired at the moment of the zeroize; nothing was sent/,
    );
    expect(twin.appliances.get(device)!.state.zeroized).toBe(false);
    expect(hsmLogins(device)).toHaveLength(0);
  });

  it("a rejection stops the waiting job; a cancelled job stops waiting", async () => {
    const device = "hsm-a3";
    removeFromHaGroups(twin, device);
    const id = jobId("reject");
    const decided = (async () => {
      while (!(await approvalState(r(), id))) await new Promise((res) => setTimeout(res, 20));
      await reject(r(), id, { principal: "carol", reason: "keys not yet migrated" });
    })();
    const rejected = await runDeprovision(conn, fleet, r(), redis.dataDir, {
      jobId: id,
      params: { target: device, backupsConfirmed: true, approvalPollMs: 20 },
    });
    await decided;
    expect(rejected.error).toMatchObject({ type: "ApprovalNotGranted" });
    expect(rejected.error?.message).toMatch(/rejected by carol: keys not yet migrated/);

    const cancel = new AbortController();
    const id2 = jobId("cancel");
    const waiting = runDeprovision(conn, fleet, r(), redis.dataDir, {
      jobId: id2,
      params: { target: device, backupsConfirmed: true, approvalPollMs: 20 },
      signal: cancel.signal,
    });
    while ((await approvalState(r(), id2))?.status !== "awaiting-approval")
      await new Promise((res) => setTimeout(res, 20));
    cancel.abort();
    const cancelled = await waiting;
    expect(cancelled.status).toBe("cancelled");
    expect(twin.appliances.get(device)!.state.zeroized).toBe(false);
    expect(hsmLogins(device)).toHaveLength(0);
  });

  it("a client host with no HA group at all ('HA Group list is empty.') passes preflight; the job completes", async () => {
    // The operator deleted client-b's only group (ha-tokens) before deprovisioning hsm-b1: its lunacm now answers
    // `hagroup listgroups` with the no-groups statement, which must read as "no groups", not as a parse failure.
    const device = "hsm-b1";
    const clientB = twin.clientHosts.get("client-b")!;
    clientB.host.haGroups.splice(0);
    const listingsBefore = clientB.host.commandLog.filter((c) =>
      /hagroup\s+listgroups/i.test(c.command),
    ).length;
    const id = jobId("nogroups");
    const approvals = approveWhenAsked(r(), id, [
      { principal: "alice", confirmation: "700201" },
      { principal: "bob", confirmation: "700201" },
    ]);
    const result = await runDeprovision(conn, fleet, r(), redis.dataDir, {
      jobId: id,
      params: { target: device, backupsConfirmed: true, approvalPollMs: 20 },
    });
    await approvals;
    expect(result.error).toBeUndefined();
    expect(result.status).toBe("succeeded");
    const preflight = result.steps.find((s) => s.id === "preflight");
    expect(preflight?.status).toBe("done");
    expect(preflight?.result).toMatchObject({ clientHostsChecked: ["client-a", "client-b"] });
    // Listed twice on client-b (before the approvals and again after them), both read as "no groups".
    const listings = clientB.host.commandLog.filter((c) => /hagroup\s+listgroups/i.test(c.command));
    expect(listings.length - listingsBefore).toBe(2);
    expect(twin.appliances.get(device)!.state.zeroized).toBe(true);
    expect(arm().hsmState(hsmResourceId(fleet, device))).toMatchObject({ exists: false, deleted: true });
    expect(arm().hsmState(hsmResourceId(fleet, "hsm-b2")).exists).toBe(true); // same resource group, untouched
  });
});

describe("lunafleet plan deprovision <device>", () => {
  it("shows the whole order with exact commands and ARM operations, from the fleet file alone", async () => {
    const { planJob, renderPlan } = await import("../../src/engine/plan.ts");
    const { getRunbook } = await import("../../runbooks/index.ts");
    const demo = demoFleet();
    const plan = planJob(getRunbook("deprovision"), { target: "hsm-c1", deleteResourceGroup: true }, demo);
    expect(plan.targets).toEqual({ devices: ["hsm-c1"], clientHosts: ["client-a", "client-b"] });
    expect(plan.steps.map((s) => [s.id, s.kind])).toEqual([
      ["preflight", "read"],
      ["sanctioned-zeroize", "change"],
      ["verify-zeroized", "read"],
      ["delete-hsm-resource", "change"],
      ["verify-hsm-gone", "read"],
      ["delete-resource-group", "change"],
    ]);
    const id = hsmResourceId(demo, "hsm-c1");
    const text = renderPlan(plan);
    expect(text).toContain(`arm ${id}> DELETE, then poll Azure-AsyncOperation until Succeeded`);
    expect(text).toContain("lunacm client-a> hagroup listgroups");
    expect(text).toContain("--confirm 700301");
    // Preflight lists the group's contents before anyone is asked to approve.
    const listing = text.indexOf("rg-hsm-c> list everything in rg-hsm-c (it must hold nothing but hsm-c1");
    expect(listing).toBeGreaterThan(0);
    expect(listing).toBeLessThan(text.indexOf("approval operators> wait for 2 approvals"));
    expect(text).toContain(
      "arm /subscriptions/00000000-0000-4000-8000-00000000d3m0/resourceGroups/rg-hsm-c> DELETE",
    );
    // Order in the text: zeroize before the HSM DELETE, which comes before the group DELETE.
    const zeroize = text.indexOf("hsm login");
    const hsmDelete = text.indexOf(`arm ${id}> DELETE`);
    const groupDelete = text.indexOf("rg-hsm-c> DELETE");
    expect(zeroize).toBeGreaterThan(0);
    expect(hsmDelete).toBeGreaterThan(zeroize);
    expect(groupDelete).toBeGreaterThan(hsmDelete);
    // Not asked: no group commands at all.
    const kept = planJob(getRunbook("deprovision"), { target: "hsm-b3" }, demo);
    expect(kept.steps.at(-1)?.commands).toEqual([]);
    // A group the fleet file knows holds other devices: refused at plan time, naming them.
    expect(() =>
      planJob(getRunbook("deprovision"), { target: "hsm-b3", deleteResourceGroup: true }, demo),
    ).toThrow(/resource group rg-hsm-b also holds hsm-b1, hsm-b2 \(fleet file\)/);
    // A device without an Azure resource, or an HA group as target, is refused at plan time.
    expect(() => planJob(getRunbook("deprovision"), { target: "ha-tokens" }, demo)).toThrow(/unknown target/);
  });
});
