// `lunafleet jobs [--state s] [--limit n] [--json]`: the queue's jobs, newest first.
import type { Command } from "commander";
import type { JobProgress } from "../../queue/worker.ts";
import { connectCli } from "../connection.ts";
import { ago, dataDirOption, failCommand } from "../support.ts";

const STATES = ["active", "waiting", "delayed", "prioritized", "completed", "failed"] as const;
type State = (typeof STATES)[number];

export function registerJobsCommand(program: Command): void {
  program
    .command("jobs")
    .description("list jobs (newest first)")
    .option("--state <state>", `only jobs in this state (${STATES.join(", ")})`)
    .option("--limit <n>", "at most this many", Number, 50)
    .option("--json", "print JSON")
    .option(...dataDirOption)
    .action(async (opts: { state?: string; limit: number; json?: boolean; dataDir?: string }) => {
      try {
        if (opts.state && !(STATES as readonly string[]).includes(opts.state)) {
          console.error(`lunafleet jobs: unknown state '${opts.state}' (one of ${STATES.join(", ")})`);
          process.exitCode = 2;
          return;
        }
        const conn = await connectCli(opts.dataDir ? { dataDir: opts.dataDir } : {});
        try {
          const states: State[] = opts.state ? [opts.state as State] : [...STATES];
          const rows = [];
          for (const state of states) {
            const jobs = await conn.queue.getJobs([state], 0, Math.max(0, opts.limit - 1), false);
            for (const j of jobs) {
              const p = j.progress as Partial<JobProgress> | number;
              rows.push({
                id: j.id ?? "?",
                state,
                runbook: j.data.runbook,
                target: typeof j.data.params?.target === "string" ? j.data.params.target : "-",
                progress: typeof p === "object" && p?.total ? `${p.done ?? 0}/${p.total}` : "-",
                actor: j.data.actor,
                createdAt: j.timestamp,
                finishedAt: j.finishedOn,
                ...(j.failedReason ? { failedReason: j.failedReason } : {}),
              });
            }
          }
          rows.sort((a, b) => b.createdAt - a.createdAt);
          const shown = rows.slice(0, opts.limit);
          if (opts.json) {
            console.log(JSON.stringify(shown, null, 2));
            return;
          }
          if (shown.length === 0) {
            console.log("no jobs");
            return;
          }
          const table = [
            ["ID", "STATE", "RUNBOOK", "TARGET", "STEPS", "CREATED", "ACTOR"],
            ...shown.map((r) => [r.id, r.state, r.runbook, r.target, r.progress, ago(r.createdAt), r.actor]),
          ];
          const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => (r[i] ?? "").length)));
          for (const r of table)
            console.log(
              r
                .map((c, i) => c.padEnd(widths[i] ?? 0))
                .join("  ")
                .trimEnd(),
            );
        } finally {
          await conn.close();
        }
      } catch (err) {
        failCommand("jobs", err);
      }
    });
}
