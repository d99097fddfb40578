// `lunafleet approvals [job]`, `lunafleet approve <job> --as <principal> --confirm <serial>` and `lunafleet reject
// <job> --as <principal> --reason "…"`: what waits for approval, and an operator's decision on it. Each decision is
// one atomic transition in Redis (src/coord/approvals.ts) and an `approval` record in the job's evidence; a job that
// no longer waits (failed, cancelled, expired, done, or gone from the queue) is refused with its state, never
// "approved". Exit 0 when counted, 1 when refused, 2 for a usage error or a job that never asked, 3 when the daemon
// is not reachable (src/cli/exit-codes.ts).
import type { Command } from "commander";
import {
  ApprovalError,
  ApprovalRefused,
  type ApprovalState,
  approvalState,
  approve,
  closeApproval,
  listWaitingApprovals,
  NoApprovalRequest,
  reject,
} from "../../coord/approvals.ts";
import { EvidenceLog, isValidJobId } from "../../evidence/index.ts";
import { jobOutcome } from "../../queue/job-outcome.ts";
import type { RedisClient } from "../../redis/client.ts";
import { type CliConnection, connectCli, DaemonUnavailable } from "../connection.ts";
import { EXIT } from "../exit-codes.ts";
import { dataDirOption, principalOption, resolvePrincipal } from "../support.ts";

interface DecisionOptions {
  as?: string;
  dataDir?: string;
}

export function registerApproveCommands(program: Command): void {
  program
    .command("approvals")
    .argument("[job]", "job id (without it: every job awaiting approval)")
    .option("--json", "print JSON")
    .option(...dataDirOption)
    .description(
      "what waits for approval (device, serial, what the job will do, deadline), or one job's approvals",
    )
    .action(async (jobId: string | undefined, opts: { dataDir?: string; json?: boolean }) => {
      process.exitCode = await withConnection(opts.dataDir, "approvals", (conn) =>
        jobId === undefined ? listWaiting(conn, opts.json === true) : show(conn, jobId, opts.json === true),
      );
    });
  program
    .command("approve")
    .argument("<job>", "id of the job awaiting approval")
    .option(...principalOption("who approves (each principal counts once)"))
    .requiredOption(
      "--confirm <serial>",
      "type the device's serial number to confirm which HSM the job changes",
    )
    .option(...dataDirOption)
    .description(
      "approve a job that waits for approvals (deprovisioning zeroizes the HSM; regen replaces its certificate)",
    )
    .action(async (jobId: string, opts: DecisionOptions & { confirm: string }) => {
      process.exitCode = await decide(jobId, opts, (redis, principal, evidence) =>
        approve(redis, jobId, { principal, confirmation: opts.confirm }, { evidence }),
      );
    });
  program
    .command("reject")
    .argument("<job>", "id of the job awaiting approval")
    .option(...principalOption("who rejects"))
    .requiredOption("--reason <text>", "why (kept in the job's evidence)")
    .option(...dataDirOption)
    .description("reject a job that waits for approvals; the job stops before anything destructive")
    .action(async (jobId: string, opts: DecisionOptions & { reason: string }) => {
      process.exitCode = await decide(jobId, opts, (redis, principal, evidence) =>
        reject(redis, jobId, { principal, reason: opts.reason }, { evidence }),
      );
    });
}

async function withConnection(
  dataDir: string | undefined,
  label: string,
  act: (conn: CliConnection) => Promise<number>,
): Promise<number> {
  let conn: CliConnection;
  try {
    conn = await connectCli(dataDir ? { dataDir } : {});
  } catch (err) {
    console.error(`lunafleet ${label}: ${(err as Error).message}`);
    return err instanceof DaemonUnavailable ? EXIT.daemonDown : EXIT.failed;
  }
  try {
    return await act(conn);
  } catch (err) {
    console.error(`lunafleet ${label}: ${(err as Error).message}`);
    return err instanceof ApprovalError ? EXIT.failed : EXIT.failed;
  } finally {
    await conn.close();
  }
}

async function decide(
  jobId: string,
  opts: DecisionOptions,
  act: (redis: RedisClient, principal: string, evidence: EvidenceLog) => Promise<ApprovalState>,
): Promise<number> {
  if (!isValidJobId(jobId)) {
    console.error(`lunafleet: not a job id: ${JSON.stringify(jobId)}`);
    return EXIT.usage;
  }
  const principal = resolvePrincipal(opts.as);
  return withConnection(opts.dataDir, "approve", async (conn) => {
    // Nothing is written (not even evidence) for a job that never asked.
    const before = await approvalState(conn.redis, jobId);
    if (!before) {
      console.error(
        `job ${jobId} has no approval request (wrong job id, or the job has not reached the step that asks yet)`,
      );
      return EXIT.usage;
    }
    const evidence = await EvidenceLog.open(conn.redis, conn.dataDir, jobId);
    // A job the queue no longer runs (failed, done, removed) can use no approval: close its request with its state
    // first, so the decision below is refused by the store itself (and recorded there).
    if (before.status === "awaiting-approval" && !before.closed) {
      const view = await jobOutcome(conn.queue, conn.redis, jobId);
      if (!["running", "awaiting-approval", "queued", "delayed"].includes(view.outcome))
        await closeApproval(conn.redis, jobId, view.outcome, { evidence });
    }
    try {
      const state = await act(conn.redis, principal, evidence);
      console.log(describe(state));
      return EXIT.ok;
    } catch (err) {
      if (err instanceof ApprovalRefused) {
        console.error(`refused: ${err.message}`);
        console.error(describe(err.state));
        return EXIT.failed;
      }
      if (err instanceof NoApprovalRequest) {
        console.error(err.message);
        return EXIT.usage;
      }
      throw err;
    }
  });
}

async function show(conn: CliConnection, jobId: string, json: boolean): Promise<number> {
  if (!isValidJobId(jobId)) {
    console.error(`lunafleet: not a job id: ${JSON.stringify(jobId)}`);
    return EXIT.usage;
  }
  const state = await approvalState(conn.redis, jobId);
  if (!state) {
    console.error(`job ${jobId} has no approval request`);
    return EXIT.usage;
  }
  if (json) {
    console.log(JSON.stringify(state, null, 2));
    return EXIT.ok;
  }
  console.log(describe(state));
  for (const r of state.refusals) console.log(`  not counted: ${r.principal} at ${r.at} (${r.reason})`);
  return EXIT.ok;
}

async function listWaiting(conn: CliConnection, json: boolean): Promise<number> {
  const waiting = await listWaitingApprovals(conn.redis);
  if (json) {
    console.log(JSON.stringify(waiting, null, 2));
    return EXIT.ok;
  }
  if (waiting.length === 0) {
    console.log("nothing awaits approval");
    return EXIT.ok;
  }
  const rows = [
    ["JOB", "RUNBOOK", "DEVICE", "SERIAL", "APPROVALS", "DEADLINE", "WHAT IT WILL DO"],
    ...waiting.map((s) => [
      s.jobId,
      s.runbook ?? "-",
      s.device,
      s.serial,
      `${s.approvals.length}/${s.required}${s.approvals.length > 0 ? ` (${s.approvals.map((a) => a.principal).join(", ")})` : ""}`,
      s.expiresAt,
      s.action ?? "-",
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  for (const r of rows)
    console.log(
      r
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join("  ")
        .trimEnd(),
    );
  console.log("\napprove: lunafleet approve <job> --as <principal> --confirm <serial>");
  return EXIT.ok;
}

function describe(s: ApprovalState): string {
  const who = s.approvals.map((a) => `${a.principal} at ${a.at}`).join(", ") || "none yet";
  const lines = [
    `job ${s.jobId}: ${s.status} — ${s.device} (serial ${s.serial}), ${s.approvals.length}/${s.required} approvals: ${who}`,
  ];
  if (s.action) lines.push(`  will: ${s.action}`);
  if (s.status === "awaiting-approval") lines.push(`  expires at ${s.expiresAt}`);
  if (s.closed) lines.push(`  the job ended: ${s.closed.outcome} at ${s.closed.at}`);
  if (s.rejection) lines.push(`  rejected by ${s.rejection.principal}: ${s.rejection.reason}`);
  return lines.join("\n");
}
