// The exit codes of every `lunafleet` command, in one place (README "Exit codes" lists the same table):
//
//   0  done: succeeded, or nothing to do
//   1  failed, or refused (a request, a decision, a check that found errors)
//   2  usage: a missing or malformed argument, an unknown option or value
//   3  the daemon (its Redis) is not reachable
//   4  `run --wait` / `job --wait` stopped waiting; the job goes on
//   5  succeeded with findings: it did its work and saw something an operator must look at
//   6  cancelled
import type { JobStateWord } from "../queue/job-outcome.ts";

export const EXIT = {
  ok: 0,
  failed: 1,
  usage: 2,
  daemonDown: 3,
  stillRunning: 4,
  findings: 5,
  cancelled: 6,
} as const;

/** The exit code of a job's outcome (`run --wait`, `job --wait`); undefined for a job that has not ended. */
export function exitCodeOfOutcome(outcome: JobStateWord): number | undefined {
  switch (outcome) {
    case "succeeded":
    case "nothing-to-do":
      return EXIT.ok;
    case "succeeded-with-findings":
      return EXIT.findings;
    case "failed":
    case "unknown":
      return EXIT.failed;
    case "cancelled":
      return EXIT.cancelled;
    default:
      return undefined;
  }
}
