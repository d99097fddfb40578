// Admission: a job's parameters parsed by its runbook's schema, its targets resolved and its steps expanded, once.
// The worker admits a job before it takes any lock (the targets say which), hands the admitted job to the runner
// (which does not compute it again) and `lunafleet plan` prints a description of the same object: plan, locks and
// run cannot disagree.
import { createHash } from "node:crypto";
import type { z } from "zod";
import type { Fleet } from "../config/schema.ts";
import { ParamsInvalid } from "./errors.ts";
import { type ExpandedStep, expandSteps, type JobTargets, type Runbook } from "./runbook.ts";

export interface AdmittedJob<S extends z.ZodType = z.ZodType> {
  runbook: Runbook<S>;
  /** The parameters as the runbook's schema parsed them (defaults filled in). */
  params: z.output<S>;
  targets: JobTargets;
  steps: ExpandedStep<z.output<S>>[];
  /** SHA-256 over the runbook, parameters, targets and every planned command: what an approval is given for. */
  planDigest: string;
}

/** Parse, resolve and expand; throws ParamsInvalid, UnknownTargetError or the runbook's own refusal. */
export function admitJob<S extends z.ZodType>(
  runbook: Runbook<S>,
  params: unknown,
  fleet: Fleet,
): AdmittedJob<S> {
  const parsed = runbook.params.safeParse(params);
  if (!parsed.success) {
    // Paths and reasons only: a parameter value may be something an operator should not have typed.
    const issues = parsed.error.issues.map((i) => `${i.path.join(".") || "(params)"}: ${i.message}`);
    throw new ParamsInvalid(`runbook '${runbook.name}': invalid parameters: ${issues.join("; ")}`);
  }
  const targets = runbook.targets(parsed.data, fleet);
  const steps = expandSteps(runbook.steps, parsed.data, fleet, targets);
  const planDigest = createHash("sha256")
    .update(
      JSON.stringify({
        runbook: runbook.name,
        params: parsed.data,
        targets,
        steps: steps.map((s) => ({ id: s.id, kind: s.kind, commands: s.commands })),
      }),
    )
    .digest("hex");
  return { runbook, params: parsed.data, targets, steps, planDigest };
}
