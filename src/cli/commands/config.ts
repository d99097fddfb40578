import type { Command } from "commander";
import { FleetConfigError, formatIssue, loadFleet } from "../../config/index.ts";

export function registerConfigCommands(program: Command): void {
  const config = program.command("config").description("fleet file tools");
  config
    .command("check")
    .argument("<file>", "fleet file (YAML)")
    .description("validate a fleet file; prints every error with its YAML path and reason (exit 1)")
    .action((file: string) => {
      try {
        const fleet = loadFleet(file);
        console.log(
          `${file}: ok (${fleet.devices.length} devices, ${fleet.clientHosts.length} client hosts, ` +
            `${fleet.haGroups.length} HA groups, ${fleet.maintenanceWindows.length} maintenance windows${fleet.twin ? ", twin" : ""})`,
        );
      } catch (err) {
        if (!(err instanceof FleetConfigError)) throw err;
        console.error(`${file}: ${err.issues.length} error(s)`);
        for (const issue of err.issues) console.error(`  ${formatIssue(file, issue)}`);
        process.exitCode = 1;
      }
    });
}
