// `lunafleet run <runbook> [target] [--param k=v]... [--wait]`: check the request against the fleet (the daemon's
// published fleet, or --fleet), queue it, and with --wait print each step as it finishes.
import type { Command } from "commander";
import { RedisCheckpointStore } from "../../engine/checkpoints.ts";
import type { JobResult } from "../../engine/runner.ts";
import { resultKey, submitJob } from "../../queue/jobs.ts";
import type { CliConnection } from "../connection.ts";
import { collectParam, dataDirOption, failCommand, parseParams, withCommandFleet } from "../support.ts";

interface RunOptions {
  param: string[];
  fleet?: string;
  wait?: boolean;
  dataDir?: string;
  actor?: string;
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
    .option("--timeout <seconds>", "with --wait: give up waiting after this long", Number, 3600)
    .option("--actor <principal>", "who asks (default operator:$USER)")
    .option(...dataDirOption)
    .action(async (runbook: string, target: string | undefined, opts: RunOptions) => {
      try {
        // Parameters (and a given fleet file, in withCommandFleet) are checked before anything connects.
        const params = parseParams(opts.param);
        await withCommandFleet(
          opts,
          "refused: the daemon has not published a fleet yet; pass --fleet <file>",
          async (conn, fleet) => {
            const submitted = await submitJob(conn.queue, {
              fleet,
              runbook,
              ...(target !== undefined ? { target } : {}),
              params,
              ...(opts.actor ? { actor: opts.actor } : {}),
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

async function waitAndPrint(conn: CliConnection, jobId: string, timeoutMs: number): Promise<number> {
  const checkpoints = new RedisCheckpointStore(conn.redis);
  const printed = new Set<string>();
  const deadline = Date.now() + timeoutMs;
  let lastState = "";
  for (;;) {
    const finished = await checkpoints.finishedSteps(jobId);
    for (const [id, rec] of finished) {
      if (printed.has(id)) continue;
      printed.add(id);
      const ms = Date.parse(rec.finishedAt) - Date.parse(rec.startedAt);
      console.log(`  done  ${id}  (${ms} ms)  ${rec.title}`);
    }
    const job = await conn.queue.getJob(jobId);
    const state = job ? await job.getState() : "missing";
    if (state !== lastState && state !== "completed" && state !== "failed") {
      if (state === "delayed" || state === "waiting") console.log(`  ${state}`);
      lastState = state;
    }
    if (state === "completed" || state === "failed" || state === "missing") {
      const raw = await conn.redis.get(resultKey(jobId));
      const result = raw ? (JSON.parse(raw) as JobResult) : undefined;
      for (const s of result?.steps ?? [])
        if (s.status === "failed") console.log(`  FAILED ${s.id}: ${s.error?.type}: ${s.error?.message}`);
      if (state === "completed") {
        console.log(`${jobId}: succeeded`);
        return 0;
      }
      console.log(
        `${jobId}: ${state === "missing" ? "removed (cancelled?)" : `failed: ${job?.failedReason ?? "?"}`}`,
      );
      return 1;
    }
    if (Date.now() > deadline) {
      console.log(`${jobId}: still ${state}; stopped waiting (the job goes on)`);
      return 4;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
