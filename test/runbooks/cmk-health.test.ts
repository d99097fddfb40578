// cmk-health over the Key Vault twin: exactly the planted customer-managed-key problems, nothing on a clean copy.
// Through the unchanged Azure SDK clients over HTTPS, as the engine runs them (real Redis evidence and checkpoints).
import { describe, expect, it } from "vitest";
import { cmkHealth } from "../../runbooks/cmk-health.ts";
import { cleanKeyVaultFleet, findingChecks, useKvJobs } from "../helpers/key-vault-jobs.ts";
import { withRedis } from "../helpers/redis.ts";

const redis = await withRedis();
const kv = useKvJobs(redis);
const run = kv.run;

describe("cmk-health", () => {
  it("finds exactly the planted problems: the /keys scope, a secret ending in 10 days, auto-rotation with an expiry; gates pass", async () => {
    const { result } = await run(cmkHealth, { target: "fleet" });
    expect(findingChecks(result, "findings")).toEqual(
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
    const wraps = kv.harness.kv.requestLog.filter(
      (r) => r.method === "POST" && r.host.includes("managedhsm"),
    );
    expect(wraps.map((r) => `${r.path.replace(/[0-9a-f]{32}/, "<v>")} ${r.status}`)).toEqual([
      "/keys/secret-server-kek/<v>/wrapkey 200",
      "/keys/secret-server-kek/<v>/unwrapkey 200",
      "/keys/payments-kek/<v>/wrapkey 200",
      "/keys/payments-kek/<v>/unwrapkey 200",
    ]);
    const graph = kv.harness.kv.requestLog.filter((r) => r.host === "graph.localhost");
    expect(graph).toHaveLength(2);
  });

  it("finds nothing on a clean copy", async () => {
    const { result } = await run(cmkHealth, { target: "fleet" }, cleanKeyVaultFleet);
    expect(findingChecks(result, "findings")).toEqual([]);
    expect(result.outcome).toBe("succeeded");
  });
});
