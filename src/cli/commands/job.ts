// `lunafleet job <id>`: one job's state, request, steps and results, and its evidence (record counts + verification).
// `lunafleet job <id> --wait [--timeout s]`: follow a job already queued (by anyone) as `run --wait` does, with the
// same exit codes (0/1/5/6 by its outcome, 4 when the timeout stops the waiting; the job goes on).
// `lunafleet job cancel <id>`: remove a waiting job, or flag a running one (it stops before its next step/command);
// attributed to whoever is authenticated. Both through the daemon client (src/api/ops/jobs.ts); this renders.
import type { Command } from "commander";
import type { JobDetail } from "../../api/ops/jobs.ts";
import { ApiCallError } from "../daemon-client.ts";
import { waitAndPrint } from "../job-wait.ts";
import { ago, dataDirOption, integerOption, withDaemonClient } from "../support.ts";

export function registerJobCommand(program: Command): void {
  const job = program
    .command("job")
    .description("show one job (steps, results, evidence); `job cancel <id>` cancels it")
    .argument("<id>", "job id")
    .option("--json", "print JSON")
    .option("--wait", "wait for the job to end and print its progress (as run --wait)")
    .option(
      "--timeout <seconds>",
      "with --wait: give up waiting after this long",
      integerOption("--timeout", 1, 30 * 86_400),
      3600,
    )
    .option(...dataDirOption)
    .action(
      async (id: string, opts: { json?: boolean; wait?: boolean; timeout: number; dataDir?: string }) => {
        await withDaemonClient("job", opts, async (client) => {
          if (opts.wait) {
            if (opts.json) {
              console.error("lunafleet job: --wait prints progress; --json is for the one-shot view");
              return 2;
            }
            try {
              await client.jobStatus(id);
            } catch (err) {
              if (err instanceof ApiCallError && err.status === 404) {
                console.error(`lunafleet job: no such job '${id}'`);
                return 1;
              }
              throw err;
            }
            return waitAndPrint(client, id, opts.timeout * 1000);
          }
          let detail: JobDetail;
          try {
            detail = await client.job(id);
          } catch (err) {
            if (err instanceof ApiCallError && err.status === 404) {
              console.error(`lunafleet job: no such job '${id}'`);
              return 1;
            }
            throw err;
          }
          return showJob(detail, opts.json === true);
        });
      },
    );
  job
    .command("cancel")
    .description("cancel a job: a waiting one is removed, a running one stops before its next step")
    .argument("<id>", "job id")
    .option(...dataDirOption)
    .action(async (id: string, opts: { dataDir?: string }, cmd: Command) => {
      // `job cancel <id> --data-dir d`: commander hands an option both commands know to the parent (`job`).
      const dataDir = opts.dataDir ?? (cmd.parent?.opts() as { dataDir?: string } | undefined)?.dataDir;
      await withDaemonClient("job cancel", { dataDir }, async (client) => {
        let outcome: string;
        try {
          outcome = (await client.cancel(id)).outcome;
        } catch (err) {
          if (!(err instanceof ApiCallError && err.status === 404)) throw err;
          outcome = "unknown";
        }
        const say: Record<string, string> = {
          removed: `${id}: removed from the queue (it had not started)`,
          flagged: `${id}: cancel requested; it stops before its next step or command`,
          finished: `${id}: already finished; nothing to cancel`,
          unknown: `${id}: no such job`,
        };
        console.log(say[outcome] ?? `${id}: ${outcome}`);
        return outcome === "unknown" ? 1 : 0;
      });
    });
}

function showJob(d: JobDetail, json: boolean): number {
  const verification = d.evidence.verification;
  if (json) {
    console.log(
      JSON.stringify(
        {
          id: d.id,
          state: d.outcome,
          outcome: d.outcome,
          queueState: d.queueState,
          ...(d.approval ? { approval: d.approval } : {}),
          data: d.data,
          attemptsMade: d.attemptsMade,
          failedReason: d.failedReason,
          timestamps: d.timestamps,
          result: d.result,
          checkpoints: d.checkpoints,
          evidence: d.evidence,
        },
        null,
        2,
      ),
    );
    return 0;
  }
  const result = d.result;
  console.log(`job ${d.id}: ${d.outcome}`);
  for (const f of result?.findings ?? []) console.log(`  finding  ${f}`);
  if (d.approval)
    console.log(
      `  awaiting ${d.approval.approvals.length}/${d.approval.required} approvals until ${d.approval.expiresAt}: ${d.approval.action ?? d.approval.device}` +
        `\n  approve: lunafleet approve ${d.id} --key <your registered SSH key> --confirm ${d.approval.serial}`,
    );
  if (d.data) {
    console.log(`  runbook  ${d.data.runbook}  params ${JSON.stringify(d.data.params)}`);
    console.log(`  actor    ${d.data.actor}${d.data.window ? `  window ${d.data.window}` : ""}`);
    console.log(
      `  created  ${ago(d.timestamps.created)}  started ${ago(d.timestamps.started)}  finished ${ago(d.timestamps.finished)}  attempts ${d.attemptsMade}`,
    );
    if (d.failedReason) console.log(`  failed   ${d.failedReason}`);
  }
  console.log("  steps:");
  const checkpoints = Object.values(d.checkpoints) as { stepId: string; result?: unknown }[];
  const steps = result?.steps ?? checkpoints.map((c) => ({ id: c.stepId, status: "done", result: c.result }));
  for (const s of steps) {
    const err = "error" in s && s.error ? `  ${s.error.type}: ${s.error.message}` : "";
    console.log(`    ${String(s.status).padEnd(8)} ${s.id}${err}`);
  }
  const final = steps.at(-1);
  if (final && "result" in final && final.result !== undefined)
    console.log(`  result (${final.id}):\n${indent(JSON.stringify(final.result, null, 2), 4)}`);
  console.log(
    `  evidence: ${d.evidence.records} records (${Object.entries(d.evidence.kinds)
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
}

function indent(text: string, n: number): string {
  const pad = " ".repeat(n);
  return text
    .split("\n")
    .map((l) => pad + l)
    .join("\n");
}
