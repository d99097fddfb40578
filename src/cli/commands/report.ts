// `lunafleet report [--json]`: one row per device from the latest tcp-check / patch-verify results in Redis.
import type { Command } from "commander";
import { buildReport, renderReport } from "../../daemon/report.ts";
import { dataDirOption, failCommand, withCommandFleet } from "../support.ts";

export function registerReportCommand(program: Command): void {
  program
    .command("report")
    .description(
      "per device: NTLS reachable, software/firmware, KB0019789, cert expiry, HA, guard (from the latest jobs)",
    )
    .option("--json", "print JSON")
    .option("--fleet <file>", "report on this fleet file's devices instead of the daemon's fleet")
    .option(...dataDirOption)
    .action(async (opts: { json?: boolean; fleet?: string; dataDir?: string }) => {
      try {
        await withCommandFleet(
          opts,
          "no fleet: the daemon has not published one; pass --fleet <file>",
          async (conn, fleet) => {
            const report = await buildReport(conn.redis, fleet);
            console.log(opts.json ? JSON.stringify(report, null, 2) : renderReport(report));
          },
        );
      } catch (err) {
        failCommand("report", err);
      }
    });
}
