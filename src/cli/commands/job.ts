// `lunafleet job <id>`: one job's state, request, steps and results, and its evidence (record counts + verification).
// `lunafleet job cancel <id>`: remove a waiting job, or flag a running one (it stops before its next step/command).
import type { Command } from "commander";
import { RedisCheckpointStore } from "../../engine/checkpoints.ts";
import { evidenceKeys, verifyJobEvidence } from "../../evidence/log.ts";
import { jobOutcome } from "../../queue/job-outcome.ts";
import { cancelJob } from "../../queue/jobs.ts";
import { connectCli } from "../connection.ts";
import { ago, dataDirOption, failCommand } from "../support.ts";

export function registerJobCommand(program: Command): void {
  const job = program
    .command("job")
    .description("show one job (steps, results, evidence); `job cancel <id>` cancels it")
    .argument("<id>", "job id")
    .option("--json", "print JSON")
    .option(...dataDirOption)
    .action(async (id: string, opts: { json?: boolean; dataDir?: string }) => {
      try {
        process.exitCode = await showJob(id, opts);
      } catch (err) {
        failCommand("job", err);
      }
    });
  job
    .command("cancel")
    .description("cancel a job: a waiting one is removed, a running one stops before its next step")
    .argument("<id>", "job id")
    .option(...dataDirOption)
    .action(async (id: string, opts: { dataDir?: string }) => {
      try {
        const conn = await connectCli(opts.dataDir ? { dataDir: opts.dataDir } : {});
        try {
          const outcome = await cancelJob(conn.queue, conn.redis, id);
          const say = {
            removed: `${id}: removed from the queue (it had not started)`,
            flagged: `${id}: cancel requested; it stops before its next step or command`,
            finished: `${id}: already finished; nothing to cancel`,
            unknown: `${id}: no such job`,
          }[outcome];
          console.log(say);
          process.exitCode = outcome === "unknown" ? 1 : 0;
        } finally {
          await conn.close();
        }
      } catch (err) {
        failCommand("job cancel", err);
      }
    });
}

async function showJob(id: string, opts: { json?: boolean; dataDir?: string }): Promise<number> {
  const conn = await connectCli(opts.dataDir ? { dataDir: opts.dataDir } : {});
  try {
    const job = await conn.queue.getJob(id);
    const view = await jobOutcome(conn.queue, conn.redis, id, job ?? undefined);
    const result = view.result;
    const checkpoints = await new RedisCheckpointStore(conn.redis).finishedSteps(id);
    const evidenceCount = await conn.redis.llen(evidenceKeys(id).records);
    if (!job && !result && evidenceCount === 0) {
      console.error(`lunafleet job: no such job '${id}'`);
      return 1;
    }
    const state = view.outcome;
    const kinds: Record<string, number> = {};
    for (const line of await conn.redis.lrange(evidenceKeys(id).records, 0, -1)) {
      const kind = (JSON.parse(line) as { kind?: string }).kind ?? "?";
      kinds[kind] = (kinds[kind] ?? 0) + 1;
    }
    const verification =
      evidenceCount > 0 ? await verifyJobEvidence(conn.redis, conn.dataDir, id) : undefined;
    if (opts.json) {
      console.log(
        JSON.stringify(
          {
            id,
            state,
            outcome: state,
            queueState: view.queueState,
            ...(view.approval ? { approval: view.approval } : {}),
            data: job?.data,
            attemptsMade: job?.attemptsMade,
            failedReason: job?.failedReason,
            result,
            checkpoints: Object.fromEntries(checkpoints),
            evidence: { records: evidenceCount, kinds, verification },
          },
          null,
          2,
        ),
      );
      return 0;
    }
    console.log(`job ${id}: ${state}`);
    for (const f of result?.findings ?? []) console.log(`  finding  ${f}`);
    if (view.approval)
      console.log(
        `  awaiting ${view.approval.approvals.length}/${view.approval.required} approvals until ${view.approval.expiresAt}: ${view.approval.action ?? view.approval.device}` +
          `\n  approve: lunafleet approve ${id} --as <principal> --confirm ${view.approval.serial}`,
      );
    if (job) {
      console.log(`  runbook  ${job.data.runbook}  params ${JSON.stringify(job.data.params)}`);
      console.log(`  actor    ${job.data.actor}${job.data.window ? `  window ${job.data.window}` : ""}`);
      console.log(
        `  created  ${ago(job.timestamp)}  started ${ago(job.processedOn)}  finished ${ago(job.finishedOn)}  attempts ${job.attemptsMade}`,
      );
      if (job.failedReason) console.log(`  failed   ${job.failedReason}`);
    }
    console.log("  steps:");
    const steps =
      result?.steps ??
      [...checkpoints.values()].map((c) => ({ id: c.stepId, status: "done", result: c.result }));
    for (const s of steps) {
      const err = "error" in s && s.error ? `  ${s.error.type}: ${s.error.message}` : "";
      console.log(`    ${String(s.status).padEnd(8)} ${s.id}${err}`);
    }
    const final = steps.at(-1);
    if (final && "result" in final && final.result !== undefined)
      console.log(`  result (${final.id}):\n${indent(JSON.stringify(final.result, null, 2), 4)}`);
    console.log(
      `  evidence: ${evidenceCount} records (${Object.entries(kinds)
        .map(([k, n]) => `${k} ${n}`)
        .join(", ")})`,
    );
    if (verification)
      console.log(
        verification.ok
          ? `  evidence verify: ok (Redis and file agree, head ${verification.headHash})`
          : `  evidence verify: TAMPERED: ${verification.detail}`,
      );
    return verification && !verification.ok ? 1 : 0;
  } finally {
    await conn.close();
  }
}

function indent(text: string, n: number): string {
  const pad = " ".repeat(n);
  return text
    .split("\n")
    .map((l) => pad + l)
    .join("\n");
}
