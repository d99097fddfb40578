// `lunafleet jobs [--state s] [--limit n] [--json]`: the queue's jobs, newest first, each with its outcome in the
// words every command uses (src/queue/job-outcome.ts): queued, delayed, running, awaiting-approval, succeeded,
// succeeded-with-findings, nothing-to-do, failed, cancelled. Rows come from the daemon client (src/api/ops/jobs.ts
// over the API or on the daemon host); this module only renders them.
import type { Command } from "commander";
import { JOB_STATE_WORDS, type JobStateFilter } from "../../api/ops/jobs.ts";
import { ago, dataDirOption, integerOption, withDaemonClient } from "../support.ts";

export function registerJobsCommand(program: Command): void {
  program
    .command("jobs")
    .description("list jobs (newest first) with their outcome")
    .option("--state <word>", `only jobs with this state or outcome (${JOB_STATE_WORDS.join(", ")})`)
    .option("--limit <n>", "at most this many (1-10000)", integerOption("--limit", 1, 10_000), 50)
    .option("--json", "print JSON")
    .option(...dataDirOption)
    .action(async (opts: { state?: string; limit: number; json?: boolean; dataDir?: string }) => {
      if (opts.state && !(JOB_STATE_WORDS as readonly string[]).includes(opts.state)) {
        console.error(`lunafleet jobs: unknown state '${opts.state}' (one of ${JOB_STATE_WORDS.join(", ")})`);
        process.exitCode = 2;
        return;
      }
      await withDaemonClient("jobs", opts, async (client) => {
        const rows = await client.jobs({
          state: opts.state as JobStateFilter | undefined,
          limit: opts.limit,
        });
        if (opts.json) {
          console.log(JSON.stringify(rows, null, 2));
          return;
        }
        if (rows.length === 0) {
          console.log(opts.state ? `no ${opts.state} jobs` : "no jobs");
          return;
        }
        const table = [
          ["ID", "STATE", "RUNBOOK", "TARGET", "STEPS", "CREATED", "ACTOR"],
          ...rows.map((r) => [r.id, r.state, r.runbook, r.target, r.progress, ago(r.createdAt), r.actor]),
        ];
        const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => (r[i] ?? "").length)));
        for (const r of table)
          console.log(
            r
              .map((c, i) => c.padEnd(widths[i] ?? 0))
              .join("  ")
              .trimEnd(),
          );
        return undefined;
      });
    });
}
