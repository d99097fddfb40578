// The ARM twin at the HTTP level: what it checks (bearer token, api-version, TLS trust, $filter), how it normalises
// paths, and the LRO headers it answers with. Raw HTTPS requests, plus the SDK where the client side matters.
import { inspect } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { AzureOperationError, createAzureClients, DedicatedHsmGateway } from "../../src/azure/index.ts";
import type { ArmTwin } from "../../src/sim/arm/index.ts";
import {
  gatewayFor,
  LUNA_ID,
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

const HSM_Q = `${LUNA_ID}?api-version=2021-11-30`;

describe("ARM twin front door", () => {
  it("serves https on 127.0.0.1 with an ephemeral port", async () => {
    twin = await startTestTwin({ value: false });
    expect(twin.endpoint).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(twin.caPem).toContain("BEGIN CERTIFICATE");
  });

  it("refuses a request without a bearer token (401) and logs it", async () => {
    twin = await startTestTwin({ value: false });
    const res = await rawRequest(twin, "GET", HSM_Q, { token: null });
    expect(res.status).toBe(401);
    expect(JSON.parse(res.body).error.code).toBe("AuthenticationFailed");
    expect(twin.requestLog).toEqual([expect.objectContaining({ method: "GET", path: LUNA_ID, status: 401 })]);
  });

  it("checks the api-version of each route", async () => {
    twin = await startTestTwin({ value: false });
    expect((await rawRequest(twin, "GET", LUNA_ID)).status).toBe(400);
    const wrong = await rawRequest(twin, "GET", `${LUNA_ID}?api-version=2025-03-31`);
    expect(wrong.status).toBe(400);
    expect(JSON.parse(wrong.body).error.code).toBe("InvalidApiVersionParameter");
    const rg = await rawRequest(
      twin,
      "GET",
      `/subscriptions/${SUB}/resourcegroups/${RG}?api-version=2021-11-30`,
    );
    expect(rg.status).toBe(400);
    expect(
      (await rawRequest(twin, "GET", `/subscriptions/${SUB}/resourcegroups/${RG}?api-version=2025-04-01`))
        .status,
    ).toBe(200);
  });

  it("normalises a leading // (the by-id quirk) and matches path segments case-insensitively", async () => {
    twin = await startTestTwin({ value: false });
    const res = await rawRequest(twin, "GET", `/${HSM_Q}`);
    expect(res.status).toBe(200);
    const body = JSON.parse(res.body);
    expect(body.id).toBe(LUNA_ID);
    expect(body.properties.networkProfile.networkInterfaces[0]).toMatchObject({
      privateIpAddress: "10.0.2.4",
    });
    expect(body.properties.networkProfile.networkInterfaces[0].id).toMatch(/networkInterfaces\//);
    expect(
      (await rawRequest(twin, "GET", HSM_Q.toUpperCase().replace("API-VERSION", "api-version"))).status,
    ).toBe(200);
    expect(twin.requestLog[0]!.path).toBe(LUNA_ID);
    expect(res.headers["x-ms-request-id"]).toBe(twin.requestLog[0]!.requestId);
  });

  it("refuses a $filter it does not understand instead of ignoring it", async () => {
    twin = await startTestTwin({ value: false });
    const res = await rawRequest(
      twin,
      "GET",
      `/subscriptions/${SUB}/resourceGroups/${RG}/resources?api-version=2025-04-01&$filter=${encodeURIComponent("substringof('luna', name)")}`,
    );
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body).error.code).toBe("InvalidFilterInQueryString");
  });

  it("answers an HSM DELETE with 202, absolute Azure-AsyncOperation and Location URLs on its own base", async () => {
    twin = await startTestTwin({ value: true }, { asyncPolls: 1 });
    const del = await rawRequest(twin, "DELETE", HSM_Q);
    expect(del.status).toBe(202);
    const asyncUrl = String(del.headers["azure-asyncoperation"]);
    const location = String(del.headers.location);
    expect(asyncUrl.startsWith(`${twin.endpoint}/subscriptions/${SUB}/providers/`)).toBe(true);
    expect(location.startsWith(`${twin.endpoint}/subscriptions/${SUB}/providers/`)).toBe(true);
    expect(del.headers["retry-after"]).toBeUndefined();
    // Location mode: 202 while running, 204 when done; the status document then repeats the outcome.
    expect((await rawRequest(twin, "GET", location)).status).toBe(202);
    expect((await rawRequest(twin, "GET", location)).status).toBe(204);
    expect(JSON.parse((await rawRequest(twin, "GET", asyncUrl)).body).status).toBe("Succeeded");
    expect((await rawRequest(twin, "GET", HSM_Q)).status).toBe(404);
    // Deleting what is gone is a no-op (ARM deletes are idempotent).
    expect((await rawRequest(twin, "DELETE", HSM_Q)).status).toBe(204);
  });

  it("the async status of a refused delete carries the error code and message", async () => {
    twin = await startTestTwin({ value: false }, { asyncPolls: 0 });
    const del = await rawRequest(twin, "DELETE", HSM_Q);
    const status = JSON.parse(
      (await rawRequest(twin, "GET", String(del.headers["azure-asyncoperation"]))).body,
    );
    expect(status).toMatchObject({ status: "Failed", error: { code: "HsmNotZeroized" } });
    expect(status.error.message).toMatch(/zeroized/);
  });
});

describe("clients against the twin", () => {
  it("a client that does not trust the twin's CA is refused by TLS, before any request reaches ARM", async () => {
    twin = await startTestTwin({ value: false });
    const gw = new DedicatedHsmGateway(
      createAzureClients({
        subscriptionId: SUB,
        endpoint: twin.endpoint,
        tokenScope: "https://management.azure.com/.default",
        pollIntervalMs: 2,
        credential: recordingCredential(),
        retryOptions: { maxRetries: 0 },
      }),
    );
    const e = await gw.getHsm(LUNA_ID).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(AzureOperationError);
    expect((e as AzureOperationError).failure.kind).toBe("transport");
    expect(twin.requestLog).toEqual([]);
  });

  it("errors carry no token or authorization header, however they are printed", async () => {
    twin = await startTestTwin({ value: false }, { notZeroizedRefusal: "sync" });
    const e = await gatewayFor(twin)
      .deleteHsm(LUNA_ID)
      .then(
        () => undefined,
        (err: unknown) => err,
      );
    expect(e).toBeInstanceOf(AzureOperationError);
    for (const text of [String(e), JSON.stringify(e), inspect(e, { depth: 10, showHidden: true })]) {
      expect(text).not.toContain("test-token");
      expect(text.toLowerCase()).not.toContain("bearer");
    }
  });

  it("the resource-group client sends the configured token scope, not one derived from the endpoint", async () => {
    twin = await startTestTwin({ value: false });
    const credential = recordingCredential();
    expect(await gatewayFor(twin, { credential }).resourceGroupHoldsDedicatedHsms("rg-empty")).toBe(false);
    expect(credential.scopes.length).toBeGreaterThan(0);
    for (const s of credential.scopes) expect(s).toEqual(["https://management.azure.com/.default"]);
  });
});
