// Every top-level `lunafleet` command and the module that registers it. main.ts loads only the module of the command
// being run, so `lunafleet config check` does not pay for bullmq, ssh2 and the Azure SDK that other commands need
// (loading every module made each CLI call take seconds). A new command: add its module here, one line per
// top-level name it registers; test/cli/commands.test.ts checks this table against what the modules register.
import type { Command } from "commander";

export type Registrar = (program: Command) => void;

export const COMMAND_MODULES: Readonly<Record<string, () => Promise<Registrar>>> = {
  approvals: () => import("./approve.ts").then((m) => m.registerApproveCommands),
  approve: () => import("./approve.ts").then((m) => m.registerApproveCommands),
  reject: () => import("./approve.ts").then((m) => m.registerApproveCommands),
  config: () => import("./config.ts").then((m) => m.registerConfigCommands),
  daemon: () => import("./daemon.ts").then((m) => m.registerDaemonCommand),
  evidence: () => import("./evidence.ts").then((m) => m.registerEvidenceCommands),
  fleet: () => import("./fleet.ts").then((m) => m.registerFleetCommands),
  guard: () => import("./guard.ts").then((m) => m.registerGuardCommands),
  ha: () => import("./ha.ts").then((m) => m.registerHaCommands),
  job: () => import("./job.ts").then((m) => m.registerJobCommand),
  jobs: () => import("./jobs.ts").then((m) => m.registerJobsCommand),
  parse: () => import("./parse.ts").then((m) => m.registerParseCommand),
  plan: () => import("./plan.ts").then((m) => m.registerPlanCommand),
  report: () => import("./report.ts").then((m) => m.registerReportCommand),
  run: () => import("./run.ts").then((m) => m.registerRunCommand),
  schedule: () => import("./schedule.ts").then((m) => m.registerScheduleCommands),
  sim: () => import("./sim.ts").then((m) => m.registerSimCommands),
  token: () => import("./token.ts").then((m) => m.registerTokenCommands),
};
