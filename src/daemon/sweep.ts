// A fleet sweep: tcp-check and patch-verify on every device, one job per (runbook, device) so devices are checked
// in parallel; then wait for all of them. What `npm start` runs first, and what the report is built from.
import type { Queue } from "bullmq";
import type { Fleet } from "../config/schema.ts";
import { type JobData, submitJob, submitJobs } from "../queue/jobs.ts";

export const SWEEP_RUNBOOKS = ["tcp-check", "patch-verify"] as const;

export interface SweepJob {
  jobId: string;
  runbook: string;
  device: string;
}

export async function submitSweep(
  queue: Queue<JobData>,
  fleet: Fleet,
  actor = "operator:sweep",
): Promise<SweepJob[]> {
  // Runbook by runbook, not device by device: both jobs of a device take that device's lock, so submitted side by
  // side they would start together and one would sit in a worker slot waiting for the other.
  const wanted = SWEEP_RUNBOOKS.flatMap((runbook) =>
    fleet.devices.map((device) => ({ runbook, device: device.name })),
  );
  const submitted = await submitJobs(
    queue,
    wanted.map((w) => ({ fleet, runbook: w.runbook, target: w.device, actor })),
  );
  return wanted.map((w, i) => ({ jobId: submitted[i]!.jobId, ...w }));
}

export interface FinishedJob extends SweepJob {
  state: "completed" | "failed" | "missing";
  reason?: string;
}

/** Poll until every job has completed or failed for good; `onFinished` hears each one as it ends. */
export async function waitForJobs(
  queue: Queue<JobData>,
  jobs: SweepJob[],
  opts: { timeoutMs?: number; pollMs?: number; onFinished?: (j: FinishedJob) => void } = {},
): Promise<FinishedJob[]> {
  const deadline = Date.now() + (opts.timeoutMs ?? 300_000);
  const pending = new Map(jobs.map((j) => [j.jobId, j]));
  const done: FinishedJob[] = [];
  while (pending.size > 0) {
    for (const j of [...pending.values()]) {
      const job = await queue.getJob(j.jobId);
      if (!job) {
        pending.delete(j.jobId);
        const f: FinishedJob = { ...j, state: "missing" };
        done.push(f);
        opts.onFinished?.(f);
        continue;
      }
      const state = await job.getState();
      if (state === "completed" || state === "failed") {
        pending.delete(j.jobId);
        const f: FinishedJob = {
          ...j,
          state,
          ...(state === "failed" && job.failedReason ? { reason: job.failedReason } : {}),
        };
        done.push(f);
        opts.onFinished?.(f);
      }
    }
    if (pending.size === 0) break;
    if (Date.now() > deadline)
      throw new Error(`sweep: ${pending.size} job(s) still unfinished after ${opts.timeoutMs ?? 300_000} ms`);
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 150));
  }
  return done;
}

/**
 * The Managed HSM / Key Vault sweep: mhsm-audit and cmk-health over the fleet's pools, vault-placement over its
 * vaults (each one job on `fleet`); nothing when the fleet declares none. Findings only, never changes.
 */
export async function submitKeyVaultSweep(
  queue: Queue<JobData>,
  fleet: Fleet,
  actor = "operator:sweep",
): Promise<SweepJob[]> {
  const runbooks = [
    ...(fleet.managedHsms.length > 0 ? ["mhsm-audit"] : []),
    ...(fleet.cmkConsumers.length > 0 ? ["cmk-health"] : []),
    ...(fleet.keyVaults.length > 0 ? ["vault-placement"] : []),
  ];
  const jobs: SweepJob[] = [];
  for (const runbook of runbooks) {
    const { jobId } = await submitJob(queue, { fleet, runbook, target: "fleet", actor });
    jobs.push({ jobId, runbook, device: "fleet" });
  }
  return jobs;
}
