// app-crypto-gate over the Key Vault twin: passes with the right identities; each broken layer fails the job, named.
// Through the unchanged Azure SDK clients over HTTPS, as the engine runs them (real Redis evidence and checkpoints).
import { describe, expect, it } from "vitest";
import { appCryptoGate } from "../../runbooks/app-crypto-gate.ts";
import type { KvHarness } from "../helpers/key-vault.ts";
import { newJobId, runKvJob, useKvJobs } from "../helpers/key-vault-jobs.ts";
import { withRedis } from "../helpers/redis.ts";

const redis = await withRedis();
const kv = useKvJobs(redis);
const run = kv.run;

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
      const h = await kv.start();
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
    const h = await kv.start();
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
