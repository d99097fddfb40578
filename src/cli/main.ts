// The `lunafleet` command. Each command group lives in its own module under commands/ and registers itself here.
import { Command } from "commander";
import { registerApproveCommands } from "./commands/approve.ts";
import { registerConfigCommands } from "./commands/config.ts";
import { registerDaemonCommand } from "./commands/daemon.ts";
import { registerEvidenceCommands } from "./commands/evidence.ts";
import { registerFleetCommands } from "./commands/fleet.ts";
import { registerGuardCommands } from "./commands/guard.ts";
import { registerHaCommands } from "./commands/ha.ts";
import { registerJobCommand } from "./commands/job.ts";
import { registerJobsCommand } from "./commands/jobs.ts";
import { registerParseCommand } from "./commands/parse.ts";
import { registerPlanCommand } from "./commands/plan.ts";
import { registerReportCommand } from "./commands/report.ts";
import { registerRunCommand } from "./commands/run.ts";
import { registerScheduleCommands } from "./commands/schedule.ts";
import { registerSimCommands } from "./commands/sim.ts";

export function buildProgram(): Command {
  const program = new Command();
  program
    .name("lunafleet")
    .description("Operate fleets of Thales Luna 7 network HSMs: jobs, login guard, digital twin, evidence")
    .showHelpAfterError()
    .exitOverride((err) => {
      // commander's own usage errors: exit 2 like other usage errors; help/version: exit 0.
      process.exit(err.exitCode === 0 ? 0 : 2);
    });
  registerConfigCommands(program);
  registerSimCommands(program);
  registerEvidenceCommands(program);
  registerFleetCommands(program);
  registerParseCommand(program);
  registerPlanCommand(program);
  registerDaemonCommand(program);
  registerRunCommand(program);
  registerJobsCommand(program);
  registerJobCommand(program);
  registerScheduleCommands(program);
  registerReportCommand(program);
  registerGuardCommands(program);
  registerHaCommands(program);
  registerApproveCommands(program);
  return program;
}

await buildProgram().parseAsync(process.argv);
