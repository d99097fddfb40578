// mhsm-audit over the Key Vault twin: exactly the planted problems (and nothing on a clean copy), its facts, a failed read check-failed, 403 as a finding, retried 429/5xx on the evidence.
// Through the unchanged Azure SDK clients over HTTPS, as the engine runs them (real Redis evidence and checkpoints).
import { describe, expect, it } from "vitest";
import { mhsmAudit } from "../../runbooks/mhsm-audit.ts";
import { RedisFactStore } from "../../src/facts/store.ts";
import { DAEMON_PRINCIPAL } from "../../src/sim/mhsm/index.ts";
import {
  cleanKeyVaultFleet,
  findingChecks,
  newJobId,
  runKvJob,
  useKvJobs,
} from "../helpers/key-vault-jobs.ts";
import { withRedis } from "../helpers/redis.ts";

const redis = await withRedis();
const kv = useKvJobs(redis);
const run = kv.run;

describe("mhsm-audit", () => {
  it("finds exactly the planted problems: purge protection off, an undeclared key, a /keys-scoped consumer role, an HSM not activated", async () => {
    const { result, evidence } = await run(mhsmAudit, { target: "fleet" });
    expect(result.status).toBe("succeeded");
    expect(result.outcome).toBe("succeeded-with-findings");
    expect(findingChecks(result, "findings")).toEqual(
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
    expect(kv.harness.arm.requestLog.every((r) => r.method === "GET")).toBe(true);
    expect(kv.harness.arm.requestLog.filter((r) => /managedHSMs\/mhsm-dr$/.test(r.path))).toHaveLength(1);
    expect(kv.harness.kv.requestLog.every((r) => r.method === "GET")).toBe(true);
    expect(kv.harness.kv.requestLog.some((r) => r.host.startsWith("mhsm-dr."))).toBe(false);
    const authenticated = kv.harness.kv.requestLog.filter((r) => r.status === 200);
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
    expect(findingChecks(result, "findings")).toEqual([]);
    expect(result.outcome).toBe("succeeded");
  });

  it("writes what it saw into the fleet state model: one subject per pool, each fact with its status and the job", async () => {
    const { result } = await run(mhsmAudit, { target: "fleet" });
    const store = new RedisFactStore(redis.client());
    const pay = await store.read(`azure:${kv.harness.fleet.managedHsms[0]!.resourceId}`);
    const dr = await store.read(`azure:${kv.harness.fleet.managedHsms[1]!.resourceId}`);
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
    const h = await kv.start(cleanKeyVaultFleet);
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
    const h = await kv.start(cleanKeyVaultFleet);
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
    const h = await kv.start(cleanKeyVaultFleet);
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
