// `lunafleet schedule list`: the maintenance-window schedulers in the queue, their next run, and whether the
// window is open now (from the daemon's fleet), through the daemon client (src/api/ops/fleet.ts).
import type { Command } from "commander";
import { ago, dataDirOption, withDaemonClient } from "../support.ts";

export function registerScheduleCommands(program: Command): void {
  const schedule = program.command("schedule").description("maintenance-window schedules");
  schedule
    .command("list")
    .description("list the schedulers: window, runbook, target, cron, next run, window open now")
    .option("--json", "print JSON")
    .option(...dataDirOption)
    .action(async (opts: { json?: boolean; dataDir?: string }) => {
      await withDaemonClient("schedule list", opts, async (client) => {
        const rows = await client.schedules();
        if (opts.json) {
          console.log(JSON.stringify(rows, null, 2));
          return undefined;
        }
        if (rows.length === 0) {
          console.log("no schedules (the fleet has no maintenance windows, or the daemon has not started)");
          return undefined;
        }
        for (const r of rows)
          console.log(
            `${r.window ?? "?"}  ${r.runbook ?? "?"} on ${r.target ?? "?"}  cron "${r.cron ?? "?"}" ${r.timezone ?? "UTC"}` +
              `  ${r.durationMinutes ?? "?"} min  next ${ago(r.next ? Date.parse(r.next) : undefined)}  ${r.open ? "OPEN now" : "closed"}`,
          );
        return undefined;
      });
    });
}
