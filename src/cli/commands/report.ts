// `lunafleet report [--json]`: one row per device from the latest tcp-check / patch-verify results, through the daemon
// client (the API with LUNAFLEET_URL, or on the daemon host: --fleet reports on that file's devices instead).
import type { Command } from "commander";
import { type FleetReport, renderReport } from "../../daemon/report.ts";
import { dataDirOption, withDaemonClient } from "../support.ts";

export function registerReportCommand(program: Command): void {
  program
    .command("report")
    .description(
      "per device: NTLS reachable, software/firmware, KB0019789, cert expiry, HA, guard (from the latest jobs)",
    )
    .option("--json", "print JSON")
    .option(
      "--fleet <file>",
      "report on this fleet file's devices instead of the daemon's fleet (daemon host only)",
    )
    .option(...dataDirOption)
    .action(async (opts: { json?: boolean; fleet?: string; dataDir?: string }) => {
      await withDaemonClient("report", opts, async (client) => {
        const report = (await client.report()) as FleetReport;
        console.log(opts.json ? JSON.stringify(report, null, 2) : renderReport(report));
        return undefined;
      });
    });
}
