// `lunafleet schedule list`: every scheduler the daemon runs — the maintenance windows (cron, next run, open now)
// and its interval schedulers (automatic HA recovery every N minutes) — with the next run of each.
import type { Command } from "commander";
import { readPublishedFleet } from "../../queue/jobs.ts";
import { findWindow, listSchedules, windowState } from "../../queue/schedules.ts";
import { connectCli } from "../connection.ts";
import { ago, dataDirOption, failCommand } from "../support.ts";

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
      try {
        const conn = await connectCli(opts.dataDir ? { dataDir: opts.dataDir } : {});
        try {
          const fleet = await readPublishedFleet(conn.redis);
          const rows = (await listSchedules(conn.queue)).map((s) => {
            const w = fleet && s.window ? findWindow(fleet, s.window) : undefined;
            const st = w ? windowState(w) : undefined;
            return { ...s, open: st?.open ?? null, durationMinutes: w?.durationMinutes ?? null };
          });
          if (opts.json) {
            console.log(JSON.stringify(rows, null, 2));
            return;
          }
          if (rows.length === 0) {
            console.log(
              "no schedules (the fleet has no maintenance windows and no auto HA group, or the daemon has not started)",
            );
            return;
          }
          for (const r of rows)
            console.log(
              r.everyMinutes !== undefined
                ? `every ${r.everyMinutes} min  ${r.runbook ?? "?"} ${describeParams(r.params)}  next ${ago(r.next?.getTime())}  (${r.actor ?? r.id})`
                : `${r.window ?? "?"}  ${r.runbook ?? "?"} on ${r.target ?? "?"}  cron "${r.cron ?? "?"}" ${r.timezone ?? "UTC"}` +
                    `  ${r.durationMinutes ?? "?"} min  next ${ago(r.next?.getTime())}  ${r.open ? "OPEN now" : "closed"}`,
            );
        } finally {
          await conn.close();
        }
      } catch (err) {
        failCommand("schedule list", err);
      }
    });
}

function describeParams(params: Record<string, unknown> | undefined): string {
  return Object.entries(params ?? {})
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join(" ");
}
