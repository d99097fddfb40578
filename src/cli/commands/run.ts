// `lunafleet run <runbook> [target] [--param k=v]... [--wait]`: check the request against the fleet (the daemon's
// published fleet, or --fleet), queue it, and with --wait print each step as it finishes.
import type { Command } from "commander";
import { getRunbook } from "../../../runbooks/index.ts";
import { lockedTargets } from "../../engine/plan.ts";
import { waitAndPrint } from "../job-wait.ts";
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
        const locked = lockedTargets(submitted.plan.targets);
        console.log(
          `queued ${submitted.jobId}: ${runbook}${target ? ` on ${target}` : ""} ` +
            `(${submitted.plan.steps.length} steps; locks ${locked.join(", ") || "no target, only the job's own id"})`,
        );
        return opts.wait ? waitAndPrint(client, submitted.jobId, opts.timeout * 1000) : undefined;
      });
    });
}
