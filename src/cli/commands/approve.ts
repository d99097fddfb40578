// `lunafleet approve <job> --as <principal> --confirm <serial>` and `lunafleet reject <job> --as <principal> --reason
// "…"`: an operator's decision on a job that waits for approvals (deprovisioning). Each is one atomic transition in
// Redis (src/coord/approvals.ts) and an `approval` record in the job's evidence. Exit 0 when counted, 1 when refused
// (wrong serial, same principal again, not allowed, not awaiting), 2 when there is nothing to decide or Redis is out
// of reach.
import type { Command } from "commander";
import {
  ApprovalError,
  ApprovalRefused,
  type ApprovalState,
  approvalState,
  approve,
  NoApprovalRequest,
  reject,
} from "../../coord/approvals.ts";
import { EvidenceLog, isValidJobId } from "../../evidence/index.ts";
import { connectRedis, type RedisClient, resolveRedisTarget } from "../../redis/client.ts";
import { defaultDataDir, embeddedRedisSocketPath } from "../../redis/embedded-server.ts";
import { withEmbeddedRedis } from "../support.ts";

interface DecisionOptions {
  as: string;
  dataDir?: string;
}

export function registerApproveCommands(program: Command): void {
  program
    .command("approvals")
    .argument("<job>", "job id")
    .option("--data-dir <dir>", "lunafleet data dir (default $LUNAFLEET_DATA_DIR or ./.lunafleet)")
    .description("show what a job waits for: device, serial, approvals given, refusals, deadline")
    .action(async (jobId: string, opts: { dataDir?: string }) => {
      process.exitCode = await show(jobId, opts.dataDir ?? defaultDataDir());
    });
  program
    .command("approve")
    .argument("<job>", "id of the job awaiting approval")
    .requiredOption("--as <principal>", "who approves (each principal counts once)")
    .requiredOption("--confirm <serial>", "type the device's serial number to confirm which HSM is destroyed")
    .option("--data-dir <dir>", "lunafleet data dir (default $LUNAFLEET_DATA_DIR or ./.lunafleet)")
    .description("approve a job that waits for approvals (deprovisioning: zeroizes the HSM)")
    .action(async (jobId: string, opts: DecisionOptions & { confirm: string }) => {
      process.exitCode = await decide(jobId, opts, (redis, evidence) =>
        approve(redis, jobId, { principal: opts.as, confirmation: opts.confirm }, { evidence }),
      );
    });
  program
    .command("reject")
    .argument("<job>", "id of the job awaiting approval")
    .requiredOption("--as <principal>", "who rejects")
    .requiredOption("--reason <text>", "why (kept in the job's evidence)")
    .option("--data-dir <dir>", "lunafleet data dir (default $LUNAFLEET_DATA_DIR or ./.lunafleet)")
    .description("reject a job that waits for approvals; the job stops before anything destructive")
    .action(async (jobId: string, opts: DecisionOptions & { reason: string }) => {
      process.exitCode = await decide(jobId, opts, (redis, evidence) =>
        reject(redis, jobId, { principal: opts.as, reason: opts.reason }, { evidence }),
      );
    });
}

async function decide(
  jobId: string,
  opts: DecisionOptions,
  act: (redis: RedisClient, evidence: EvidenceLog) => Promise<ApprovalState>,
): Promise<number> {
  if (!isValidJobId(jobId)) {
    console.error(`not a job id: ${JSON.stringify(jobId)}`);
    return 2;
  }
  const dataDir = opts.dataDir ?? defaultDataDir();
  let redis: RedisClient;
  try {
    redis = connectRedis({
      target: resolveRedisTarget({ socketPath: embeddedRedisSocketPath(dataDir) }),
      connectionName: "lunafleet:cli:approve",
    });
  } catch (err) {
    console.error(`job ${jobId}: ${(err as Error).message}`);
    return 2;
  }
  try {
    // Nothing is written (not even evidence) for a job that never asked.
    if (!(await approvalState(redis, jobId)))
      throw new NoApprovalRequest(`job ${jobId} has no approval request`);
    const evidence = await EvidenceLog.open(redis, dataDir, jobId);
    const state = await act(redis, evidence);
    console.log(describe(state));
    return 0;
  } catch (err) {
    if (err instanceof ApprovalRefused) {
      console.error(`refused: ${err.message}`);
      console.error(describe(err.state));
      return 1;
    }
    if (err instanceof NoApprovalRequest) {
      console.error(`${err.message} (wrong job id, or the job has not reached its preflight yet)`);
      return 2;
    }
    if (err instanceof ApprovalError) {
      console.error(err.message);
      return 2;
    }
    console.error(`job ${jobId}: ${(err as Error).message}`);
    return 2;
  } finally {
    redis.disconnect();
  }
}

async function show(jobId: string, dataDir: string): Promise<number> {
  if (!isValidJobId(jobId)) {
    console.error(`not a job id: ${JSON.stringify(jobId)}`);
    return 2;
  }
  return withEmbeddedRedis(dataDir, `job ${jobId}`, "lunafleet:cli:approvals", async (redis) => {
    const state = await approvalState(redis, jobId);
    if (!state) {
      console.error(`job ${jobId} has no approval request`);
      return 2;
    }
    console.log(describe(state));
    for (const r of state.refusals) console.log(`  not counted: ${r.principal} at ${r.at} (${r.reason})`);
    return 0;
  });
}

function describe(s: ApprovalState): string {
  const who = s.approvals.map((a) => `${a.principal} at ${a.at}`).join(", ") || "none yet";
  const lines = [
    `job ${s.jobId}: ${s.status} — ${s.device} (serial ${s.serial}), ${s.approvals.length}/${s.required} approvals: ${who}`,
  ];
  if (s.status === "awaiting-approval") lines.push(`  expires at ${s.expiresAt}`);
  if (s.rejection) lines.push(`  rejected by ${s.rejection.principal}: ${s.rejection.reason}`);
  return lines.join("\n");
}
