// What a job amounts to, in the words every reader uses (jobs, job, run --wait, /metrics, report): a job that ran to
// its end is `succeeded`, `succeeded-with-findings` (it did its work and saw something an operator must look at) or
// `nothing-to-do` (nothing needed changing); it may also end `failed` or `cancelled`, or wait `awaiting-approval`.
// "Never green by default": a runbook whose purpose was not reached (ha-recover leaving a member down) says `failed`
// through its verdict, even though every step ran.
import type { Json } from "./json.ts";
import type { JobTargets, StepRef, StepResult } from "./runbook.ts";

export const JOB_OUTCOMES = [
  "succeeded",
  "succeeded-with-findings",
  "nothing-to-do",
  "failed",
  "cancelled",
  "awaiting-approval",
] as const;
export type JobOutcome = (typeof JOB_OUTCOMES)[number];

/** What a runbook's verdict may say about a job whose steps all finished. */
export type VerdictOutcome = "succeeded" | "succeeded-with-findings" | "nothing-to-do" | "failed";

export interface Verdict {
  outcome: VerdictOutcome;
  /** One line per thing an operator should look at (findings), or why the goal was not reached (failed). */
  findings: string[];
}

/** What a verdict reads: the job's parameters, targets and the results of its finished steps. */
export interface VerdictView<P> {
  params: P;
  targets: JobTargets;
  /** A finished step's result (`stepId`, or `stepId` + forEach target); undefined if it did not run. */
  result(stepId: string, target?: string): Json | undefined;
  /** The same, typed by the step's own run() (see StepResult). */
  resultOf<S extends StepRef>(step: S, target?: string): StepResult<S> | undefined;
}

/** Findings make the verdict; an empty list is a plain success. */
export function findingsVerdict(findings: readonly string[]): Verdict {
  return findings.length > 0
    ? { outcome: "succeeded-with-findings", findings: [...findings] }
    : { outcome: "succeeded", findings: [] };
}

/** A job's verdict said its goal was not reached although every step ran: failed, never retried (nothing to resume). */
export const GOAL_NOT_MET = "GoalNotMet";
