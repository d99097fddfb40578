// vault-placement over the Key Vault twin: a key asked of the wrong vault tier is a finding.
// Through the unchanged Azure SDK clients over HTTPS, as the engine runs them (real Redis evidence and checkpoints).
import { describe, expect, it } from "vitest";
import { vaultPlacement } from "../../runbooks/vault-placement.ts";
import { cleanKeyVaultFleet, findingChecks, useKvJobs } from "../helpers/key-vault-jobs.ts";
import { withRedis } from "../helpers/redis.ts";

const redis = await withRedis();
const kv = useKvJobs(redis);
const run = kv.run;

describe("vault-placement", () => {
  it("finds exactly the symmetric key asked of a Standard vault", async () => {
    const { result } = await run(vaultPlacement, { target: "fleet" });
    expect(findingChecks(result, "placement")).toEqual(["vault kv-app-std/keys/app-dek placement-symmetric"]);
    expect(
      kv.harness.arm.requestLog.map((r) => `${r.method} ${r.path.split("/").pop()} ${r.status}`),
    ).toEqual(["GET kv-app-std 200", "GET kv-sign 200"]);
  });

  it("finds nothing on a clean copy", async () => {
    const { result } = await run(vaultPlacement, { target: "fleet" }, cleanKeyVaultFleet);
    expect(findingChecks(result, "placement")).toEqual([]);
  });
});
