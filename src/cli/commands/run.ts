// `lunafleet run <runbook> [target] [--param k=v]... [--wait]`: check the request against the fleet (the daemon's
// published fleet, or --fleet), queue it, and with --wait print each step as it finishes.
import type { Command } from "commander";
import { getRunbook } from "../../../runbooks/index.ts";
import { RedisCheckpointStore } from "../../engine/checkpoints.ts";
import { type JobOutcomeView, jobOutcome } from "../../queue/job-outcome.ts";
import { submitJob } from "../../queue/jobs.ts";
import type { CliConnection } from "../connection.ts";
import { EXIT, exitCodeOfOutcome } from "../exit-codes.ts";
import {
  collectParam,
  dataDirOption,
  failCommand,
  integerOption,
  jobParams,
  principalOption,
  resolvePrincipal,
  withCommandFleet,
} from "../support.ts";

/** A principal as a job's actor: `operator:<name>` unless it already says what it is (`schedule:…`, `alert:…`). */
function actorOf(principal: string): string {
  return principal.includes(":") ? principal : `operator:${principal}`;
}

interface RunOptions {
  param: string[];
  fleet?: string;
  wait?: boolean;
  dataDir?: string;
  actor?: string;
  as?: string;
  timeout: number;
}

export function registerRunCommand(program: Command): void {
  program
    .command("run")
    .description("queue a runbook job (checked against the fleet first); --wait prints steps as they finish")
    .argument("<runbook>", "runbook name (tcp-check, patch-verify, ...)")
    .argument("[target]", "device, client host, HA group or 'fleet' (sets the 'target' parameter)")
    .option("--param <key=value>", "a runbook parameter (repeatable)", collectParam, [])
    .option("--fleet <file>", "check against this fleet file instead of the daemon's")
    .option("--wait", "wait for the job and print its progress")
    .option(
      "--timeout <seconds>",
      "with --wait: give up waiting after this long",
      integerOption("--timeout", 1, 30 * 86_400),
      3600,
    )
    .option(...principalOption("who asks"))
    .option("--actor <principal>", "the same as --as (older name)")
    .option(...dataDirOption)
    .action(async (runbook: string, target: string | undefined, opts: RunOptions) => {
      try {
        // Parameters (and a given fleet file, in withCommandFleet) are checked before anything connects.
        // The runbook first (an unknown name lists the known ones), then the request's shape.
        getRunbook(runbook);
        const params = jobParams(target, opts.param);
        await withCommandFleet(
          opts,
          "refused: the daemon has not published a fleet yet; pass --fleet <file>",
          async (conn, fleet) => {
            const submitted = await submitJob(conn.queue, {
              fleet,
              runbook,
              params,
              actor: actorOf(resolvePrincipal(opts.as ?? opts.actor)),
            });
            console.log(
              `queued ${submitted.jobId}: ${runbook}${target ? ` on ${target}` : ""} ` +
                `(${submitted.plan.steps.length} steps; locks ${[...submitted.plan.targets.devices, ...submitted.plan.targets.clientHosts].join(", ") || "none"})`,
            );
            if (opts.wait) process.exitCode = await waitAndPrint(conn, submitted.jobId, opts.timeout * 1000);
          },
        );
      } catch (err) {
        failCommand("run", err);
      }
    });
}

/**
 * Follow a job until it ends: each step as it finishes, the approval it waits for (and how to give it), then its
 * outcome, findings and failed steps. Returns the outcome's exit code (src/cli/exit-codes.ts), or 4 on timeout.
 */
export async function waitAndPrint(conn: CliConnection, jobId: string, timeoutMs: number): Promise<number> {
  const checkpoints = new RedisCheckpointStore(conn.redis);
  const printed = new Set<string>();
  const deadline = Date.now() + timeoutMs;
  let lastSaid = "";
  for (;;) {
    const finished = await checkpoints.finishedSteps(jobId);
    for (const [id, rec] of finished) {
      if (printed.has(id)) continue;
      printed.add(id);
      const ms = Date.parse(rec.finishedAt) - Date.parse(rec.startedAt);
      console.log(`  done  ${id}  (${ms} ms)  ${rec.title}`);
    }
    const view = await jobOutcome(conn.queue, conn.redis, jobId);
    const code = exitCodeOfOutcome(view.outcome);
    if (code !== undefined) {
      const result = view.result;
      for (const s of result?.steps ?? [])
        if (s.status === "failed") console.log(`  FAILED ${s.id}: ${s.error?.type}: ${s.error?.message}`);
      for (const f of result?.findings ?? []) console.log(`  finding: ${f}`);
      const why =
        view.outcome === "failed" && result?.error
          ? `: ${result.error.type}: ${result.error.message}`
          : view.outcome === "unknown"
            ? " (the queue no longer has it and it left no result)"
            : "";
      console.log(`${jobId}: ${view.outcome}${why}`);
      return code;
    }
    const said = describeWait(jobId, view);
    if (said !== lastSaid) {
      console.log(said);
      lastSaid = said;
    }
    if (Date.now() > deadline) {
      console.log(`${jobId}: still ${view.outcome}; stopped waiting (the job goes on)`);
      return EXIT.stillRunning;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** One line (or block) for a job that has not ended; awaiting-approval says what it waits for and how to approve. */
function describeWait(jobId: string, view: JobOutcomeView): string {
  const a = view.approval;
  if (view.outcome !== "awaiting-approval" || !a) return `  ${view.outcome}`;
  return [
    `  awaiting-approval: ${a.action ?? a.runbook ?? "the job"} — ${a.device} (serial ${a.serial}), ` +
      `${a.approvals.length}/${a.required} approvals${a.approvals.length > 0 ? ` (${a.approvals.map((x) => x.principal).join(", ")})` : ""}, until ${a.expiresAt}`,
    `    approve: lunafleet approve ${jobId} --as <principal> --confirm ${a.serial}`,
    `    reject:  lunafleet reject ${jobId} --as <principal> --reason "<why>"`,
  ].join("\n");
}
