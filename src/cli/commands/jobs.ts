// `lunafleet jobs [--state s] [--limit n] [--json]`: the queue's jobs, newest first, each with its outcome in the
// words every command uses (src/queue/job-outcome.ts): queued, delayed, running, awaiting-approval, succeeded,
// succeeded-with-findings, nothing-to-do, failed, cancelled.
import type { Command } from "commander";
import { JOB_OUTCOMES } from "../../engine/outcome.ts";
import { jobOutcome } from "../../queue/job-outcome.ts";
import type { JobProgress } from "../../queue/worker.ts";
import { connectCli } from "../connection.ts";
import { ago, dataDirOption, failCommand, integerOption } from "../support.ts";

const QUEUE_STATES = ["active", "waiting", "delayed", "prioritized", "completed", "failed"] as const;
type QueueState = (typeof QUEUE_STATES)[number];
const WORDS = ["queued", "delayed", "running", ...JOB_OUTCOMES] as const;

/** The queue states a shown word can come from (so only those lists are read). */
function queueStatesOf(word: string): QueueState[] {
  switch (word) {
    case "queued":
      return ["waiting", "prioritized"];
    case "delayed":
      return ["delayed"];
    case "running":
    case "awaiting-approval":
      return ["active"];
    case "failed":
    case "cancelled":
      return ["failed"];
    default:
      return ["completed"];
  }
}

export function registerJobsCommand(program: Command): void {
  program
    .command("jobs")
    .description("list jobs (newest first) with their outcome")
    .option("--state <word>", `only jobs with this state or outcome (${WORDS.join(", ")})`)
    .option("--limit <n>", "at most this many (1-10000)", integerOption("--limit", 1, 10_000), 50)
    .option("--json", "print JSON")
    .option(...dataDirOption)
    .action(async (opts: { state?: string; limit: number; json?: boolean; dataDir?: string }) => {
      try {
        if (opts.state && !(WORDS as readonly string[]).includes(opts.state)) {
          console.error(`lunafleet jobs: unknown state '${opts.state}' (one of ${WORDS.join(", ")})`);
          process.exitCode = 2;
          return;
        }
        const conn = await connectCli(opts.dataDir ? { dataDir: opts.dataDir } : {});
        try {
          const states: QueueState[] = opts.state ? queueStatesOf(opts.state) : [...QUEUE_STATES];
          const jobs = await conn.queue.getJobs(states, 0, Math.max(0, opts.limit - 1), false);
          jobs.sort((a, b) => b.timestamp - a.timestamp);
          const rows = [];
          for (const j of jobs) {
            const view = await jobOutcome(conn.queue, conn.redis, j.id ?? "", j);
            if (opts.state && view.outcome !== opts.state) continue;
            const p = j.progress as Partial<JobProgress> | number;
            rows.push({
              id: j.id ?? "?",
              state: view.outcome,
              queueState: view.queueState,
              runbook: j.data.runbook,
              target: typeof j.data.params?.target === "string" ? j.data.params.target : "-",
              progress: typeof p === "object" && p?.total ? `${p.done ?? 0}/${p.total}` : "-",
              actor: j.data.actor,
              createdAt: j.timestamp,
              finishedAt: j.finishedOn,
              ...(view.result?.findings?.length ? { findings: view.result.findings } : {}),
              ...(j.failedReason ? { failedReason: j.failedReason } : {}),
            });
            if (rows.length >= opts.limit) break;
          }
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
        } finally {
          await conn.close();
        }
      } catch (err) {
        failCommand("jobs", err);
      }
    });
}
