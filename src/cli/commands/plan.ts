// `lunafleet plan <runbook> <target> --fleet <file> [--param k=v]`: the steps and the exact commands a job would run,
// from the fleet file alone. Nothing connects. Refusals (an unknown runbook or target, invalid parameters, a runbook's
// own refusal such as deprovision of a resource group that would not be empty) are one line, exit 1; usage errors
// (no target, a bad --param) exit 2.
import type { Command } from "commander";
import { getRunbook } from "../../../runbooks/index.ts";
import { FleetConfigError, formatIssue, loadFleet, UnknownTargetError } from "../../config/index.ts";
import { redact } from "../../config/secret.ts";
import { EngineError } from "../../engine/errors.ts";
import { planJob, renderPlan } from "../../engine/plan.ts";
import { EXIT } from "../exit-codes.ts";
import { collectParam, failCommand, jobParams } from "../support.ts";

interface PlanOptions {
  fleet: string;
  param: string[];
  json?: boolean;
}

export function registerPlanCommand(program: Command): void {
  program
    .command("plan")
    .argument("<runbook>", "runbook name (e.g. patch-verify, tcp-check)")
    .argument("[target]", "device, client host, HA group or 'fleet' (sets the 'target' parameter)")
    .requiredOption("--fleet <file>", "fleet file (YAML)")
    .option("--param <key=value>", "a runbook parameter (repeatable)", collectParam, [])
    .option("--json", "print the plan as JSON")
    .description("print the steps and exact commands a job would run, without connecting to anything")
    .action((name: string, target: string | undefined, opts: PlanOptions) => {
      try {
        const runbook = getRunbook(name);
        const params = jobParams(target, opts.param);
        const fleet = loadFleet(opts.fleet);
        const plan = planJob(runbook, params, fleet);
        console.log(opts.json ? JSON.stringify(plan, null, 2) : renderPlan(plan));
      } catch (err) {
        if (err instanceof FleetConfigError) {
          for (const issue of err.issues) console.error(`  ${formatIssue(opts.fleet, issue)}`);
          process.exitCode = EXIT.failed;
        } else if (err instanceof EngineError || err instanceof UnknownTargetError) {
          console.error(`lunafleet plan: refused: ${redact(err.message)}`);
          process.exitCode = EXIT.failed;
        } else failCommand("plan", err);
      }
    });
}
