// mhsm-audit, cmk-health, vault-placement and app-crypto-gate over the Key Vault twin: each finds exactly the problems
// config/demo.yaml plants (and nothing on a clean copy), through the unchanged Azure SDK clients over HTTPS, as the
// engine runs them (real Redis evidence and checkpoints); the requests the twin received are checked.
import { afterEach, describe, expect, it } from "vitest";
import { appCryptoGate } from "../../runbooks/app-crypto-gate.ts";
import { cmkHealth } from "../../runbooks/cmk-health.ts";
import type { KvFinding } from "../../runbooks/lib/key-vault.ts";
import { mhsmAudit } from "../../runbooks/mhsm-audit.ts";
import { vaultPlacement } from "../../runbooks/vault-placement.ts";
import type { Fleet } from "../../src/config/schema.ts";
import type { Runbook } from "../../src/engine/runbook.ts";
import { RedisFactStore } from "../../src/facts/store.ts";
import { DAEMON_PRINCIPAL } from "../../src/sim/mhsm/index.ts";
import { type KvHarness, startKvHarness } from "../azure/key-vault-support.ts";
import { withRedis } from "../helpers/redis.ts";
import { cleanKeyVaultFleet, newJobId, runKvJob } from "./mhsm-support.ts";

const redis = await withRedis();
let h: KvHarness | undefined;
afterEach(async () => {
  await h?.stop();
  h = undefined;
});

async function run(runbook: Runbook, params: Record<string, unknown>, edit?: (f: Fleet) => void) {
  h ??= await startKvHarness(edit);
  return runKvJob(redis, h.fleet, h.access, runbook, { jobId: newJobId(runbook.name), params });
}

/** The findings a runbook left in its findings step, as "subject check". */
function checks(result: { steps: { id: string; result?: unknown }[] }, step: string): string[] {
  const r = result.steps.find((s) => s.id === step)?.result as { findings: KvFinding[] };
  return r.findings.map((f) => `${f.subject} ${f.check}`).sort();
}

describe("mhsm-audit", () => {
  it("finds exactly the planted problems: purge protection off, an undeclared key, a /keys-scoped consumer role, an HSM not activated", async () => {
    const { result, evidence } = await run(mhsmAudit, { target: "fleet" });
    expect(result.status).toBe("succeeded");
    expect(result.outcome).toBe("succeeded-with-findings");
    expect(checks(result, "findings")).toEqual(
      [
        "mhsm-pay purge-protection",
        "mhsm-pay/keys/legacy-export undeclared-key",
        "consumer secret-server role-scope",
        "mhsm-dr activation",
      ].sort(),
    );
    expect(result.findings).toContain(
      "consumer secret-server: Managed HSM Crypto User is assigned at /keys instead of /keys/secret-server-kek: Delinea Secret Server can use every key there",
    );
    // Requests: ARM reads of both pools (nothing but GET), the data plane of the activated pool only, as the daemon.
    expect(h!.arm.requestLog.every((r) => r.method === "GET")).toBe(true);
    expect(h!.arm.requestLog.filter((r) => /managedHSMs\/mhsm-dr$/.test(r.path))).toHaveLength(1);
    expect(h!.kv.requestLog.every((r) => r.method === "GET")).toBe(true);
    expect(h!.kv.requestLog.some((r) => r.host.startsWith("mhsm-dr."))).toBe(false);
    const authenticated = h!.kv.requestLog.filter((r) => r.status === 200);
    expect(authenticated.length).toBeGreaterThan(0);
    expect(authenticated.every((r) => r.principal === DAEMON_PRINCIPAL.objectId)).toBe(true);
    expect(authenticated.map((r) => r.path)).toEqual(
      expect.arrayContaining([
        "/keys",
        "/keys/legacy-export/",
        "/keys/payments-kek/versions",
        "/keys/secret-server-kek/rotationpolicy",
        "/providers/Microsoft.Authorization/roleAssignments",
      ]),
    );
    // Every Azure call is on the job's evidence with its HTTP exchanges; the chain verifies.
    const azure = (await evidence.records()).filter((r) => r.kind === "azure");
    expect(azure.some((r) => (r.data as { operation?: string }).operation === "list-role-assignments")).toBe(
      true,
    );
    const withHttp = azure.filter((r) => (r.data as { event?: string }).event === "result");
    expect(withHttp.every((r) => Array.isArray((r.data as { http?: unknown }).http))).toBe(true);
    expect(await evidence.verify()).toBe(true);
  });

  it("finds nothing on a clean copy", async () => {
    const { result } = await run(mhsmAudit, { target: "fleet" }, cleanKeyVaultFleet);
    expect(checks(result, "findings")).toEqual([]);
    expect(result.outcome).toBe("succeeded");
  });

  it("writes what it saw into the fleet state model: one subject per pool, each fact with its status and the job", async () => {
    const { result } = await run(mhsmAudit, { target: "fleet" });
    const store = new RedisFactStore(redis.client());
    const pay = await store.read(`azure:${h!.fleet.managedHsms[0]!.resourceId}`);
    const dr = await store.read(`azure:${h!.fleet.managedHsms[1]!.resourceId}`);
    const status = (facts: typeof pay) =>
      Object.fromEntries(Object.entries(facts).map(([f, o]) => [f, `${o.status} ${o.summary}`]));
    expect(status(pay)).toMatchObject({
      lifecycle: "ok active",
      activation: "ok Active",
      "purge-protection": "problem off",
      keys: "problem 3 key(s)",
      roles: expect.stringMatching(/^problem 4 role assignment\(s\)/),
      "data-plane-access": "ok keys and role assignments readable",
      diagnostics: expect.stringMatching(/^ok audit logs to /),
      network: expect.stringMatching(/^ok public network Disabled/),
    });
    expect(pay["purge-protection"]).toMatchObject({ jobId: result.jobId, by: "mhsm-audit" });
    expect(pay.keys!.reason).toMatch(
      /mhsm-pay\/keys\/legacy-export: oct-HSM found in the HSM with no declaration: no owner/,
    );
    expect(status(dr)).toMatchObject({
      activation: "problem NotActivated",
      keys: expect.stringMatching(/^unknown not activated/),
    });
  });

  it("a read that fails leaves its facts check-failed, never an older green value", async () => {
    h = await startKvHarness(cleanKeyVaultFleet);
    h.kv.setFault({ on: "arm", status: 500, count: 1, path: "managedHSMs/mhsm-dr" });
    const { result } = await runKvJob(redis, h.fleet, h.accessNoRetry, mhsmAudit, {
      jobId: newJobId("audit-check-failed"),
      params: { target: "mhsm-dr" },
    });
    expect(result.status).toBe("failed");
    const dr = await new RedisFactStore(redis.client()).read(`azure:${h.fleet.managedHsms[1]!.resourceId}`);
    expect(dr.activation).toMatchObject({ status: "check-failed", jobId: result.jobId });
    expect(dr.keys).toMatchObject({ status: "check-failed" });
  });

  it("a 403 on the data plane is a finding naming the daemon identity's missing role, not a crash", async () => {
    h = await startKvHarness(cleanKeyVaultFleet);
    h.kv.revokeRole("mhsm-pay", DAEMON_PRINCIPAL.objectId);
    const { result } = await runKvJob(redis, h.fleet, h.accessNoRetry, mhsmAudit, {
      jobId: newJobId("audit-403"),
      params: { target: "mhsm-pay" },
    });
    expect(result.status).toBe("succeeded");
    expect(result.findings).toEqual([
      "mhsm-pay: the daemon's identity was refused listing keys: it needs Managed HSM Crypto Auditor (Microsoft.KeyVault/managedHsm/keys/read/action)",
      "mhsm-pay: the daemon's identity was refused reading role definitions: it needs Managed HSM Crypto Auditor (Microsoft.KeyVault/managedHsm/roleDefinitions/read/action)",
    ]);
    expect(h.kv.requestLog.filter((r) => r.status === 403).map((r) => r.code)).toEqual([
      "AccessDenied",
      "AccessDenied",
    ]);
  });

  it("429 and 5xx from the twin are retried by the SDK inside the job, and the attempts are on the evidence", async () => {
    h = await startKvHarness(cleanKeyVaultFleet);
    h.kv.setFault({
      on: "data-plane",
      status: 429,
      count: 1,
      retryAfterSeconds: 1,
      path: "/keys/payments-kek/versions",
    });
    h.kv.setFault({ on: "arm", status: 503, count: 1, path: "managedHSMs/mhsm-pay" });
    const { result, evidence } = await runKvJob(redis, h.fleet, h.access, mhsmAudit, {
      jobId: newJobId("audit-retry"),
      params: { target: "mhsm-pay" },
    });
    expect(result.outcome).toBe("succeeded");
    const http = (await evidence.records())
      .filter((r) => r.kind === "azure")
      .flatMap((r) => (r.data as { http?: { path: string; status?: number }[] }).http ?? []);
    expect(http.filter((x) => x.path === "/keys/payments-kek/versions").map((x) => x.status)).toEqual([
      429, 200,
    ]);
    expect(http.filter((x) => /managedHSMs\/mhsm-pay$/.test(x.path)).map((x) => x.status)).toEqual([
      503, 200,
    ]);
  });
});

describe("cmk-health", () => {
  it("finds exactly the planted problems: the /keys scope, a secret ending in 10 days, auto-rotation with an expiry; gates pass", async () => {
    const { result } = await run(cmkHealth, { target: "fleet" });
    expect(checks(result, "findings")).toEqual(
      [
        "consumer secret-server role-scope",
        "consumer payments-api secret-expiry",
        "consumer payments-api rotation-expiry",
      ].sort(),
    );
    expect(result.findings?.find((f) => f.includes("secret-expiry") || f.includes("client secret"))).toMatch(
      /consumer payments-api: its client secret expires on \d{4}-\d{2}-\d{2}, in 10 days \(threshold 30\)/,
    );
    const gates = result.steps.find((s) => s.id === "gate")?.result as {
      gates: { consumer: string; passed: boolean }[];
    };
    expect(gates.gates.map((g) => [g.consumer, g.passed])).toEqual([
      ["secret-server", true],
      ["payments-api", true],
    ]);
    // The applications' own round trips: each authenticated as itself, wrap then unwrap on its key.
    const wraps = h!.kv.requestLog.filter((r) => r.method === "POST" && r.host.includes("managedhsm"));
    expect(wraps.map((r) => `${r.path.replace(/[0-9a-f]{32}/, "<v>")} ${r.status}`)).toEqual([
      "/keys/secret-server-kek/<v>/wrapkey 200",
      "/keys/secret-server-kek/<v>/unwrapkey 200",
      "/keys/payments-kek/<v>/wrapkey 200",
      "/keys/payments-kek/<v>/unwrapkey 200",
    ]);
    const graph = h!.kv.requestLog.filter((r) => r.host === "graph.localhost");
    expect(graph).toHaveLength(2);
  });

  it("finds nothing on a clean copy", async () => {
    const { result } = await run(cmkHealth, { target: "fleet" }, cleanKeyVaultFleet);
    expect(checks(result, "findings")).toEqual([]);
    expect(result.outcome).toBe("succeeded");
  });
});

describe("vault-placement", () => {
  it("finds exactly the symmetric key asked of a Standard vault", async () => {
    const { result } = await run(vaultPlacement, { target: "fleet" });
    expect(checks(result, "placement")).toEqual(["vault kv-app-std/keys/app-dek placement-symmetric"]);
    expect(h!.arm.requestLog.map((r) => `${r.method} ${r.path.split("/").pop()} ${r.status}`)).toEqual([
      "GET kv-app-std 200",
      "GET kv-sign 200",
    ]);
  });

  it("finds nothing on a clean copy", async () => {
    const { result } = await run(vaultPlacement, { target: "fleet" }, cleanKeyVaultFleet);
    expect(checks(result, "placement")).toEqual([]);
  });
});

describe("app-crypto-gate", () => {
  it("passes for every consumer with the right identities", async () => {
    const { result } = await run(appCryptoGate, { target: "fleet" });
    expect(result.outcome).toBe("succeeded");
  });

  for (const [what, layer, fault] of [
    [
      "a revoked role assignment",
      "role",
      (x: KvHarness) => x.kv.revokeRole("mhsm-pay", x.fleet.cmkConsumers[1]!.principalId),
    ],
    [
      "a disabled key version",
      "key",
      (x: KvHarness) => x.kv.setKeyEnabled("mhsm-pay", "payments-kek", false),
    ],
    [
      "a network rule that blocks the caller",
      "network",
      (x: KvHarness) =>
        x.kv.setNetwork("mhsm-pay", {
          privateEndpoint: false,
          publicNetworkAccess: "Enabled",
          ipRules: ["198.51.100.7"],
        }),
    ],
  ] as const) {
    it(`fails the job with ${what}, naming the ${layer} layer`, async () => {
      h = await startKvHarness();
      fault(h);
      const { result } = await runKvJob(redis, h.fleet, h.access, appCryptoGate, {
        jobId: newJobId("gate"),
        params: { target: "payments-api" },
      });
      expect(result.status).toBe("failed");
      expect(result.outcome).toBe("failed");
      expect(result.findings).toHaveLength(1);
      expect(result.findings![0]).toMatch(
        new RegExp(`^consumer payments-api: crypto gate failed at the ${layer} layer`),
      );
    });
  }

  it("fails the job with a wrong application secret, naming the identity layer", async () => {
    h = await startKvHarness();
    h.fleet.cmkConsumers[1]!.credentials.clientSecret = "Not-The-Registered-Secret";
    const { result } = await runKvJob(redis, h.fleet, h.access, appCryptoGate, {
      jobId: newJobId("gate-id"),
      params: { target: "payments-api" },
    });
    expect(result.outcome).toBe("failed");
    expect(result.findings![0]).toMatch(
      /crypto gate failed at the identity layer \(gate-get-key: AADSTS7000215/,
    );
  });
});
