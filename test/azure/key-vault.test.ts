// Managed HSM, Key Vault and the application crypto gate through the unchanged Azure SDK clients, over HTTPS, against
// the Key Vault twin: what the product reads, what it refuses, how each failure is classified, and the requests the
// twin received.
import { afterEach, describe, expect, it } from "vitest";
import { httpOf, withHttpRecord } from "../../src/azure/http-record.ts";
import { KeyVaultChangeRefused, KeyVaultOperationError } from "../../src/azure/key-vault-errors.ts";
import { resolveSecret } from "../../src/config/secret.ts";
import { DAEMON_PRINCIPAL } from "../../src/sim/mhsm/index.ts";
import { type KvHarness, startKvHarness } from "../helpers/key-vault.ts";

let h: KvHarness | undefined;
afterEach(async () => {
  await h?.stop();
  h = undefined;
});

const pay = (x: KvHarness) => x.fleet.managedHsms.find((m) => m.name === "mhsm-pay")!;
const consumer = (x: KvHarness, name: string) => x.fleet.cmkConsumers.find((c) => c.name === name)!;
const appCredential = (x: KvHarness, name: string) => {
  const c = consumer(x, name);
  return x.access.data.applicationCredential(
    c.tenantId,
    c.clientId,
    resolveSecret(c.credentials.clientSecret, { literalAllowed: true }),
  );
};

async function gateFailure(x: KvHarness, name: string): Promise<KeyVaultOperationError> {
  const c = consumer(x, name);
  const err = await x.accessNoRetry.data.wrapRoundTrip(pay(x).hsmUri, c.key, appCredential(x, name)).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(KeyVaultOperationError);
  return err as KeyVaultOperationError;
}

describe("Managed HSM over ARM (arm-keyvault 5, arm-monitor 7)", () => {
  it("reads activation, soft delete, purge protection, network, private endpoints and diagnostic settings", async () => {
    h = await startKvHarness();
    const hsm = await h.access.arm.getManagedHsm(pay(h).resourceId);
    expect(hsm).toMatchObject({
      name: "mhsm-pay",
      resourceGroup: "rg-mhsm",
      location: "westeurope",
      activationStatus: "Active",
      softDeleteEnabled: true,
      softDeleteRetentionDays: 90,
      purgeProtection: false,
      publicNetworkAccess: "Disabled",
      networkAcls: { defaultAction: "Deny", ipRules: [] },
      regions: [{ name: "westeurope", isPrimary: true, provisioningState: "Succeeded" }],
    });
    expect(hsm?.hsmUri).toBe(pay(h).hsmUri);
    expect(hsm?.privateEndpointConnections).toEqual([
      expect.objectContaining({ status: "Approved", provisioningState: "Succeeded" }),
    ]);
    const dr = await h.access.arm.getManagedHsm(h.fleet.managedHsms[1]!.resourceId);
    expect(dr?.activationStatus).toBe("NotActivated");
    const diag = await h.access.arm.listDiagnosticSettings(pay(h).resourceId);
    expect(diag).toEqual([
      expect.objectContaining({
        workspaceId: pay(h).expected.diagnosticDestination,
        enabledLogs: ["AuditEvent"],
      }),
    ]);
    const vault = await h.access.arm.getVault(h.fleet.keyVaults[0]!.resourceId);
    expect(vault).toMatchObject({
      name: "kv-app-std",
      sku: "standard",
      softDeleteEnabled: true,
      purgeProtection: true,
    });

    const log = h.arm.requestLog.map((r) => `${r.method} ${r.path}${r.query} ${r.status}`);
    expect(log).toEqual([
      `GET ${pay(h).resourceId}?api-version=2026-02-01 200`,
      `GET ${h.fleet.managedHsms[1]!.resourceId}?api-version=2026-02-01 200`,
      `GET ${pay(h).resourceId}/providers/Microsoft.Insights/diagnosticSettings?api-version=2017-05-01-preview 200`,
      `GET ${h.fleet.keyVaults[0]!.resourceId}?api-version=2026-02-01 200`,
    ]);
  });

  it("deletes a pool into soft delete, refuses to purge it under purge protection, and guards the resource group", async () => {
    h = await startKvHarness((f) => {
      pay({ fleet: f } as KvHarness).sim!.purgeProtection = true;
    });
    const id = pay(h).resourceId;
    await h.access.arm.deleteManagedHsm(id);
    expect(await h.access.arm.getManagedHsm(id)).toBeNull();
    const deleted = await h.access.arm.getDeletedManagedHsm("mhsm-pay", "westeurope");
    expect(deleted).toMatchObject({ mhsmId: id, purgeProtectionEnabled: true, location: "westeurope" });
    expect(Date.parse(deleted!.scheduledPurgeDate!) - Date.parse(deleted!.deletionDate!)).toBe(
      90 * 86_400_000,
    );
    expect(h.kv.poolState("mhsm-pay")).toEqual({
      state: "soft-deleted",
      billed: true,
      purgeProtection: true,
    });

    const before = h.arm.requestLog.length;
    const purge = await h.access.arm
      .purgeDeletedManagedHsm("mhsm-pay", "westeurope")
      .catch((e: unknown) => e);
    expect(purge).toBeInstanceOf(KeyVaultChangeRefused);
    expect((purge as Error).message).toMatch(/purge protection is on/);
    // Only the read of the deleted record went out: no POST .../purge.
    expect(h.arm.requestLog.slice(before).map((r) => r.method)).toEqual(["GET"]);

    const holds = await h.access.arm.resourceGroupManagedHsms("rg-mhsm");
    expect(holds).toEqual({
      resourceGroup: "rg-mhsm",
      active: [h.fleet.managedHsms[1]!.resourceId],
      softDeleted: [id],
    });
    const rg = await h.access.arm.deleteResourceGroup("rg-mhsm").catch((e: unknown) => e);
    expect(rg).toBeInstanceOf(KeyVaultChangeRefused);
    expect((rg as Error).message).toMatch(/soft-deleted .*mhsm-pay/);
    expect(
      h.arm.requestLog.some((r) => r.method === "DELETE" && /resourcegroups\/rg-mhsm$/i.test(r.path)),
    ).toBe(false);

    // The delete was a long-running operation: 202, then the Location polled until 204.
    const lro = h.arm.requestLog.filter((r) =>
      /rg-mhsm\/providers\/Microsoft\.KeyVault\/managedHSMs\/mhsm-pay$|managedHsmOperationResults/i.test(
        r.path,
      ),
    );
    expect(lro.map((r) => `${r.method} ${r.status}`)).toEqual([
      "DELETE 202",
      "GET 202",
      "GET 200",
      "GET 404",
    ]);
  });

  it("purges a soft-deleted pool without purge protection (LRO), after which it is no longer billed", async () => {
    h = await startKvHarness();
    await h.access.arm.deleteManagedHsm(pay(h).resourceId);
    await h.access.arm.purgeDeletedManagedHsm("mhsm-pay", "westeurope");
    expect(await h.access.arm.getDeletedManagedHsm("mhsm-pay", "westeurope")).toBeNull();
    expect(h.kv.poolState("mhsm-pay")).toMatchObject({ state: "purged", billed: false });
    const from = h.arm.requestLog.findIndex((r) => r.method === "POST");
    const purge = h.arm.requestLog
      .slice(from)
      .filter((r) => /purge$|managedHsmOperationResults/.test(r.path));
    expect(purge.map((r) => `${r.method} ${r.status}`)).toEqual(["POST 202", "GET 202", "GET 200"]);
  });
});

describe("Managed HSM data plane (keyvault-keys, core pipeline with Key Vault challenge authentication)", () => {
  it("reads keys, versions and rotation policies, and role assignments, after the Key Vault challenge", async () => {
    h = await startKvHarness();
    const keys = await h.access.data.listKeys(pay(h).hsmUri);
    expect(keys.map((k) => k.name)).toEqual(["legacy-export", "payments-kek", "secret-server-kek"]);
    const kek = keys.find((k) => k.name === "payments-kek")!;
    expect(kek).toMatchObject({
      type: "oct-HSM",
      size: null,
      operations: ["wrapKey", "unwrapKey"],
      enabled: true,
    });
    expect(kek.versions).toHaveLength(2);
    expect(kek.rotationPolicy).toEqual({
      rotateAfterCreate: "P80D",
      rotateBeforeExpiry: null,
      notifyBeforeExpiry: null,
      expiresIn: "P90D",
    });
    const defs = await h.access.data.listRoleDefinitions(pay(h).hsmUri);
    const assignments = await h.access.data.listRoleAssignments(pay(h).hsmUri, defs);
    expect(assignments.map((a) => `${a.roleName} ${a.scope} ${a.principalId}`).sort()).toEqual(
      [
        `Managed HSM Administrator / 00000000-0000-4000-8000-00000000ad11`,
        `Managed HSM Crypto Auditor / ${DAEMON_PRINCIPAL.objectId}`,
        `Managed HSM Crypto User /keys ${consumer(h, "secret-server").principalId}`,
        `Managed HSM Crypto User /keys/payments-kek ${consumer(h, "payments-api").principalId}`,
      ].sort(),
    );
    // Challenge-based authentication: each client's first request goes out without a token and gets the 401.
    const log = h.kv.requestLog.filter((r) => r.host === "mhsm-pay.managedhsm.localhost");
    expect(log[0]).toMatchObject({ method: "GET", path: "/keys", status: 401, code: "Unauthorized" });
    expect(log[1]).toMatchObject({
      method: "GET",
      path: "/keys",
      status: 200,
      principal: DAEMON_PRINCIPAL.objectId,
    });
    const rbac = log.filter((r) => r.path.includes("Microsoft.Authorization"));
    expect(rbac.map((r) => `${r.path}${r.query} ${r.status}`)).toEqual([
      "/providers/Microsoft.Authorization/roleDefinitions?api-version=7.4 401",
      "/providers/Microsoft.Authorization/roleDefinitions?api-version=7.4 200",
      "/providers/Microsoft.Authorization/roleAssignments?api-version=7.4 200",
    ]);
  });

  it("reads a client secret's end date from Microsoft Graph, matching the configured secret by its hint", async () => {
    h = await startKvHarness();
    const c = consumer(h, "payments-api");
    const expiry = await h.access.data.secretExpiry(
      c.clientId,
      resolveSecret(c.credentials.clientSecret, { literalAllowed: true }),
    );
    expect(expiry.matchedBy).toBe("hint");
    const days = (Date.parse(expiry.endDateTime!) - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(9);
    expect(days).toBeLessThanOrEqual(10);
  });

  it("a 403 is classified as a role failure naming the missing role", async () => {
    h = await startKvHarness();
    expect(h.kv.revokeRole("mhsm-pay", DAEMON_PRINCIPAL.objectId)).toBe(1);
    const err = await h.accessNoRetry.data.listKeys(pay(h).hsmUri).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeyVaultOperationError);
    expect((err as KeyVaultOperationError).failure).toMatchObject({
      layer: "role",
      statusCode: 403,
      code: "AccessDenied",
      missingAction: "Microsoft.KeyVault/managedHsm/keys/read/action",
      missingRole: "Managed HSM Crypto Auditor",
    });
    expect((err as Error).message).toMatch(/needs Managed HSM Crypto Auditor/);
  });

  it("429 with Retry-After and 5xx are retried by the SDK's own policy, each attempt recorded", async () => {
    h = await startKvHarness();
    h.kv.setFault({ on: "data-plane", status: 429, count: 1, retryAfterSeconds: 1, path: "/versions" });
    h.kv.setFault({ on: "data-plane", status: 503, count: 1, path: "/rotationpolicy" });
    h.kv.setFault({ on: "arm", status: 500, count: 1, path: "managedHSMs/mhsm-pay" });
    const { value: key, http } = await withHttpRecord(() =>
      h!.access.data.readKey(pay(h!).hsmUri, "payments-kek"),
    );
    expect(key.versions).toHaveLength(2);
    const statuses = http.map(
      (x) => `${x.method} ${x.path.replace(/^\/keys\/payments-kek/, "")} ${x.status}`,
    );
    expect(statuses).toEqual([
      "GET / 401", // the Key Vault challenge: the first request goes out without a token
      "GET / 200",
      "GET /versions 429",
      "GET /versions 200",
      "GET /rotationpolicy 503",
      "GET /rotationpolicy 200",
    ]);
    expect(http[2]?.retryAfter).toBe("1");
    const arm = await withHttpRecord(() => h!.access.arm.getManagedHsm(pay(h!).resourceId));
    expect(arm.value?.name).toBe("mhsm-pay");
    expect(arm.http.map((x) => x.status)).toEqual([500, 200]);
    // The twin saw the same: one refused answer, then the retry.
    expect(h.kv.requestLog.filter((r) => r.path.endsWith("/versions")).map((r) => r.status)).toEqual([
      429, 200,
    ]);
  });

  it("without retries a 5xx is a service failure with its exchanges attached", async () => {
    h = await startKvHarness();
    h.kv.setFault({ on: "data-plane", status: 500, count: 5, path: "/keys" });
    const err = await withHttpRecord(() => h!.accessNoRetry.data.listKeys(pay(h!).hsmUri)).catch(
      (e: unknown) => e,
    );
    expect((err as KeyVaultOperationError).failure).toMatchObject({ layer: "service", statusCode: 500 });
    expect(httpOf(err).map((x) => x.status)).toEqual([500]);
  });
});

describe("the application crypto gate: wrapKey/unwrapKey as the application's own identity", () => {
  it("passes with the right identity: a real AES key wrap round trip through the twin's Entra ID and HSM", async () => {
    h = await startKvHarness();
    const c = consumer(h, "payments-api");
    const result = await h.access.data.wrapRoundTrip(pay(h).hsmUri, c.key, appCredential(h, "payments-api"));
    expect(result).toMatchObject({ ok: true, algorithm: "A256KW", bytes: 32 });
    expect(result.keyId).toMatch(/\/keys\/payments-kek\/[0-9a-f]{32}$/);
    const calls = h.kv.requestLog.map(
      (r) => `${r.method} ${r.host} ${r.path.replace(/[0-9a-f]{32}/, "<v>")} ${r.status}`,
    );
    expect(calls).toEqual([
      "GET mhsm-pay.managedhsm.localhost /keys/payments-kek/ 401",
      `GET login.localhost /${c.tenantId}/v2.0/.well-known/openid-configuration 200`,
      `POST login.localhost /${c.tenantId}/oauth2/v2.0/token 200`,
      "GET mhsm-pay.managedhsm.localhost /keys/payments-kek/ 200",
      "GET mhsm-pay.managedhsm.localhost /keys/payments-kek/<v> 401",
      "GET mhsm-pay.managedhsm.localhost /keys/payments-kek/<v> 200",
      "POST mhsm-pay.managedhsm.localhost /keys/payments-kek/<v>/wrapkey 200",
      "POST mhsm-pay.managedhsm.localhost /keys/payments-kek/<v>/unwrapkey 200",
    ]);
    expect(
      h.kv.requestLog
        .filter((r) => r.status === 200 && r.host.includes("managedhsm"))
        .every((r) => r.principal === c.principalId),
    ).toBe(true);
  });

  it("fails at the role layer when the application's role assignment is revoked", async () => {
    h = await startKvHarness();
    h.kv.revokeRole("mhsm-pay", consumer(h, "payments-api").principalId);
    const err = await gateFailure(h, "payments-api");
    expect(err.failure).toMatchObject({
      layer: "role",
      statusCode: 403,
      missingRole: expect.stringMatching(/Crypto/),
    });
  });

  it("fails at the key layer when the key's current version is disabled", async () => {
    h = await startKvHarness();
    h.kv.setKeyEnabled("mhsm-pay", "payments-kek", false);
    const err = await gateFailure(h, "payments-api");
    expect(err.failure).toMatchObject({ layer: "key", statusCode: 403, innerCode: "KeyDisabled" });
    expect(err.operation).toBe("gate-wrap-key");
  });

  it("fails at the network layer when a network rule blocks the caller", async () => {
    h = await startKvHarness();
    h.kv.setNetwork("mhsm-pay", {
      privateEndpoint: false,
      publicNetworkAccess: "Enabled",
      defaultAction: "Deny",
      ipRules: ["203.0.113.0/24"],
    });
    const err = await gateFailure(h, "payments-api");
    expect(err.failure).toMatchObject({
      layer: "network",
      statusCode: 403,
      innerCode: "ForbiddenByFirewall",
    });
  });

  it("fails at the identity layer with a wrong secret, naming Entra's AADSTS code", async () => {
    h = await startKvHarness();
    // The twin registered the app with the demo's secret; the fleet copy now holds another one.
    consumer(h, "payments-api").credentials.clientSecret = "Not-The-Registered-Secret";
    const err = await gateFailure(h, "payments-api");
    expect(err.failure).toMatchObject({ layer: "identity", aadsts: "AADSTS7000215" });
    expect(err.message).not.toContain("Not-The-Registered-Secret");
  });
});
