// `lunafleet config check <file> [--offline]`: does this fleet file work? The schema (every error with file, line,
// YAML path and reason), then what the schema cannot see: env: variables set, file: secrets readable (never
// printed), no <…> placeholder left in a production file. Exit 0 when it can work, 1 with the issues.
import type { Command } from "commander";
import { checkFleetFile } from "../../config/check.ts";
import { formatIssue } from "../../config/load.ts";
import { EXIT } from "../exit-codes.ts";

export function registerConfigCommands(program: Command): void {
  const config = program.command("config").description("fleet file tools");
  config
    .command("check")
    .argument("<file>", "fleet file (YAML)")
    .option(
      "--offline",
      "do not check the secrets (env: set, file: readable): checking away from the daemon's host",
    )
    .description(
      "prove a fleet file can work: schema, env: secrets set, file: secrets readable, no <…> placeholders (exit 1 with every issue)",
    )
    .action((file: string, opts: { offline?: boolean }) => {
      const check = checkFleetFile(file, { ...(opts.offline ? { offline: true } : {}) });
      if (check.issues.length > 0) {
        console.error(`${file}: ${check.issues.length} error(s)`);
        for (const issue of check.issues) console.error(`  ${formatIssue(file, issue)}`);
        process.exitCode = EXIT.failed;
        return;
      }
      const fleet = check.fleet!;
      console.log(
        `${file}: ok (${fleet.devices.length} devices, ${fleet.clientHosts.length} client hosts, ` +
          `${fleet.haGroups.length} HA groups, ${fleet.maintenanceWindows.length} maintenance windows${fleet.twin ? ", twin" : ""}; ` +
          `${opts.offline ? "secrets not checked (--offline)" : `${check.secretsChecked} secret reference(s) resolve`})`,
      );
    });
}
