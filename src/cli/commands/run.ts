// `lunafleet run <runbook> [target] [--param k=v]... [--wait]`: check the request against the fleet (the daemon's
// published fleet, or --fleet), queue it, and with --wait print each step as it finishes.
import type { Command } from "commander";
import { getRunbook } from "../../../runbooks/index.ts";
import type { JobStatus } from "../../api/ops/jobs.ts";
import type { DaemonClient } from "../daemon-client.ts";
import { EXIT, exitCodeOfOutcome } from "../exit-codes.ts";
import {
  assertPrincipal,
  collectParam,
  dataDirOption,
  failCommand,
  integerOption,
  jobParams,
  principalOption,
  withDaemonClient,
} from "../support.ts";

interface RunOptions {
  param: string[];
  fleet?: string;
  wait?: boolean;
  dataDir?: string;
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
    .option("--fleet <file>", "check against this fleet file instead of the daemon's (daemon host only)")
    .option("--wait", "wait for the job and print its progress")
    .option(
      "--timeout <seconds>",
      "with --wait: give up waiting after this long",
      integerOption("--timeout", 1, 30 * 86_400),
      3600,
    )
    .option(...principalOption("who asks"))
    .option(...dataDirOption)
    .action(async (runbook: string, target: string | undefined, opts: RunOptions) => {
      let params: Record<string, unknown>;
      try {
        // The runbook first (an unknown name lists the known ones), then the request's shape: a target (a fleet-wide
        // run says `fleet`), parameter names, a --param target= that agrees. All before anything connects.
        getRunbook(runbook);
        params = jobParams(target, opts.param);
      } catch (err) {
        failCommand("run", err);
        return;
      }
      await withDaemonClient("run", opts, async (client) => {
        // The requester is whoever authenticated; --as only asserts who that is.
        await assertPrincipal(client, opts.as);
        const submitted = await client.submit({ runbook, params });
        console.log(
          `queued ${submitted.jobId}: ${runbook}${target ? ` on ${target}` : ""} ` +
            `(${submitted.plan.steps.length} steps; locks ${[...submitted.plan.targets.devices, ...submitted.plan.targets.clientHosts].join(", ") || "none"})`,
        );
        return opts.wait ? waitAndPrint(client, submitted.jobId, opts.timeout * 1000) : undefined;
      });
    });
}

/**
 * Follow a job until it ends: each step as it finishes, the approval it waits for (and how to give it), then its
 * outcome, findings and failed steps. Returns the outcome's exit code (src/cli/exit-codes.ts), or 4 on timeout.
 */
export async function waitAndPrint(client: DaemonClient, jobId: string, timeoutMs: number): Promise<number> {
  const printed = new Set<string>();
  const deadline = Date.now() + timeoutMs;
  let lastSaid = "";
  for (;;) {
    const view = await client.jobStatus(jobId);
    for (const rec of view.finished) {
      if (printed.has(rec.id)) continue;
      printed.add(rec.id);
      const ms = Date.parse(rec.finishedAt) - Date.parse(rec.startedAt);
      console.log(`  done  ${rec.id}  (${ms} ms)  ${rec.title}`);
    }
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
function describeWait(jobId: string, view: JobStatus): string {
  const a = view.approval;
  if (view.outcome !== "awaiting-approval" || !a) return `  ${view.outcome}`;
  return [
    `  awaiting-approval: ${a.action ?? a.runbook ?? "the job"} — ${a.device} (serial ${a.serial}), ` +
      `${a.approvals.length}/${a.required} approvals${a.approvals.length > 0 ? ` (${a.approvals.map((x) => x.principal).join(", ")})` : ""}, until ${a.expiresAt}`,
    `    approve: lunafleet approve ${jobId} --key <your registered SSH key> --confirm ${a.serial}`,
    `    reject:  lunafleet reject ${jobId} --reason "<why>"`,
  ].join("\n");
}
