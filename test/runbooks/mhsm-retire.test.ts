// mhsm-retire over the Key Vault twin: the safe order with approvals; killed after every step (before its checkpoint
// is committed, and right after) and resumed, it ends in the same final state with the same order of changes and no
// change repeated; the resource group can never go first; a purge under purge protection is refused before anything
// is deleted.
import { afterEach, describe, expect, it } from "vitest";
import { mhsmRetire } from "../../runbooks/mhsm-retire.ts";
import { KeyVaultChangeRefused } from "../../src/azure/key-vault-errors.ts";
import type { Fleet } from "../../src/config/schema.ts";
import { type CheckpointStore, RedisCheckpointStore } from "../../src/engine/checkpoints.ts";
import { expandSteps } from "../../src/engine/runbook.ts";
import { RedisFactStore } from "../../src/facts/store.ts";
import { type KvHarness, startKvHarness } from "../helpers/key-vault.ts";
import { approveWhenAsked, cleanKeyVaultFleet, newJobId, runKvJob } from "../helpers/key-vault-jobs.ts";
import { withRedis } from "../helpers/redis.ts";

const redis = await withRedis();
let h: KvHarness | undefined;
afterEach(async () => {
  await h?.stop();
  h = undefined;
});

const STEPS = [
  "preflight",
  "delete-managed-hsm",
  "verify-soft-deleted",
  "purge",
  "verify-purged",
  "delete-resource-group",
] as const;
const POOL = "mhsm-dr";
const RG = "rg-mhsm-dr";

/** The demo, clean, with mhsm-dr alone in its own resource group and (unless asked) no purge protection. */
function retireFleet(purgeProtection = false) {
  return (f: Fleet) => {
    cleanKeyVaultFleet(f);
    const dr = f.managedHsms.find((m) => m.name === POOL)!;
    dr.resourceId = dr.resourceId.replace("/resourceGroups/rg-mhsm/", `/resourceGroups/${RG}/`);
    dr.sim = { activated: true, purgeProtection, diagnostics: true, undeclaredKeys: [] };
  };
}

const fullParams = {
  target: POOL,
  securityDomainBackupConfirmed: true,
  keyBackupsConfirmed: true,
  purge: true,
  deleteResourceGroup: true,
  approvalPollMs: 20,
};

class SimulatedCrash extends Error {
  override name = "SimulatedCrash";
  readonly retryable = true;
}

function crashing(
  inner: CheckpointStore,
  step: string,
  when: "before-commit" | "after-commit",
): CheckpointStore {
  return {
    finishedSteps: (id) => inner.finishedSteps(id),
    async recordStepResult(jobId, stepId, result, meta) {
      if (stepId === step && when === "before-commit")
        throw new SimulatedCrash(`died before committing ${stepId}`);
      await inner.recordStepResult(jobId, stepId, result, meta);
      if (stepId === step && when === "after-commit")
        throw new SimulatedCrash(`died after committing ${stepId}`);
    },
  };
}

/** The changes the twin's ARM received, in order. */
function changes(x: KvHarness): string[] {
  return x.arm.requestLog
    .filter((r) => r.method !== "GET")
    .map(
      (r) =>
        `${r.method} ${r.path.replace(/^.*\/(managedHSMs|deletedManagedHSMs|resourcegroups)\//i, "$1/")}`,
    );
}

async function retire(
  jobId: string,
  params: Record<string, unknown>,
  checkpoints?: CheckpointStore,
  attempt = 1,
) {
  const approving = approveWhenAsked(redis.client(), jobId, POOL).catch(() => {});
  const { result, evidence } = await runKvJob(redis, h!.fleet, h!.access, mhsmRetire, {
    jobId,
    params,
    attempt,
    ...(checkpoints ? { checkpoints } : {}),
  });
  await approving;
  return { result, evidence };
}

function assertFinalState(x: KvHarness): void {
  expect(x.kv.poolState(POOL)).toEqual({ state: "purged", billed: false, purgeProtection: false });
  expect(x.arm.groupExists(RG)).toBe(false);
  // The other pool and its group are untouched.
  expect(x.kv.poolState("mhsm-pay").state).toBe("active");
  expect(x.arm.groupExists("rg-mhsm")).toBe(true);
}

const EXPECTED_CHANGES = [
  `DELETE managedHSMs/${POOL}`,
  `POST deletedManagedHSMs/${POOL}/purge`,
  `DELETE resourcegroups/${RG}`,
];

describe("mhsm-retire", () => {
  it("retires in order: approvals, delete (soft-deleted, billed), purge, then the emptied resource group", async () => {
    h = await startKvHarness(retireFleet());
    const { result, evidence } = await retire(newJobId("retire"), fullParams);
    expect(result.status).toBe("succeeded");
    expect(result.steps.map((s) => `${s.id} ${s.status}`)).toEqual(STEPS.map((s) => `${s} done`));
    const soft = result.steps.find((s) => s.id === "verify-soft-deleted")?.result as Record<string, unknown>;
    expect(soft).toMatchObject({ softDeleted: true, purgeProtectionEnabled: false, location: "northeurope" });
    assertFinalState(h);
    expect(changes(h)).toEqual(EXPECTED_CHANGES);
    // The state model: the pool's lifecycle, last seen purged by this job.
    const facts = await new RedisFactStore(redis.client()).read(
      `azure:${h.fleet.managedHsms[1]!.resourceId}`,
    );
    expect(facts.lifecycle).toMatchObject({
      status: "ok",
      summary: "purged (retired, no longer billed)",
      by: "mhsm-retire",
    });
    const approvals = (await evidence.records()).filter(
      (r) => r.kind === "note" && JSON.stringify(r.data).includes("approved"),
    );
    expect(approvals.length).toBeGreaterThan(0);
    expect(await evidence.verify()).toBe(true);
  });

  const cases = STEPS.flatMap((step) =>
    (["before-commit", "after-commit"] as const).map((when) => ({ step, when })),
  );
  for (const { step, when } of cases)
    it(`killed ${when} of '${step}' and resumed: same final state, same order of changes, none repeated`, async () => {
      h = await startKvHarness(retireFleet());
      const jobId = newJobId(`retire-crash-${step}-${when}`);
      const store = new RedisCheckpointStore(redis.client());
      const first = await retire(jobId, fullParams, crashing(store, step, when));
      expect(first.result.status).toBe("failed");
      expect(first.result.error?.type).toBe("SimulatedCrash");
      const second = await retire(jobId, fullParams, store, 2);
      expect(second.result.status).toBe("succeeded");
      const finished = await store.finishedSteps(jobId);
      expect([...finished.keys()]).toEqual([...STEPS]);
      assertFinalState(h);
      expect(changes(h)).toEqual(EXPECTED_CHANGES);
    });

  it("the resource group cannot go first: it is the last step, needs the purge, and is refused while it holds a pool", async () => {
    h = await startKvHarness(retireFleet());
    // The plan: the group's delete is the last step, after the purge and its proof.
    const steps = expandSteps(mhsmRetire.steps, mhsmRetire.params.parse(fullParams), h.fleet, {
      devices: [],
      clientHosts: [],
      azure: [POOL],
    }).map((s) => s.id);
    expect(steps).toEqual([...STEPS]);
    // Asking for the group without the purge is refused before the job runs.
    const noPurge = await runKvJob(redis, h.fleet, h.access, mhsmRetire, {
      jobId: newJobId("retire-rg-no-purge"),
      params: { ...fullParams, purge: false },
    });
    expect(noPurge.result.error?.type).toBe("ParamsInvalid");
    expect(noPurge.result.error?.message).toMatch(/deleteResourceGroup needs purge=true/);
    // The gateway refuses the group while it holds the active pool, and again while it holds it soft-deleted.
    const active = await h.access.arm.deleteResourceGroup(RG).catch((e: unknown) => e);
    expect(active).toBeInstanceOf(KeyVaultChangeRefused);
    expect((active as Error).message).toMatch(/active .*mhsm-dr/);
    await h.access.arm.deleteManagedHsm(h.fleet.managedHsms[1]!.resourceId);
    const softDeleted = await h.access.arm.deleteResourceGroup(RG).catch((e: unknown) => e);
    expect((softDeleted as Error).message).toMatch(/soft-deleted .*mhsm-dr/);
    expect(changes(h)).toEqual([`DELETE managedHSMs/${POOL}`]);
    expect(h.arm.groupExists(RG)).toBe(true);
  });

  it("a purge asked under purge protection is refused at preflight: nothing deleted, no approval asked", async () => {
    h = await startKvHarness(retireFleet(true));
    const jobId = newJobId("retire-protected");
    const { result } = await runKvJob(redis, h.fleet, h.access, mhsmRetire, {
      jobId,
      params: { ...fullParams, deleteResourceGroup: false },
    });
    expect(result.status).toBe("failed");
    expect(result.error).toMatchObject({ type: "RetireRefused", retryable: false });
    expect(result.error?.message).toMatch(/purge protection/);
    expect(changes(h)).toEqual([]);
    expect(h.kv.poolState(POOL)).toEqual({ state: "active", billed: true, purgeProtection: true });
  });

  it("without purge it stops at soft delete: the pool stays billed until its scheduled purge date", async () => {
    h = await startKvHarness(retireFleet(true));
    const { result } = await retire(newJobId("retire-soft"), {
      ...fullParams,
      purge: false,
      deleteResourceGroup: false,
    });
    expect(result.status).toBe("succeeded");
    expect(result.steps.map((s) => s.status)).toEqual(["done", "done", "done", "done", "done", "done"]);
    expect(h.kv.poolState(POOL)).toEqual({ state: "soft-deleted", billed: true, purgeProtection: true });
    expect(changes(h)).toEqual([`DELETE managedHSMs/${POOL}`]);
  });

  it("refuses a pool whose keys a declared application still uses, and one without backups or waiver", async () => {
    h = await startKvHarness(cleanKeyVaultFleet);
    const inUse = await runKvJob(redis, h.fleet, h.access, mhsmRetire, {
      jobId: newJobId("retire-in-use"),
      params: { ...fullParams, target: "mhsm-pay", purge: false, deleteResourceGroup: false },
    });
    expect(inUse.result.error?.message).toMatch(/still the key store of secret-server .*payments-api/);
    const noBackups = await runKvJob(redis, h.fleet, h.access, mhsmRetire, {
      jobId: newJobId("retire-no-backups"),
      params: { target: POOL },
    });
    expect(noBackups.result.error?.message).toMatch(/backups are not both confirmed/);
    expect(changes(h)).toEqual([]);
  });
});
