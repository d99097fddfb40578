// `lunafleet report [device] [--json] [--stale-after 24h]`: the fleet, or one device, from the fleet state model
// (src/facts) only: each fact with its status, when it was seen and by which job; an age column and stale flags;
// retired devices as such; HA member state; guard state. `report <device>` adds the jobs that touched it. Through
// the daemon client (the API with LUNAFLEET_URL; on the daemon host --fleet reports on that file's devices instead).
import type { Command } from "commander";
import { DEFAULT_STALE_AFTER_MS, type DeviceDetail, type FleetReport } from "../../daemon/report.ts";
import { renderDeviceDetail, renderReport } from "../../daemon/report-render.ts";
import { ApiCallError } from "../daemon-client.ts";
import { EXIT } from "../exit-codes.ts";
import { dataDirOption, durationOption, withDaemonClient } from "../support.ts";

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
    .option(
      "--fleet <file>",
      "report on this fleet file's devices instead of the daemon's fleet (daemon host only)",
    )
    .option(...dataDirOption)
    .action(async (device: string | undefined, opts: ReportOptions) => {
      await withDaemonClient("report", opts, async (client) => {
        if (device === undefined) {
          const report = (await client.report({ staleAfterMs: opts.staleAfter })) as FleetReport;
          console.log(opts.json ? JSON.stringify(report, null, 2) : renderReport(report));
          return undefined;
        }
        let detail: DeviceDetail;
        try {
          detail = (await client.report({ device, staleAfterMs: opts.staleAfter })) as DeviceDetail;
        } catch (err) {
          if (!(err instanceof ApiCallError && err.status === 404)) throw err;
          console.error(`lunafleet report: ${err.message}`);
          return EXIT.usage;
        }
        console.log(opts.json ? JSON.stringify(detail, null, 2) : renderDeviceDetail(detail));
        return undefined;
      });
    });
}
