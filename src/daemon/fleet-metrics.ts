// Fleet gauges on /metrics, read from the fleet state model at each scrape (the same buildReport() `report` prints,
// so the dashboard and the report cannot disagree). A fact never seen, or whose check failed, exports no 0/1 value
// (a missing series, not a green one); lunafleet_device_facts counts facts by status, so check-failed is visible.
// grafana/lunafleet-fleet.json reads these names; test/daemon/grafana-dashboard.test.ts holds them together.
import { Gauge, type Registry } from "prom-client";
import type { Fleet } from "../config/schema.ts";
import { listWaitingApprovals } from "../coord/approvals.ts";
import { FACT_STATUSES } from "../facts/model.ts";
import type { RedisClient } from "../redis/client.ts";
import { buildReport, REBOOT_PATCH_KB } from "./report.ts";

/** Every fleet gauge's name, for the dashboard test. */
export const FLEET_METRICS = [
  "lunafleet_device_reachable",
  "lunafleet_device_cert_days_left",
  "lunafleet_device_patch_installed",
  "lunafleet_ha_member_up",
  "lunafleet_device_quarantined_roles",
  "lunafleet_device_check_age_seconds",
  "lunafleet_device_facts",
  "lunafleet_device_problems",
  "lunafleet_device_retired",
  "lunafleet_jobs_awaiting_approval",
] as const;

export function registerFleetMetrics(
  registry: Registry,
  redis: RedisClient,
  fleet: Fleet,
  // The scrape's clock (ages and certificate days are "at scrape time"); a test injects one to assert exact values.
  opts: { now?: () => Date } = {},
): void {
  // One read of the model per scrape, shared by every gauge: prom-client calls each collect() in turn.
  let pending: Promise<void> | undefined;
  const refresh = (): Promise<void> => {
    pending ??= (async () => {
      try {
        const report = await buildReport(redis, fleet, opts.now ? { now: opts.now() } : {});
        for (const x of [reachable, certDays, patch, member, quarantined, age, facts, problems, retired])
          x.reset();
        for (const r of report.devices) {
          const device = r.device;
          retired.set({ device }, r.retired ? 1 : 0);
          if (r.retired) continue;
          if (r.reachable !== null) reachable.set({ device }, r.reachable ? 1 : 0);
          if (r.certDaysLeft !== null) certDays.set({ device }, r.certDaysLeft);
          if (r.rebootPatch !== null) patch.set({ device, kb: REBOOT_PATCH_KB }, r.rebootPatch ? 1 : 0);
          for (const h of r.ha)
            if (h.member.status === "ok" || h.member.status === "problem")
              member.set(
                { group: h.group, device, partition: h.partition },
                h.member.status === "ok" ? 1 : 0,
              );
          const q = (r.facts.guard?.value as { quarantined?: unknown[] } | undefined)?.quarantined;
          quarantined.set({ device }, Array.isArray(q) ? q.length : 0);
          const counts = Object.fromEntries(FACT_STATUSES.map((s) => [s, 0]));
          for (const f of Object.values(r.facts)) {
            counts[f.status] = (counts[f.status] ?? 0) + 1;
            if (f.ageSeconds !== null) age.set({ device, fact: f.fact }, f.ageSeconds);
          }
          for (const [status, n] of Object.entries(counts)) facts.set({ device, status }, n);
          problems.set({ device }, r.problems.length);
        }
        awaiting.set((await listWaitingApprovals(redis)).length);
      } finally {
        // The next scrape reads again.
        setImmediate(() => {
          pending = undefined;
        });
      }
    })();
    return pending;
  };
  const g = (name: (typeof FLEET_METRICS)[number], help: string, labelNames: string[] = []) =>
    new Gauge({ name, help, labelNames, registers: [registry], collect: refresh });
  const reachable = g(
    "lunafleet_device_reachable",
    "NTLS 1792 reachable with a TLS handshake (1/0); absent when unknown or the check failed",
    ["device"],
  );
  const certDays = g(
    "lunafleet_device_cert_days_left",
    "Days until the NTLS certificate expires (negative once expired), at scrape time",
    ["device"],
  );
  const patch = g(
    "lunafleet_device_patch_installed",
    "Required patch present (1) or missing (0); absent when unknown or the check failed",
    ["device", "kb"],
  );
  const member = g("lunafleet_ha_member_up", "HA member alive (1) or down (0) as last seen", [
    "group",
    "device",
    "partition",
  ]);
  const quarantined = g(
    "lunafleet_device_quarantined_roles",
    "Roles (credentials) the login guard holds in quarantine",
    ["device"],
  );
  const age = g("lunafleet_device_check_age_seconds", "Seconds since each fact of the device was last seen", [
    "device",
    "fact",
  ]);
  const facts = g(
    "lunafleet_device_facts",
    "Facts of the device by status (ok, problem, check-failed, unknown)",
    ["device", "status"],
  );
  const problems = g(
    "lunafleet_device_problems",
    "Problems and failed checks the report lists for the device",
    ["device"],
  );
  const retired = g(
    "lunafleet_device_retired",
    "1 when deprovision retired the device (zeroized and deleted)",
    ["device"],
  );
  const awaiting = g("lunafleet_jobs_awaiting_approval", "Jobs waiting for approvals (lunafleet approvals)");
}
