// Shared wiring for the deprovision tests (in-process and the SIGKILLed child): the real engine, real SSH sessions to
// the twin, the unchanged Azure SDK against the twin's ARM (real HTTPS), the real login guard and its sanctioned
// zeroize, real Redis approvals, locks, checkpoints and evidence. Nothing here is a mock.

import type { AccessToken } from "@azure/core-auth";
import { deprovision } from "../../runbooks/deprovision.ts";
import { createAzureClients, DedicatedHsmGateway } from "../../src/azure/index.ts";
import { deviceLockResource, getDevice } from "../../src/config/model.ts";
import type { Fleet } from "../../src/config/schema.ts";
import { approvalsPort } from "../../src/coord/approvals.ts";
import { acquireDeviceLocks } from "../../src/coord/locks.ts";
import { signedApprovalsStore } from "../../src/coord/signed-approvals.ts";
import { admitJob } from "../../src/engine/admit.ts";
import { type CheckpointStore, RedisCheckpointStore } from "../../src/engine/checkpoints.ts";
import { type JobResult, runJob } from "../../src/engine/runner.ts";
import { EvidenceLog } from "../../src/evidence/index.ts";
import { RedisFactStore } from "../../src/facts/store.ts";
import { LoginGuard } from "../../src/guard/guard.ts";
import { jobGuard } from "../../src/guard/job-guard.ts";
import type { RedisClient } from "../../src/redis/client.ts";
import type { Twin } from "../../src/sim/twin.ts";
import { approvalAsked } from "./approvals.ts";
import { type FleetShells, fleetShells } from "./fleet-shells.ts";
import { demoApprovers, signedApprove, withDemoApprovers } from "./ssh-signing.ts";

export interface ArmEndpoint {
  endpoint: string;
  caPem: string;
  subscriptionId: string;
}

/** SSH sessions to the twin (closed by close()) and the Azure gateway to its ARM. */
export interface Connections extends FleetShells {
  azure: DedicatedHsmGateway;
}

const credential = {
  getToken: async (): Promise<AccessToken> => ({
    token: "twin-token",
    expiresOnTimestamp: Date.now() + 3_600_000,
  }),
};

export function connect(fleet: Fleet, arm: ArmEndpoint): Connections {
  const azure = new DedicatedHsmGateway(
    createAzureClients({
      subscriptionId: arm.subscriptionId,
      endpoint: arm.endpoint,
      tokenScope: "https://management.azure.com/.default",
      pollIntervalMs: 5,
      credential,
      tls: { ca: arm.caPem },
      retryOptions: { maxRetries: 0 },
    }),
  );
  return { ...fleetShells(fleet), azure };
}

/** Take a device's partitions out of every HA group on every twin client host (what an operator does first). */
export function removeFromHaGroups(twin: Twin, device: string): void {
  for (const c of twin.clientHosts.values())
    for (const g of c.host.haGroups) {
      const keep = g.members.filter((m) => m.device !== device);
      g.members.splice(0, g.members.length, ...keep);
    }
}

export function hsmResourceId(fleet: Fleet, device: string): string {
  const id = fleet.devices.find((d) => d.name === device)?.azure?.resourceId;
  if (!id) throw new Error(`${device} has no azure resource id`);
  return id;
}

/** Fails the checkpoint write of one step, before or after it is committed: a worker dying at that point. */
export class SimulatedCrash extends Error {
  override name = "SimulatedCrash";
  readonly retryable = true;
}

export function crashingCheckpoints(
  inner: CheckpointStore,
  at: { step: string; when: "before-commit" | "after-commit" },
  onCrash: () => void = () => {},
): CheckpointStore {
  return {
    finishedSteps: (jobId) => inner.finishedSteps(jobId),
    async recordStepResult(jobId, stepId, result, meta) {
      if (stepId === at.step && at.when === "before-commit") {
        onCrash();
        throw new SimulatedCrash(`worker died before committing '${stepId}'`);
      }
      await inner.recordStepResult(jobId, stepId, result, meta);
      if (stepId === at.step && at.when === "after-commit") {
        onCrash();
        throw new SimulatedCrash(`worker died after committing '${stepId}'`);
      }
    },
  };
}

export interface RunOptions {
  jobId: string;
  params: Record<string, unknown>;
  attempt?: number;
  checkpoints?: CheckpointStore;
  signal?: AbortSignal;
  lockTtlMs?: number;
}

/** One attempt of a deprovision job, as a worker runs it: locks first, then the engine, then release. */
export async function runDeprovision(
  conn: Connections,
  fleet: Fleet,
  redis: RedisClient,
  dataDir: string,
  opts: RunOptions,
): Promise<JobResult> {
  const device = String(opts.params.target);
  const resources = [
    deviceLockResource(getDevice(fleet, device)),
    ...fleet.clientHosts.map((h) => `client:${h.name}`),
  ];
  const locks = await acquireDeviceLocks(redis, resources, {
    owner: opts.jobId,
    ttlMs: opts.lockTtlMs ?? 10_000,
    waitMs: 15_000,
  });
  const evidence = await EvidenceLog.open(redis, dataDir, opts.jobId);
  // As a worker runs it: the demo approvers registered, approvals re-verified against the admitted plan.
  const signedFleet = withDemoApprovers(fleet);
  let facts: { jobId: string; runbook: string; planDigest: string; requester: string } | undefined;
  try {
    facts = {
      jobId: opts.jobId,
      runbook: "deprovision",
      planDigest: admitJob(deprovision, opts.params, signedFleet).planDigest,
      requester: "test-operator",
    };
  } catch {
    facts = undefined; // parameters that do not admit: the runner refuses the job before step 1
  }
  const guard = jobGuard({
    guard: new LoginGuard(redis),
    shells: conn.shells,
    fleet: signedFleet,
    jobId: opts.jobId,
    locks,
    evidence,
    actor: "test-operator",
    redis,
    ...(facts ? { approvalFacts: facts } : {}),
  });
  try {
    return await runJob({
      runbook: deprovision,
      params: opts.params,
      jobId: opts.jobId,
      fleet: signedFleet,
      shells: conn.shells,
      files: conn.files,
      evidence,
      checkpoints: opts.checkpoints ?? new RedisCheckpointStore(redis),
      locks,
      attempt: opts.attempt ?? 1,
      actor: "test-operator",
      azure: conn.azure,
      facts: new RedisFactStore(redis),
      guard,
      approvals: facts
        ? signedApprovalsStore(approvalsPort(redis), facts, signedFleet, evidence)
        : approvalsPort(redis),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
  } finally {
    await locks.release().catch(() => {});
  }
}

/** Operators answering once the job asks: each entry approves in turn (refusals are swallowed, they are recorded). */
export function approveWhenAsked(
  redis: RedisClient,
  jobId: string,
  decisions: { principal: string; confirmation: string }[],
): Promise<void> {
  return (async () => {
    await approvalAsked(redis, jobId);
    // Each signs the job's statement with its demo key (lunafleet approve --key); a wrong confirmation is typed as such.
    const verifierFleet = {
      identity: { principals: demoApprovers() },
      approvals: { required: 2, expiresMinutes: 60 },
    };
    for (const d of decisions)
      await signedApprove(redis, jobId, d.principal as "alice" | "bob" | "carol", verifierFleet as never, {
        confirmation: d.confirmation,
      }).catch(() => {});
  })();
}
