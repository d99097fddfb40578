// `lunafleet report [--json]`: one row per device from the latest tcp-check / patch-verify results in Redis.
import type { Command } from "commander";
import { dataDirOption, failCommand } from "../../daemon/cli-support.ts";
import { connectCli } from "../../daemon/client.ts";
import { buildReport, renderReport } from "../../daemon/report.ts";
import { JobSubmitError, loadFleetForSubmit, readPublishedFleet } from "../../queue/jobs.ts";

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
        const fileFleet = opts.fleet ? loadFleetForSubmit(opts.fleet) : undefined;
        const conn = await connectCli(opts.dataDir ? { dataDir: opts.dataDir } : {});
        try {
          const fleet = fileFleet ?? (await readPublishedFleet(conn.redis));
          if (!fleet)
            throw new JobSubmitError(
              "no fleet: the daemon has not published one; pass --fleet <file>",
              "NoFleet",
            );
          const report = await buildReport(conn.redis, fleet);
          console.log(opts.json ? JSON.stringify(report, null, 2) : renderReport(report));
        } finally {
          await conn.close();
        }
      } catch (err) {
        failCommand("report", err);
      }
    });
}
