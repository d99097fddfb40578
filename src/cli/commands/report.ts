// `lunafleet report [device] [--json] [--stale-after 24h]`: the fleet, or one device, from the fleet state model
// (src/facts) only: each fact with its status, when it was seen and by which job; an age column and stale flags;
// retired devices as such; HA member state; guard state. `report <device>` adds the jobs that touched it.
import type { Command } from "commander";
import { buildDeviceDetail, buildReport, DEFAULT_STALE_AFTER_MS } from "../../daemon/report.ts";
import { renderDeviceDetail, renderReport } from "../../daemon/report-render.ts";
import { EXIT } from "../exit-codes.ts";
import { dataDirOption, durationOption, failCommand, withCommandFleet } from "../support.ts";

interface ReportOptions {
  json?: boolean;
  fleet?: string;
  dataDir?: string;
  staleAfter: number;
}

export function registerReportCommand(program: Command): void {
  program
    .command("report")
    .description(
      "per device from the fleet state model: NTLS, software/firmware, KB0019789, cert expiry, HA, guard, age; `report <device>` for one device and its jobs",
    )
    .argument(
      "[device]",
      "one device: every fact with its status, when and by which job, and its job history",
    )
    .option("--json", "print JSON (observedAt and status per fact)")
    .option(
      "--stale-after <duration>",
      "flag facts seen longer ago than this (e.g. 90m, 24h, 7d)",
      durationOption("--stale-after"),
      DEFAULT_STALE_AFTER_MS,
    )
    .option("--fleet <file>", "report on this fleet file's devices instead of the daemon's fleet")
    .option(...dataDirOption)
    .action(async (device: string | undefined, opts: ReportOptions) => {
      try {
        await withCommandFleet(
          opts,
          "no fleet: the daemon has not published one; pass --fleet <file>",
          async (conn, fleet) => {
            const reportOpts = { staleAfterMs: opts.staleAfter };
            if (device === undefined) {
              const report = await buildReport(conn.redis, fleet, reportOpts);
              console.log(opts.json ? JSON.stringify(report, null, 2) : renderReport(report));
              return;
            }
            const detail = await buildDeviceDetail(conn.redis, fleet, device, reportOpts);
            if (!detail) {
              console.error(
                `lunafleet report: no device '${device}' in the fleet or the state model (devices: ${fleet.devices.map((d) => d.name).join(", ")})`,
              );
              process.exitCode = EXIT.usage;
              return;
            }
            console.log(opts.json ? JSON.stringify(detail, null, 2) : renderDeviceDetail(detail));
          },
        );
      } catch (err) {
        failCommand("report", err);
      }
    });
}
