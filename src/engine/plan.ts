// The dry run: the ordered steps of a job with the exact commands each will send, computed from the runbook, the
// parameters and the fleet file alone. Nothing connects; `lunafleet plan` prints renderPlan()'s text.
import type { z } from "zod";
import type { Fleet } from "../config/schema.ts";
import { type AdmittedJob, admitJob } from "./admit.ts";
import { toRedactedJson } from "./json.ts";
import type { JobTargets, PlannedCommand, Runbook, StepKind } from "./runbook.ts";

export interface PlannedStep {
  index: number;
  id: string;
  title: string;
  kind: StepKind;
  target?: string;
  commands: PlannedCommand[];
}

export interface JobPlan {
  runbook: string;
  description: string;
  params: unknown;
  /** What the queue locks before step 1. */
  targets: JobTargets;
  steps: PlannedStep[];
  /** Whether any step changes a device or resource. */
  changes: boolean;
}

export function planJob<S extends z.ZodType>(runbook: Runbook<S>, params: unknown, fleet: Fleet): JobPlan {
  return describeAdmitted(admitJob(runbook, params, fleet));
}

/** The plan of an admitted job (what the worker runs), without the step functions. */
export function describeAdmitted<S extends z.ZodType>(job: AdmittedJob<S>): JobPlan {
  const steps = job.steps.map((s, i) => ({
    index: i + 1,
    id: s.id,
    title: s.title,
    kind: s.kind,
    ...(s.target !== undefined ? { target: s.target } : {}),
    commands: s.commands,
  }));
  return {
    runbook: job.runbook.name,
    description: job.runbook.description,
    params: job.params,
    targets: job.targets,
    steps,
    changes: steps.some((s) => s.kind === "change"),
  };
}

const VIA_LABEL: Record<PlannedCommand["via"], string> = {
  lunash: "lunash",
  lunacm: "lunacm",
  host: "shell",
  tcp: "tcp",
  tls: "tls",
  azure: "arm",
  approval: "approval",
  sftp: "sftp",
};

/**
 * The targets the worker locks for a job (src/queue/process-job.ts, lock): its devices, client hosts and Managed
 * HSMs. None: it locks its own id instead.
 */
export function lockedTargets(targets: JobPlan["targets"]): string[] {
  return [...targets.devices, ...targets.clientHosts, ...(targets.azure ?? [])];
}

/** Human-readable plan: header, locks, then one block per step with its commands. */
export function renderPlan(plan: JobPlan): string {
  const out: string[] = [];
  out.push(`Plan for ${plan.runbook}: ${plan.description}`);
  out.push(`Parameters: ${JSON.stringify(toRedactedJson(plan.params))}`);
  out.push(`Locks devices: ${plan.targets.devices.join(", ") || "none"}`);
  out.push(`Client hosts: ${plan.targets.clientHosts.join(", ") || "none"}`);
  if (plan.targets.azure?.length) out.push(`Locks Managed HSMs: ${plan.targets.azure.join(", ")}`);
  if (lockedTargets(plan.targets).length === 0)
    out.push(
      "Locks no target: the job holds a lock of its own id, so two deliveries of it never run side by side.",
    );
  out.push(
    plan.changes
      ? "This job CHANGES devices or resources (steps marked [change])."
      : "Read-only: no step changes anything.",
  );
  out.push("");
  const width = String(plan.steps.length).length;
  for (const step of plan.steps) {
    out.push(`${String(step.index).padStart(width)}. [${step.kind}] ${step.id} — ${step.title}`);
    const pad = " ".repeat(width + 2);
    if (step.commands.length === 0) out.push(`${pad}  (no device commands: works on earlier results)`);
    for (const c of step.commands) out.push(`${pad}  ${VIA_LABEL[c.via]} ${c.on}> ${c.command}`);
  }
  out.push("");
  out.push("Nothing was sent: this is a plan.");
  return out.join("\n");
}
