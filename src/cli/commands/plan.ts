// `lunafleet plan <runbook> [target] [--fleet <file>] [--param key=value]...`: the steps a job would run and the exact
// commands each would send. With --fleet, computed from that file alone (nothing connects); without it, against the
// daemon's fleet through the daemon client (the API with LUNAFLEET_URL, or on the daemon host). Nothing is queued.
import type { Command } from "commander";
import { getRunbook } from "../../../runbooks/index.ts";
import { FleetConfigError, formatIssue, loadFleet, UnknownTargetError } from "../../config/index.ts";
import { redact } from "../../config/secret.ts";
import { EngineError } from "../../engine/errors.ts";
import { planJob, renderPlan } from "../../engine/plan.ts";
import { EXIT } from "../exit-codes.ts";
import { dataDirOption, failCommand, jobParams, withDaemonClient } from "../support.ts";

interface PlanOptions {
  fleet?: string;
  dataDir?: string;
  param: string[];
  json?: boolean;
}

export function registerPlanCommand(program: Command): void {
  program
    .command("plan")
    .argument("<runbook>", "runbook name (e.g. patch-verify, tcp-check)")
    .argument("[target]", "device, client host, HA group or 'fleet' (sets the 'target' parameter)")
    .option(
      "--fleet <file>",
      "plan against this fleet file, without connecting (default: the daemon's fleet)",
    )
    .option(
      "--param <key=value>",
      "a runbook parameter (repeatable)",
      (v: string, acc: string[]) => [...acc, v],
      [],
    )
    .option("--json", "print the plan as JSON")
    .option(...dataDirOption)
    .description("print the steps and exact commands a job would run, without connecting to anything")
    .action(async (name: string, target: string | undefined, opts: PlanOptions) => {
      try {
        const runbook = getRunbook(name);
        // A target (a fleet-wide plan says `fleet`), parameter names, a --param target= that agrees.
        const params = jobParams(target, opts.param);
        if (opts.fleet === undefined) {
          await withDaemonClient("plan", opts, async (client) => {
            const { plan } = await client.plan({ runbook: name, params });
            console.log(opts.json ? JSON.stringify(plan, null, 2) : renderPlan(plan));
            return undefined;
          });
          return;
        }
        const fleet = loadFleet(opts.fleet);
        const plan = planJob(runbook, params, fleet);
        console.log(opts.json ? JSON.stringify(plan, null, 2) : renderPlan(plan));
      } catch (err) {
        if (err instanceof FleetConfigError) {
          for (const issue of err.issues) console.error(`  ${formatIssue(opts.fleet ?? "", issue)}`);
          process.exitCode = EXIT.failed;
        } else if (err instanceof EngineError || err instanceof UnknownTargetError) {
          console.error(`lunafleet plan: refused: ${redact(err.message)}`);
          process.exitCode = EXIT.failed;
        } else failCommand("plan", err);
      }
    });
}
