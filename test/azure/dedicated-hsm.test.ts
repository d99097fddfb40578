// The Azure side of deprovisioning, end to end over real HTTPS: the unchanged Azure SDK clients (through
// DedicatedHsmGateway) against the ARM twin, whose HSMs are linked to a zeroized flag the test flips.
import { afterEach, describe, expect, it } from "vitest";
import {
  AzureOperationError,
  HsmDeleteFailedError,
  HsmNotGoneError,
  InvalidResourceIdError,
  ResourceGroupDeleteRefusedError,
} from "../../src/azure/index.ts";
import type { ArmTwin } from "../../src/sim/arm/index.ts";
import {
  clientsFor,
  gatewayFor,
  LUNA_ID,
  PAYSHIELD_ID,
  RG,
  rawRequest,
  recordingCredential,
  SUB,
  startTestTwin,
} from "../helpers/azure.ts";

let twin: ArmTwin | undefined;
afterEach(async () => {
  await twin?.stop();
  twin = undefined;
});

const HSM_PATH = LUNA_ID;
const STATUS_PATH =
  /^\/subscriptions\/[^/]+\/providers\/Microsoft\.HardwareSecurityModules\/locations\/westeurope\/operationStatuses\//;

async function expectRejection<T extends Error>(
  p: Promise<unknown>,
  type: new (...a: never[]) => T,
): Promise<T> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(type);
  return e as T;
}

describe("reading Dedicated HSMs", () => {
  it("reads a Luna HSM as typed data, with the token scope from the settings", async () => {
    twin = await startTestTwin({ value: false });
    const credential = recordingCredential();
    const gw = gatewayFor(twin, { credential });
    const hsm = await gw.getHsm(LUNA_ID);
    expect(hsm).toEqual({
      id: LUNA_ID,
      name: "luna-weu-1",
      resourceGroup: RG,
      subscriptionId: SUB,
      location: "westeurope",
      sku: "SafeNet Luna Network HSM A790",
      isLuna: true,
      provisioningState: "Succeeded",
      statusMessage: "DedicatedHsm device is functional.",
      privateIp: "10.0.2.4",
      nicId: `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Network/networkInterfaces/luna-weu-1_HSMnic`,
      subnetId: `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Network/virtualNetworks/${RG}-vnet/subnets/hsmsubnet`,
    });
    expect(credential.scopes).toContainEqual(["https://management.azure.com/.default"]);
    expect(credential.scopes.every((s) => s[0] === "https://management.azure.com/.default")).toBe(true);
    expect(twin.requestLog).toEqual([
      expect.objectContaining({
        method: "GET",
        path: HSM_PATH,
        query: "?api-version=2021-11-30",
        status: 200,
      }),
    ]);
  });

  it("reads a payShield HSM of the same resource type as NOT Luna", async () => {
    twin = await startTestTwin({ value: false });
    const hsm = await gatewayFor(twin).getHsm(PAYSHIELD_ID);
    expect(hsm?.sku).toBe("payShield10K_LMK1_CPS60");
    expect(hsm?.isLuna).toBe(false);
  });

  it("answers null for an HSM that does not exist, and lists the group's HSMs", async () => {
    twin = await startTestTwin({ value: false });
    const gw = gatewayFor(twin);
    expect(await gw.getHsm(LUNA_ID.replace("luna-weu-1", "no-such-hsm"))).toBeNull();
    const listed = await gw.listDedicatedHsms(RG);
    expect(listed.map((h) => [h.name, h.isLuna])).toEqual([["luna-weu-1", true]]);
    expect(await gw.listDedicatedHsms("rg-empty")).toEqual([]);
  });

  it("refuses a malformed id or one from another subscription without sending anything", async () => {
    twin = await startTestTwin({ value: false });
    const gw = gatewayFor(twin);
    await expectRejection(gw.getHsm("/subscriptions/x/resourceGroups/y"), InvalidResourceIdError);
    await expectRejection(
      gw.deleteHsm(LUNA_ID.replace(SUB, "99999999-0000-0000-0000-000000000000")),
      InvalidResourceIdError,
    );
    expect(twin.requestLog).toEqual([]);
  });
});

describe("deleting a Dedicated HSM", () => {
  it("is refused by ARM while the appliance is not zeroized (async shape): clear error, HSM still there", async () => {
    twin = await startTestTwin({ value: false });
    const gw = gatewayFor(twin);
    const e = await expectRejection(gw.deleteHsm(LUNA_ID), HsmDeleteFailedError);
    expect(e.failure.kind).toBe("async-operation");
    expect(e.failure.code).toBe("HsmNotZeroized");
    expect(e.message).toContain(LUNA_ID);
    expect(e.message).toContain("delete-hsm");
    expect(e.message).toContain("zeroized state");
    expect(e.afterFailure).toMatchObject({ exists: true, provisioningState: "Succeeded" });
    // The re-read's request id is the one the twin logged for that GET.
    const lastGet = twin.requestLog.at(-1)!;
    expect(lastGet).toMatchObject({ method: "GET", path: HSM_PATH, status: 200 });
    expect(e.afterFailure.requestId).toBe(lastGet.requestId);
    expect(e.requestIds[0]).toBe(twin.requestLog[0]!.requestId);
    expect(twin.hsmState(LUNA_ID)).toMatchObject({
      exists: true,
      deleted: false,
      orphaned: false,
      billed: true,
    });
    expect((await gw.getHsm(LUNA_ID))?.provisioningState).toBe("Succeeded");
    await expectRejection(gw.verifyHsmGone(LUNA_ID), HsmNotGoneError);
  });

  it("is refused in the synchronous shape too (409 on the DELETE itself)", async () => {
    twin = await startTestTwin({ value: false }, { notZeroizedRefusal: "sync" });
    const gw = gatewayFor(twin);
    const e = await expectRejection(gw.deleteHsm(LUNA_ID), HsmDeleteFailedError);
    expect(e.failure).toMatchObject({ kind: "http", statusCode: 409, code: "HsmNotZeroized" });
    expect(e.failure.requestId).toBe(twin.requestLog[0]!.requestId);
    expect(e.afterFailure.exists).toBe(true);
    expect(twin.requestLog.map((r) => `${r.method} ${r.status}`)).toEqual(["DELETE 409", "GET 200"]);
    expect(twin.hsmState(LUNA_ID).exists).toBe(true);
  });

  it("after zeroization: DELETE accepted, LRO polled to Succeeded, then only a 404 proves it gone", async () => {
    const zeroized = { value: false };
    twin = await startTestTwin(zeroized);
    const gw = gatewayFor(twin);
    zeroized.value = true; // what the sanctioned zeroize does to the appliance twin
    const result = await gw.deleteHsm(LUNA_ID);
    expect(twin.hsmState(LUNA_ID)).toMatchObject({ exists: false, deleted: true, billed: false });
    const proof = await gw.verifyHsmGone(LUNA_ID);
    expect(proof).toMatchObject({ resourceId: LUNA_ID, statusCode: 404, code: "ResourceNotFound" });

    const log = twin.requestLog;
    expect(log.map((r) => [r.method, r.status])).toEqual([
      ["DELETE", 202],
      ["GET", 200], // InProgress
      ["GET", 200], // InProgress
      ["GET", 200], // Succeeded
      ["GET", 404], // the proof
    ]);
    expect(log[0]!.path).toBe(HSM_PATH);
    for (const poll of log.slice(1, 4)) expect(poll.path).toMatch(STATUS_PATH);
    expect(log[4]!.path).toBe(HSM_PATH);
    expect(result.requestIds).toEqual(log.slice(0, 4).map((r) => r.requestId));
    expect(proof.requestId).toBe(log[4]!.requestId);
    expect(await gw.getHsm(LUNA_ID)).toBeNull();
  });

  it("polls at the configured interval, not the SDK's 2 s default", async () => {
    twin = await startTestTwin({ value: true }, { asyncPolls: 3 });
    await gatewayFor(twin, { pollIntervalMs: 120 }).deleteHsm(LUNA_ID);
    const times = twin.requestLog.map((r) => Date.parse(r.at));
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    // HSM v1 client: DELETE, a poll inside beginDelete, an immediate poll from pollUntilDone, then one poll per
    // interval until the operation ends (asyncPolls 3 = 3×InProgress, then Succeeded).
    expect(twin.requestLog).toHaveLength(5);
    // Each timed poll waited the configured 120 ms, not the SDK's 2 s: judged per interval (load stretches each gap
    // a little, never by 1.9 s), not on the whole run's wall time.
    for (const gap of [gaps[2]!, gaps[3]!]) {
      expect(gap).toBeGreaterThanOrEqual(100);
      expect(gap).toBeLessThan(2000);
    }
  });

  it("picks up a delete already in flight (a resumed job re-sends DELETE) and follows it to the end", async () => {
    twin = await startTestTwin({ value: true }, { asyncPolls: 3 });
    const first = await rawRequest(twin, "DELETE", `${LUNA_ID}?api-version=2021-11-30`);
    expect(first.status).toBe(202);
    const gw = gatewayFor(twin);
    await gw.deleteHsm(LUNA_ID);
    const second = twin.requestLog.filter((r) => r.method === "DELETE");
    expect(second).toHaveLength(2);
    await gw.verifyHsmGone(LUNA_ID);
    // A third DELETE of what is gone is a no-op success: a crash between delete and verify is safe to replay.
    await gw.deleteHsm(LUNA_ID);
    expect(twin.requestLog.at(-1)).toMatchObject({ method: "DELETE", status: 204 });
  });

  it("surfaces a Failed long-running operation with its code and message, and the HSM's state after", async () => {
    twin = await startTestTwin(
      { value: true },
      {
        failNextDelete: {
          shape: "async",
          code: "HsmReleaseFailed",
          message: "The stamp did not release the device.",
        },
      },
    );
    const gw = gatewayFor(twin);
    const e = await expectRejection(gw.deleteHsm(LUNA_ID), HsmDeleteFailedError);
    expect(e.failure).toMatchObject({
      kind: "async-operation",
      code: "HsmReleaseFailed",
      message: "The stamp did not release the device.",
    });
    expect(e.message).toContain("HsmReleaseFailed");
    expect(e.afterFailure).toMatchObject({
      exists: true,
      provisioningState: "Failed",
      statusMessage: "The stamp did not release the device.",
    });
    expect(e.message).toContain("provisioningState=Failed");
    await expectRejection(gw.verifyHsmGone(LUNA_ID), HsmNotGoneError);
    // The fault was one-shot: the next delete goes through.
    await gw.deleteHsm(LUNA_ID);
    await gw.verifyHsmGone(LUNA_ID);
  });

  it("surfaces a synchronous server error on the DELETE with its status and code", async () => {
    twin = await startTestTwin(
      { value: true },
      {
        failNextDelete: {
          shape: "sync",
          statusCode: 503,
          code: "ServiceUnavailable",
          message: "RP is down.",
        },
      },
    );
    const e = await expectRejection(gatewayFor(twin).deleteHsm(LUNA_ID), HsmDeleteFailedError);
    expect(e.failure).toMatchObject({ kind: "http", statusCode: 503, code: "ServiceUnavailable" });
    // maxRetries 0: exactly one DELETE, then the re-read
    expect(twin.requestLog.map((r) => `${r.method} ${r.status}`)).toEqual(["DELETE 503", "GET 200"]);
    expect(twin.hsmState(LUNA_ID).exists).toBe(true);
  });

  it("stops waiting when aborted, and says the delete may still be running", async () => {
    twin = await startTestTwin({ value: true }, { asyncPolls: 50 });
    twin.setFault({ kind: "slow-polls", delayMs: 40 });
    const gw = gatewayFor(twin);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 120);
    const e = await expectRejection(gw.deleteHsm(LUNA_ID, { signal: ac.signal }), AzureOperationError);
    expect(e.failure.kind).toBe("aborted");
    expect(e.message).toContain("may still be running");
    expect(twin.hsmState(LUNA_ID)).toMatchObject({ exists: true, provisioningState: "Deleting" });
  });

  it("rides through throttling when retries are on (Retry-After honoured) and reports it when they are off", async () => {
    twin = await startTestTwin({ value: true });
    twin.setFault({ kind: "throttle", requests: 2, retryAfterSeconds: 0 });
    expect((await gatewayFor(twin, { retries: true }).getHsm(LUNA_ID))?.isLuna).toBe(true);
    expect(twin.requestLog.map((r) => r.status)).toEqual([429, 429, 200]);

    twin.setFault({ kind: "throttle", requests: 1, retryAfterSeconds: 0 });
    const e = await expectRejection(gatewayFor(twin).getHsm(LUNA_ID), AzureOperationError);
    expect(e.failure).toMatchObject({ kind: "http", statusCode: 429, code: "TooManyRequests" });
    expect(e.operation).toBe("get-hsm");
  });
});

describe("deleting the resource group", () => {
  it("is refused while an HSM is in it, and no group DELETE is sent", async () => {
    twin = await startTestTwin({ value: false });
    const gw = gatewayFor(twin);
    expect(await gw.resourceGroupHoldsDedicatedHsms(RG)).toBe(true);
    const e = await expectRejection(gw.deleteResourceGroup(RG), ResourceGroupDeleteRefusedError);
    expect(e.hsmIds).toEqual([LUNA_ID]);
    expect(e.message).toContain("orphan");
    expect(twin.requestLog.some((r) => r.method === "DELETE")).toBe(false);
    // The guard asked both views: the typed list and the generic list filtered on the type.
    const paths = twin.requestLog.map((r) => `${r.method} ${r.path}${r.query}`);
    expect(paths).toContain(
      `GET /subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.HardwareSecurityModules/dedicatedHSMs?api-version=2021-11-30`,
    );
    expect(
      paths.some(
        (p) =>
          p
            .toLowerCase()
            .startsWith(`get /subscriptions/${SUB}/resourcegroups/${RG}/resources?`.toLowerCase()) &&
          decodeURIComponent(p).includes(
            "$filter=resourceType eq 'Microsoft.HardwareSecurityModules/dedicatedHSMs'",
          ),
      ),
    ).toBe(true);
    expect(twin.hsmState(LUNA_ID)).toMatchObject({
      exists: true,
      orphaned: false,
      resourceGroupExists: true,
    });
  });

  it("is still refused when the generic list hides the HSM type (the typed list is authoritative)", async () => {
    twin = await startTestTwin({ value: false });
    twin.setFault({ kind: "hide-hsms-from-generic-list" });
    const gw = gatewayFor(twin);
    expect(await gw.scanResourceGroupForDedicatedHsms(RG)).toEqual({ typed: [LUNA_ID], generic: [] });
    await expectRejection(gw.deleteResourceGroup(RG), ResourceGroupDeleteRefusedError);
    expect(twin.requestLog.some((r) => r.method === "DELETE")).toBe(false);
  });

  it("refuses a group holding other resources unless allowed, then deletes it (Location-mode LRO)", async () => {
    twin = await startTestTwin(
      { value: false },
      {
        otherResources: [
          { resourceGroup: "rg-empty", type: "Microsoft.Network/virtualNetworks", name: "vnet1" },
        ],
      },
    );
    const gw = gatewayFor(twin);
    const refused = await expectRejection(
      gw.deleteResourceGroup("rg-empty"),
      ResourceGroupDeleteRefusedError,
    );
    expect(refused.otherResourceIds).toEqual([
      `/subscriptions/${SUB}/resourceGroups/rg-empty/providers/Microsoft.Network/virtualNetworks/vnet1`,
    ]);
    expect(twin.requestLog.some((r) => r.method === "DELETE")).toBe(false);

    const done = await gw.deleteResourceGroup("rg-empty", { allowOtherResources: true });
    const tail = twin.requestLog.slice(-4);
    expect(tail.map((r) => `${r.method} ${r.status}`)).toEqual([
      "DELETE 202",
      "GET 202",
      "GET 202",
      "GET 204",
    ]);
    expect(tail[0]!.path).toBe(`/subscriptions/${SUB}/resourcegroups/rg-empty`);
    expect(tail[1]!.path).toMatch(/^\/subscriptions\/[^/]+\/operationresults\//);
    expect(done.requestIds).toEqual(tail.map((r) => r.requestId));
    await expect(clientsFor(twin).resources.resourceGroups.get("rg-empty")).rejects.toMatchObject({
      statusCode: 404,
      code: "ResourceGroupNotFound",
    });
  });

  it("reports a failed group delete with its code, and the group is still there", async () => {
    twin = await startTestTwin(
      { value: false },
      {
        failNextDelete: {
          on: "resource-group",
          shape: "async",
          code: "ResourceGroupDeletionBlocked",
          message: "Locked.",
        },
      },
    );
    const gw = gatewayFor(twin);
    const e = await expectRejection(gw.deleteResourceGroup("rg-empty"), AzureOperationError);
    expect(e.operation).toBe("delete-resource-group");
    expect(e.failure).toMatchObject({ statusCode: 409, code: "ResourceGroupDeletionBlocked" });
    expect((await clientsFor(twin).resources.resourceGroups.get("rg-empty")).name).toBe("rg-empty");
  });

  it("deletes the group after the HSM is zeroized, deleted and proven gone: nothing orphaned", async () => {
    const zeroized = { value: false };
    twin = await startTestTwin(zeroized);
    const gw = gatewayFor(twin);
    zeroized.value = true;
    await gw.deleteHsm(LUNA_ID);
    await gw.verifyHsmGone(LUNA_ID);
    expect(await gw.resourceGroupHoldsDedicatedHsms(RG)).toBe(false);
    await gw.deleteResourceGroup(RG);
    expect(twin.hsmState(LUNA_ID)).toMatchObject({ deleted: true, orphaned: false, billed: false });
    expect(twin.hsmState(LUNA_ID).resourceGroupExists).toBe(false);
    expect((await gw.listDedicatedHsmsInSubscription()).map((h) => h.name)).toEqual(["pay-1"]);
  });

  it("deleted directly at the ARM level while it holds an HSM, orphans it — and the gateway is not fooled", async () => {
    twin = await startTestTwin({ value: false });
    // What the troubleshooting guide warns against, sent raw (with the by-id `//` quirk for good measure).
    const del = await rawRequest(
      twin,
      "DELETE",
      `//subscriptions/${SUB}/resourcegroups/${RG}?api-version=2025-04-01`,
    );
    expect(del.status).toBe(202);
    let poll = del;
    for (let i = 0; i < 10 && poll.status !== 204; i++)
      poll = await rawRequest(twin, "GET", String(poll.headers.location ?? del.headers.location));
    expect(poll.status).toBe(204);

    expect(twin.hsmState(LUNA_ID)).toMatchObject({
      exists: false,
      deleted: false,
      orphaned: true,
      billed: true,
      resourceGroupExists: false,
    });
    const gw = gatewayFor(twin);
    // A 404 is coming back — but for the group: not proof of deletion.
    const notGone = await expectRejection(gw.verifyHsmGone(LUNA_ID), HsmNotGoneError);
    expect(notGone.failure).toMatchObject({ statusCode: 404, code: "ResourceGroupNotFound" });
    expect(notGone.message).toContain("orphaned");
    const getErr = await expectRejection(gw.getHsm(LUNA_ID), AzureOperationError);
    expect(getErr.message).toContain("orphaned");
    // Still listed in the subscription (still billed).
    const inSub = await gw.listDedicatedHsmsInSubscription();
    expect(inSub.map((h) => h.id)).toContain(LUNA_ID);
    // Nor can it be deleted any more through its id: the daemon reports it, it does not call it done.
    const delErr = await expectRejection(gw.deleteHsm(LUNA_ID), HsmDeleteFailedError);
    expect(delErr.failure).toMatchObject({ statusCode: 404, code: "ResourceGroupNotFound" });
    expect(delErr.afterFailure).toMatchObject({ exists: false, orphanSuspected: true });
    expect(delErr.message).toContain("orphaned");
    expect(twin.hsmState(LUNA_ID)).toMatchObject({ orphaned: true, billed: true });
  });
});
