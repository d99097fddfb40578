// Plan = run for the Azure runbooks (Managed HSM, Key Vault, the application crypto gate), over the Key Vault and ARM
// twins through the unchanged Azure SDK clients, as a worker runs them (real Redis, signed approvals). Their plans
// describe each call in prose, so the check is on where a call goes: every resource a run called (its evidence's
// `azure` requests) is one its plan names (src/engine/plan-match.ts unplannedAzureResources); no device is touched (the
// shell port refuses). Device runbooks: plan-equals-run.test.ts.
import { afterEach, describe, expect, it } from "vitest";
import { getRunbook } from "../../runbooks/index.ts";
import type { Fleet } from "../../src/config/schema.ts";
import { planJob } from "../../src/engine/plan.ts";
import { unplannedAzureResources } from "../../src/engine/plan-match.ts";
import { type KvHarness, startKvHarness } from "../helpers/key-vault.ts";
import { approveWhenAsked, cleanKeyVaultFleet, newJobId, runKvJob } from "../helpers/key-vault-jobs.ts";
import { withRedis } from "../helpers/redis.ts";

const redis = await withRedis();
let h: KvHarness | undefined;
afterEach(async () => {
  await h?.stop();
  h = undefined;
});

/** Run a job; the resources it called that its plan does not name. */
async function unplannedResources(
  name: string,
  params: Record<string, unknown>,
  opts: { edit?: (f: Fleet) => void; confirm?: string } = {},
) {
  h = await startKvHarness(opts.edit);
  const runbook = getRunbook(name);
  const plan = planJob(runbook, params, h.fleet);
  const jobId = newJobId(`plan-run-${name}`);
  const approving = opts.confirm
    ? approveWhenAsked(redis.client(), jobId, opts.confirm).catch(() => {})
    : undefined;
  const { result, evidence } = await runKvJob(redis, h.fleet, h.access, runbook, { jobId, params });
  await approving;
  expect(result.error, JSON.stringify(result.error)).toBeUndefined();
  const called = (await evidence.records())
    .filter((r) => r.kind === "azure" && (r.data as { event?: string }).event === "request")
    .map((r) => (r.data as { on: string }).on);
  expect(called.length).toBeGreaterThan(0);
  return unplannedAzureResources(plan, called);
}

describe("plan = run, Azure runbooks: every resource called is planned", () => {
  for (const name of ["mhsm-audit", "cmk-health", "app-crypto-gate", "vault-placement"])
    it(`${name} fleet`, async () => {
      expect(await unplannedResources(name, { target: "fleet" })).toEqual([]);
    });

  it("mhsm-retire mhsm-dr (approved): delete, purge, the emptied resource group", async () => {
    const edit = (f: Fleet) => {
      cleanKeyVaultFleet(f);
      const dr = f.managedHsms.find((m) => m.name === "mhsm-dr")!;
      dr.resourceId = dr.resourceId.replace("/resourceGroups/rg-mhsm/", "/resourceGroups/rg-mhsm-dr/");
      dr.sim = { activated: true, purgeProtection: false, diagnostics: true, undeclaredKeys: [] };
    };
    const params = {
      target: "mhsm-dr",
      securityDomainBackupConfirmed: true,
      keyBackupsConfirmed: true,
      purge: true,
      deleteResourceGroup: true,
      approvalPollMs: 20,
    };
    expect(await unplannedResources("mhsm-retire", params, { edit, confirm: "mhsm-dr" })).toEqual([]);
  });
});
