// The per-member breaker of ha-recover: a member whose recovery failed `threshold` times in a row is left alone
// until an operator releases it (`lunafleet ha release-breaker <group> <member>`). Counts live in ctx.state (Redis),
// so every worker and every later job sees the same breaker. Open breakers are a metric and a warn log.
import { Counter, Gauge, register } from "prom-client";
import type { StateStore } from "../../src/engine/ports.ts";

/** The member key used in state, CLI and metrics: `<device>/<partition>`. */
export const memberKey = (device: string, partition: string): string => `${device}/${partition}`;

const failuresKey = (group: string, member: string) => `ha-breaker:${group}:${member}:failures`;

function metric<T>(name: string, make: () => T): T {
  return (register.getSingleMetric(name) as T | undefined) ?? make();
}

/** 1 while a member's breaker is open (no further recovery attempts), 0 once it closes or is released. */
export const breakerOpenGauge = metric(
  "lunafleet_ha_breaker_open",
  () =>
    new Gauge({
      name: "lunafleet_ha_breaker_open",
      help: "1 while an HA member's recovery breaker is open (no automatic recovery until released)",
      labelNames: ["group", "member"] as const,
    }),
);

/** Breakers that tripped (a member reached the threshold of consecutive failed recoveries). */
const breakerTripsCounter = metric(
  "lunafleet_ha_breaker_trips_total",
  () =>
    new Counter({
      name: "lunafleet_ha_breaker_trips_total",
      help: "HA member recovery breakers that tripped",
      labelNames: ["group", "member"] as const,
    }),
);

export interface BreakerState {
  failures: number;
  open: boolean;
}

export async function readBreaker(
  state: StateStore,
  group: string,
  member: string,
  threshold: number,
): Promise<BreakerState> {
  const raw = await state.get(failuresKey(group, member));
  const failures = raw === null ? 0 : Number(raw);
  if (!Number.isInteger(failures) || failures < 0)
    throw new Error(`breaker state of ${group}/${member} is unreadable ('${raw}'); fix or release it`);
  const open = failures >= threshold;
  breakerOpenGauge.set({ group, member }, open ? 1 : 0);
  return { failures, open };
}

/** One more failed recovery; returns the new state (open when it reached the threshold). */
export async function recordFailure(
  state: StateStore,
  group: string,
  member: string,
  threshold: number,
): Promise<BreakerState> {
  const failures = await state.incr(failuresKey(group, member));
  const open = failures >= threshold;
  if (open) {
    breakerOpenGauge.set({ group, member }, 1);
    if (failures === threshold) breakerTripsCounter.inc({ group, member });
  }
  return { failures, open };
}

/** A recovery succeeded: the count starts again. */
export async function recordSuccess(state: StateStore, group: string, member: string): Promise<void> {
  await state.del(failuresKey(group, member));
  breakerOpenGauge.set({ group, member }, 0);
}

/** The operator's release: clears the count (the next job may try again). Returns the count it cleared. */
export async function releaseBreaker(state: StateStore, group: string, member: string): Promise<number> {
  const raw = await state.get(failuresKey(group, member));
  await state.del(failuresKey(group, member));
  breakerOpenGauge.set({ group, member }, 0);
  return raw === null ? 0 : Number(raw);
}
