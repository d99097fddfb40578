// Running the Managed HSM runbooks as a worker does: the real engine, real Redis (evidence, checkpoints, approvals,
// locks), the unchanged Azure SDK clients over HTTPS to the Key Vault twin. These runbooks open no shell: the shell
// port refuses, so a runbook that reached for a device would fail the test.
import { afterEach } from "vitest";
import type { KvFinding } from "../../runbooks/lib/key-vault.ts";
import { deviceLockResource, getDevice } from "../../src/config/model.ts";
import type { Fleet } from "../../src/config/schema.ts";
import { approvalsStore } from "../../src/coord/approvals.ts";
import { acquireDeviceLocks } from "../../src/coord/locks.ts";
import { signedApprovalsStore } from "../../src/coord/signed-approvals.ts";
import { admitJob } from "../../src/engine/admit.ts";
import { type CheckpointStore, RedisCheckpointStore } from "../../src/engine/checkpoints.ts";
import type { KeyVaultPort } from "../../src/engine/key-vault-ports.ts";
import type { EvidenceSink, ShellPort } from "../../src/engine/ports.ts";
import type { Runbook } from "../../src/engine/runbook.ts";
import { type JobResult, runJob } from "../../src/engine/runner.ts";
import { RedisFactStore } from "../../src/facts/store.ts";
import type { RedisClient } from "../../src/redis/client.ts";
import { approvalAsked } from "./approvals.ts";
import { JobEvidence } from "./engine.ts";
import { type KvHarness, startKvHarness } from "./key-vault.ts";
import type { TestRedis } from "./redis.ts";
import { demoApprovers, signedApprove, withDemoApprovers } from "./ssh-signing.ts";

/** The admitted plan's digest, or a placeholder when the parameters do not admit (the runner refuses the job). */
function planDigestOf(runbook: Runbook, params: unknown, fleet: Fleet): string {
  try {
    return admitJob(runbook, params, fleet).planDigest;
  } catch {
    return "0".repeat(64);
  }
}

export const noShells: ShellPort = {
  lunash: async (d) => {
    throw new Error(`test: a Managed HSM runbook reached for lunash on ${d}`);
  },
  lunacm: async (h) => {
    throw new Error(`test: a Managed HSM runbook reached for lunacm on ${h}`);
  },
  hostShell: async (h) => {
    throw new Error(`test: a Managed HSM runbook reached for the shell of ${h}`);
  },
};

export interface KvJobOptions {
  jobId: string;
  params: Record<string, unknown>;
  attempt?: number;
  checkpoints?: CheckpointStore;
  evidence?: EvidenceSink;
  approvalPollMs?: number;
}

let counter = 0;
export const newJobId = (prefix: string) => `${prefix}-${process.pid}-${++counter}`;

/** One attempt of a job: its locks (devices, hosts, `azure:<pool>`), the engine, then release. */
export async function runKvJob(
  redis: TestRedis,
  fleet: Fleet,
  keyVault: KeyVaultPort,
  runbook: Runbook,
  opts: KvJobOptions,
): Promise<{ result: JobResult; evidence: JobEvidence }> {
  const client = redis.client();
  // A job whose parameters do not parse runs without locks: the engine refuses it and records why.
  const parsed = runbook.params.safeParse(opts.params);
  const targets = parsed.success
    ? runbook.targets(parsed.data, fleet)
    : { devices: [], clientHosts: [], azure: [] };
  const resources = [
    ...targets.devices.map((d) => deviceLockResource(getDevice(fleet, d))),
    ...(targets.azure ?? []).map((n) => `azure:${n}`),
  ];
  const locks =
    resources.length > 0
      ? await acquireDeviceLocks(client, resources, { owner: opts.jobId, ttlMs: 10_000, waitMs: 15_000 })
      : undefined;
  const evidence = new JobEvidence(redis, opts.jobId);
  try {
    const result = await runJob({
      runbook,
      params: opts.params,
      jobId: opts.jobId,
      fleet,
      shells: noShells,
      evidence: opts.evidence ?? evidence,
      checkpoints: opts.checkpoints ?? new RedisCheckpointStore(client),
      ...(locks ? { locks } : {}),
      attempt: opts.attempt ?? 1,
      actor: "test-operator",
      keyVault,
      facts: new RedisFactStore(client),
      // As a worker does: requests carry the requester, granted ones are re-verified against the admitted plan.
      approvals: signedApprovalsStore(
        approvalsStore(client),
        {
          jobId: opts.jobId,
          runbook: runbook.name,
          planDigest: planDigestOf(runbook, opts.params, fleet),
          requester: "test-operator",
        },
        withDemoApprovers(fleet),
        (opts.evidence ?? evidence) as never,
      ),
      approvalPollMs: opts.approvalPollMs ?? 20,
    });
    return { result, evidence };
  } finally {
    await locks?.release().catch(() => {});
  }
}

/** Operators answering once the job asks, typing the pool's name as confirmation. */
export async function approveWhenAsked(
  redis: RedisClient,
  jobId: string,
  confirmation: string,
): Promise<void> {
  await approvalAsked(redis, jobId);
  const verifierFleet = {
    identity: { principals: demoApprovers() },
    approvals: { required: 2, expiresMinutes: 60 },
  };
  for (const principal of ["alice", "bob"] as const)
    await signedApprove(redis, jobId, principal, verifierFleet as never, { confirmation }).catch(() => {});
}

/** The demo fleet without its planted Managed HSM / Key Vault problems. */
export function cleanKeyVaultFleet(f: Fleet): void {
  for (const h of f.managedHsms) delete h.sim;
  for (const c of f.cmkConsumers) delete c.sim;
  const kek = f.keys.find((k) => k.name === "payments-kek")!;
  kek.sim = { disabled: false, versions: 2, rotationPolicy: { rotateAfter: "P80D" } };
  f.keyVaults.find((v) => v.name === "kv-app-std")!.keys = [
    { name: "app-dek", keyType: "RSA", fipsLevel: 1 },
  ];
}

/**
 * A test file's way to run Key Vault runbooks: each test gets its own twin (started on first use, stopped after the
 * test), so a test that edits the fleet or the twin's state cannot leak into the next.
 */
export function useKvJobs(redis: TestRedis): {
  run(
    runbook: Runbook,
    params: Record<string, unknown>,
    edit?: (f: Fleet) => void,
  ): Promise<{ result: JobResult; evidence: JobEvidence }>;
  /** Start this test's twin now (to plant a fault before the job); stopped after the test. */
  start(edit?: (f: Fleet) => void): Promise<KvHarness>;
  /** The harness of the current test (after its first run). */
  readonly harness: KvHarness;
} {
  let h: KvHarness | undefined;
  afterEach(async () => {
    await h?.stop();
    h = undefined;
  });
  return {
    async start(edit) {
      if (h) throw new Error("this test's Key Vault twin is already started");
      h = await startKvHarness(edit);
      return h;
    },
    async run(runbook, params, edit) {
      h ??= await startKvHarness(edit);
      return runKvJob(redis, h.fleet, h.access, runbook, { jobId: newJobId(runbook.name), params });
    },
    get harness() {
      if (!h) throw new Error("no Key Vault twin in this test yet (run a job first)");
      return h;
    },
  };
}

/** The findings a runbook left in its findings step, as "subject check". */
export function findingChecks(result: { steps: { id: string; result?: unknown }[] }, step: string): string[] {
  const r = result.steps.find((s) => s.id === step)?.result as { findings: KvFinding[] };
  return r.findings.map((f) => `${f.subject} ${f.check}`).sort();
}
