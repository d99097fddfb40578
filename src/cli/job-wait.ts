// Following a job until it ends (`run --wait`, `job <id> --wait`): each step as it finishes, what it waits for (and
// how to approve it), then its outcome, findings and failed steps; the exit code of the outcome, or 4 when the
// caller stops waiting. Its own module so `job` does not load the runbooks `run` checks requests against.
import type { JobStatus } from "../api/ops/jobs.ts";
import type { DaemonClient } from "./daemon-client.ts";
import { EXIT, exitCodeOfOutcome } from "./exit-codes.ts";

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
