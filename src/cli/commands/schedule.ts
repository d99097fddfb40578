// `lunafleet schedule list`: every scheduler the daemon runs — the maintenance windows (cron, next run, open now)
// and its interval schedulers (automatic HA recovery every N minutes) — with the next run of each, through the
// daemon client (src/api/ops/fleet.ts).
import type { Command } from "commander";
import { ago, dataDirOption, withDaemonClient } from "../support.ts";

export function registerScheduleCommands(program: Command): void {
  const schedule = program
    .command("schedule")
    .description("the daemon's schedulers (maintenance windows, automatic HA recovery)");
  schedule
    .command("list")
    .description("list every scheduler: window or interval, runbook, target, when, next run, window open now")
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
          console.log(
            "no schedules (the fleet has no maintenance windows and no auto HA group, or the daemon has not started)",
          );
          return undefined;
        }
        for (const r of rows) {
          const next = ago(r.next ? Date.parse(r.next) : undefined);
          console.log(
            r.everyMinutes !== undefined
              ? `every ${r.everyMinutes} min  ${r.runbook ?? "?"} ${describeParams(r.params)}  next ${next}  (${r.actor ?? r.id})`
              : `${r.window ?? "?"}  ${r.runbook ?? "?"} on ${r.target ?? "?"}  cron "${r.cron ?? "?"}" ${r.timezone ?? "UTC"}` +
                  `  ${r.durationMinutes ?? "?"} min  next ${next}  ${r.open ? "OPEN now" : "closed"}`,
          );
        }
        return undefined;
      });
    });
}

function describeParams(params: Record<string, unknown> | undefined): string {
  return Object.entries(params ?? {})
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join(" ");
}
