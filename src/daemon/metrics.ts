// Prometheus metrics of one daemon (prom-client, on a private registry): jobs by state and by runbook, step
// durations, device lock waits, SSH connections and shell sessions.
import type { Queue } from "bullmq";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { JobData } from "../queue/jobs.ts";
import type { WorkerMetrics } from "../queue/worker.ts";

const JOB_STATES = ["waiting", "active", "delayed", "prioritized", "completed", "failed"] as const;

export interface DaemonMetrics extends WorkerMetrics {
  registry: Registry;
}

export function createMetrics(queue: Queue<JobData>): DaemonMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "lunafleet_process_" });
  new Gauge({
    name: "lunafleet_jobs",
    help: "Jobs in the queue by state",
    labelNames: ["state"],
    registers: [registry],
    async collect() {
      const counts = await queue.getJobCounts(...JOB_STATES);
      for (const s of JOB_STATES) this.set({ state: s }, counts[s] ?? 0);
    },
  });
  const active = new Gauge({
    name: "lunafleet_jobs_running",
    help: "Jobs running in this daemon by runbook",
    labelNames: ["runbook"],
    registers: [registry],
  });
  const finished = new Counter({
    name: "lunafleet_jobs_finished_total",
    help: "Job attempts finished in this daemon by runbook and outcome (succeeded, succeeded-with-findings, nothing-to-do, failed, cancelled; error = the worker itself failed; ended-before = a delivery of a job that had already ended, which ran nothing)",
    labelNames: ["runbook", "outcome"],
    registers: [registry],
  });
  const steps = new Histogram({
    name: "lunafleet_step_duration_seconds",
    help: "Duration of finished runbook steps",
    labelNames: ["runbook", "step"],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  });
  const lockWait = new Histogram({
    name: "lunafleet_device_lock_wait_seconds",
    help: "Time a job waited for its device locks (acquired=false: gave up and went back to the queue)",
    labelNames: ["acquired"],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const ssh = new Gauge({
    name: "lunafleet_ssh_connections",
    help: "Open SSH connections in the worker's pool",
    registers: [registry],
  });
  const shells = new Gauge({
    name: "lunafleet_shell_sessions",
    help: "Open interactive shells (lunash, lunacm, client OS shells) of running jobs",
    registers: [registry],
  });
  return {
    registry,
    lockWait: (seconds, acquired) => lockWait.observe({ acquired: String(acquired) }, seconds),
    stepFinished: (runbook, step, seconds) => steps.observe({ runbook, step }, Math.max(0, seconds)),
    jobStarted: (runbook) => active.inc({ runbook }),
    jobFinished: (runbook, outcome) => {
      active.dec({ runbook });
      finished.inc({ runbook, outcome });
    },
    sshConnections: (delta) => ssh.inc(delta),
    shellChannels: (delta) => shells.inc(delta),
  };
}
