// When a step fails, what it was to observe must not keep showing an older green value: its declared facts it did
// not record, and those of the later steps on the same target (which will not run now), become `check-failed`.
import type { FactRef } from "../facts/model.ts";
import type { ExpandedStep } from "./runbook.ts";

/** The failed step's declared facts it did not record, and those of the later steps on the same target. */
export function uncheckedFacts<P>(
  plan: readonly ExpandedStep<P>[],
  failedAt: number,
  observed: Set<string>,
): FactRef[] {
  const failed = plan[failedAt]!;
  const refs = [
    ...failed.observes.filter((f) => !observed.has(`${f.subject}#${f.fact}`)),
    ...plan
      .slice(failedAt + 1)
      .filter((s) => s.target !== undefined && s.target === failed.target)
      .flatMap((s) => s.observes),
  ];
  const seen = new Set<string>();
  return refs.filter((f) => {
    const key = `${f.subject}#${f.fact}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
