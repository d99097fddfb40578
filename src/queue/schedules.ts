// Maintenance windows → BullMQ job schedulers. Each (window, runbook, target) of the fleet file becomes one scheduler
// that fires at the window's cron (in the window's time zone); the job of each slot gets a deterministic id from
// BullMQ (`repeat:<scheduler>:<slot ms>`), so no daemon, restart or second process can queue a slot twice.
// A scheduled job carries its window's name: a worker that picks it up after the window has closed (a backed-up
// queue, a daemon that was down) does not run it late but delays it to the next window start.
//
// Besides the windows, the daemon's own interval schedulers: automatic HA recovery (`ha-recover auto=true` every
// `defaults.haRecoverEveryMinutes`) as soon as one HA group says `auto: true`. `schedule list` shows them all.

import type { Queue } from "bullmq";
import { CronExpressionParser } from "cron-parser";
import type { Fleet, MaintenanceWindow } from "../config/schema.ts";
import {
  DEFAULT_JOB_OPTIONS,
  fleetDigest,
  type JobData,
  JobSubmitError,
  schedulerId,
  validateJobRequest,
} from "./jobs.ts";

const SCHEDULER_PREFIX = "sched--";

export interface WindowState {
  open: boolean;
  /** Start of the window the moment falls in (when open). */
  currentStart?: Date;
  /** When the current window closes (when open). */
  closesAt?: Date;
  /** The next window start after the moment. */
  nextStart: Date;
}

/** Whether `now` is inside a window, and when the next one starts. */
export function windowState(window: MaintenanceWindow, now: Date = new Date()): WindowState {
  const opts = { currentDate: now, tz: window.timezone };
  const nextStart = CronExpressionParser.parse(window.cron, opts).next().toDate();
  // A start exactly at `now` is the current window: prev() is strictly before now, so look 1 ms ahead.
  const prev = CronExpressionParser.parse(window.cron, {
    currentDate: new Date(now.getTime() + 1),
    tz: window.timezone,
  })
    .prev()
    .toDate();
  const closesAt = new Date(prev.getTime() + window.durationMinutes * 60_000);
  if (now.getTime() < closesAt.getTime())
    return {
      open: true,
      currentStart: prev,
      closesAt,
      nextStart,
    };
  return { open: false, nextStart };
}

/** How long a job of `window` must wait before it may start (0 = inside the window now). */
export function delayUntilWindow(window: MaintenanceWindow, now: Date = new Date()): number {
  const s = windowState(window, now);
  return s.open ? 0 : Math.max(0, s.nextStart.getTime() - now.getTime());
}

export function findWindow(fleet: Fleet, name: string): MaintenanceWindow | undefined {
  return fleet.maintenanceWindows.find((w) => w.name === name);
}

export interface ScheduleEntry {
  id: string;
  window: string;
  runbook: string;
  target: string;
  cron: string;
  timezone: string;
  durationMinutes: number;
}

/** The schedulers a fleet asks for, each validated like a submitted job (unknown runbook/target refuse). */
function plannedSchedules(fleet: Fleet): ScheduleEntry[] {
  const out: ScheduleEntry[] = [];
  const seen = new Set<string>();
  for (const w of fleet.maintenanceWindows) {
    for (const entry of w.runbooks) {
      const params = { ...entry.params, target: entry.target };
      try {
        validateJobRequest(fleet, entry.runbook, params);
      } catch (err) {
        if (err instanceof JobSubmitError)
          throw new JobSubmitError(`maintenance window '${w.name}': ${err.message}`, err.reason);
        throw err;
      }
      const id = schedulerId(w.name, entry.runbook, entry.target);
      if (seen.has(id))
        throw new JobSubmitError(
          `maintenance window '${w.name}' lists ${entry.runbook} on ${entry.target} twice`,
          "DuplicateSchedule",
        );
      seen.add(id);
      out.push({
        id,
        window: w.name,
        runbook: entry.runbook,
        target: entry.target,
        cron: w.cron,
        timezone: w.timezone,
        durationMinutes: w.durationMinutes,
      });
    }
  }
  return out;
}

/**
 * Make the queue's schedulers match the fleet's windows: upsert every planned one (idempotent: several daemons may
 * do it at once) and remove window schedulers the fleet no longer has.
 */
export async function syncSchedules(
  queue: Queue<JobData>,
  fleet: Fleet,
): Promise<{ upserted: string[]; removed: string[] }> {
  const planned = plannedSchedules(fleet);
  const digest = fleetDigest(fleet);
  const upserted: string[] = [];
  for (const s of plannedIntervalSchedules(fleet)) {
    const every = s.everyMinutes * 60_000;
    // The first run comes one interval after the scheduler is created (the daemon's own start is not an incident);
    // a daemon that starts again, or a second daemon, leaves a scheduler with the same interval and job as it is.
    const existing = await queue.getJobScheduler(s.id);
    const same =
      existing &&
      Number(existing.every) === every &&
      JSON.stringify((existing.template?.data as Partial<JobData> | undefined)?.params) ===
        JSON.stringify(s.params) &&
      (existing.template?.data as Partial<JobData> | undefined)?.fleetDigest === digest;
    if (same) {
      upserted.push(s.id);
      continue;
    }
    await queue.upsertJobScheduler(
      s.id,
      { every, startDate: new Date(Date.now() + every) },
      {
        name: s.runbook,
        data: {
          runbook: s.runbook,
          params: s.params,
          actor: s.actor,
          requestedAt: "scheduled",
          fleetDigest: digest,
        },
        opts: {
          attempts: DEFAULT_JOB_OPTIONS.attempts ?? 5,
          backoff: { type: "exponential", delay: 1000 },
          removeOnComplete: { age: 7 * 86_400, count: 10_000 },
          removeOnFail: { age: 30 * 86_400, count: 10_000 },
        },
      },
    );
    upserted.push(s.id);
  }
  for (const s of planned) {
    const window = findWindow(fleet, s.window)!;
    const entry = window.runbooks.find((r) => r.runbook === s.runbook && r.target === s.target)!;
    await queue.upsertJobScheduler(
      s.id,
      { pattern: s.cron, tz: s.timezone },
      {
        name: s.runbook,
        data: {
          runbook: s.runbook,
          params: { ...entry.params, target: s.target },
          actor: `schedule:${s.window}`,
          requestedAt: "scheduled",
          window: s.window,
          fleetDigest: digest,
        },
        opts: {
          attempts: DEFAULT_JOB_OPTIONS.attempts ?? 5,
          backoff: { type: "exponential", delay: 1000 },
          removeOnComplete: { age: 7 * 86_400, count: 10_000 },
          removeOnFail: { age: 30 * 86_400, count: 10_000 },
        },
      },
    );
    upserted.push(s.id);
  }
  const wanted = new Set(upserted);
  const removed: string[] = [];
  for (const existing of await queue.getJobSchedulers(0, -1)) {
    const id = existing.key;
    if (id.startsWith(SCHEDULER_PREFIX) && !wanted.has(id)) {
      await queue.removeJobScheduler(id);
      removed.push(id);
    }
  }
  return { upserted, removed };
}

/** A scheduler the daemon runs by itself, every N minutes (not a maintenance window). */
export interface IntervalSchedule {
  id: string;
  runbook: string;
  params: Record<string, unknown>;
  everyMinutes: number;
  actor: string;
  why: string;
}

/** The id of the automatic HA recovery scheduler. */
export const HA_RECOVER_AUTO_SCHEDULER = `${SCHEDULER_PREFIX}interval--ha-recover--auto`;

/** Automatic HA recovery, when any HA group is `auto: true`: every defaults.haRecoverEveryMinutes. */
function plannedIntervalSchedules(fleet: Fleet): IntervalSchedule[] {
  const auto = fleet.haGroups.filter((g) => g.auto).map((g) => g.label);
  if (auto.length === 0) return [];
  const params = { auto: true };
  validateJobRequest(fleet, "ha-recover", params);
  return [
    {
      id: HA_RECOVER_AUTO_SCHEDULER,
      runbook: "ha-recover",
      params,
      everyMinutes: fleet.defaults.haRecoverEveryMinutes,
      actor: "schedule:ha-recover-auto",
      why: `HA groups with auto: true (${auto.join(", ")})`,
    },
  ];
}

export interface ScheduleListing {
  id: string;
  /** Interval schedulers: every how many minutes. */
  everyMinutes?: number;
  params?: Record<string, unknown>;
  actor?: string;
  window?: string;
  runbook?: string;
  target?: string;
  cron?: string;
  timezone?: string;
  next?: Date;
}

/** The schedulers in the queue, soonest first. */
export async function listSchedules(queue: Queue<JobData>): Promise<ScheduleListing[]> {
  const all = await queue.getJobSchedulers(0, -1, true);
  return all.map((s) => {
    const data = s.template?.data as Partial<JobData> | undefined;
    return {
      id: s.key,
      ...(s.every ? { everyMinutes: Number(s.every) / 60_000 } : {}),
      ...(data?.params ? { params: data.params } : {}),
      ...(data?.actor ? { actor: data.actor } : {}),
      ...(data?.window ? { window: data.window } : {}),
      ...(data?.runbook ? { runbook: data.runbook } : {}),
      ...(typeof data?.params?.target === "string" ? { target: data.params.target } : {}),
      ...(s.pattern ? { cron: s.pattern } : {}),
      ...(s.tz ? { timezone: s.tz } : {}),
      ...(s.next ? { next: new Date(s.next) } : {}),
    };
  });
}
