// The Grafana dashboard in the repository (grafana/lunafleet-fleet.json) reads only metrics the daemon exports: every
// lunafleet_* name in its queries is in /metrics' registry (a renamed metric breaks this test, not a morning), and
// the fleet gauges carry what the state model holds (a fact never seen exports no 0/1 value).
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { FLEET_METRICS, registerFleetMetrics } from "../../src/daemon/fleet-metrics.ts";
import { createMetrics } from "../../src/daemon/metrics.ts";
import type { Observation } from "../../src/facts/model.ts";
import { RedisFactStore } from "../../src/facts/store.ts";
import { createJobQueue } from "../../src/queue/jobs.ts";
import { demoFleet } from "../helpers/engine.ts";
import { withRedis } from "../helpers/redis.ts";

const redis = await withRedis();
const dashboardFile = fileURLToPath(new URL("../../grafana/lunafleet-fleet.json", import.meta.url));

interface Panel {
  title: string;
  targets?: { expr: string }[];
}

function namesIn(expr: string): string[] {
  return [...expr.matchAll(/\blunafleet_[a-z0-9_]+\b/g)].map((m) => m[0]);
}

describe("grafana/lunafleet-fleet.json", () => {
  const queue = createJobQueue(redis.client());
  afterAll(() => queue.close());

  it("queries only metrics the daemon exports, and uses every fleet gauge", async () => {
    const dashboard = JSON.parse(readFileSync(dashboardFile, "utf8")) as { uid: string; panels: Panel[] };
    expect(dashboard.uid).toBe("lunafleet-fleet");
    const used = new Set(dashboard.panels.flatMap((p) => (p.targets ?? []).flatMap((t) => namesIn(t.expr))));
    expect(used.size).toBeGreaterThan(5);

    const metrics = createMetrics(queue);
    registerFleetMetrics(metrics.registry, redis.client(), demoFleet());
    const text = await metrics.registry.metrics();
    const exported = new Set([...text.matchAll(/^# HELP (lunafleet_[a-z0-9_]+) /gm)].map((m) => m[1]!));
    for (const name of used) expect(exported, `${name} is queried by the dashboard`).toContain(name);
    for (const name of FLEET_METRICS) expect(used, `${name} is on the dashboard`).toContain(name);
  });

  it("the gauges carry the model: reachable, member down, certificate days, patch, check age; nothing for a fact never seen", async () => {
    const client = redis.client();
    // The scrape's clock is injected: ages and days left are asserted exactly, whatever the machine's load.
    const scrapeAt = new Date("2026-03-01T12:00:00.000Z");
    const ago = (seconds: number) => new Date(scrapeAt.getTime() - seconds * 1000).toISOString();
    const o = (
      subject: string,
      fact: string,
      status: Observation["status"],
      value?: Observation["value"],
      secondsAgo = 0,
    ): Observation => ({
      subject,
      fact,
      status,
      summary: status,
      observedAt: ago(secondsAgo),
      jobId: "j1",
      by: "test",
      ...(value !== undefined ? { value } : {}),
    });
    const validTo = new Date(scrapeAt.getTime() + 5 * 86_400_000 - 864_000).toISOString(); // 4.99 days
    await new RedisFactStore(client).record([
      o("device:hsm-a1", "ntls", "ok", { endpoint: "x:1792", latencyMs: 1 }, 90),
      o("device:hsm-a2", "cert", "problem", { validTo, daysLeft: 4 }, 3600),
      o("device:hsm-b2", "ntls", "check-failed", undefined, 7),
      o("ha-member:ha-tokens/hsm-b2/par-tok", "member", "problem", { status: "down" }),
      o("device:hsm-a1", "patch:KB0019789", "ok", undefined, 86_400),
      o("device:hsm-a2", "patch:KB0019789", "problem", undefined, 120),
      o("device:hsm-b1", "patch:KB0019789", "check-failed", undefined, 60),
    ]);
    const metrics = createMetrics(queue);
    registerFleetMetrics(metrics.registry, client, demoFleet(), { now: () => scrapeAt });
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^lunafleet_device_reachable\{device="hsm-a1"\} 1$/m);
    expect(text).not.toMatch(/^lunafleet_device_reachable\{device="hsm-b2"\}/m); // its check failed: no value
    expect(text).not.toMatch(/^lunafleet_device_reachable\{device="hsm-b3"\}/m); // never seen: no value
    expect(text).toMatch(/^lunafleet_device_facts\{device="hsm-b2",status="check-failed"\} 1$/m);
    expect(text).toMatch(
      /^lunafleet_ha_member_up\{group="ha-tokens",device="hsm-b2",partition="par-tok"\} 0$/m,
    );
    expect(text).toMatch(/^lunafleet_device_cert_days_left\{device="hsm-a2"\} 4\.99$/m);
    // The required patch: installed 1, missing 0; a failed check and a device never checked export nothing.
    expect(text).toMatch(/^lunafleet_device_patch_installed\{device="hsm-a1",kb="KB0019789"\} 1$/m);
    expect(text).toMatch(/^lunafleet_device_patch_installed\{device="hsm-a2",kb="KB0019789"\} 0$/m);
    expect(text).not.toMatch(/^lunafleet_device_patch_installed\{device="hsm-b1"/m);
    expect(text).not.toMatch(/^lunafleet_device_patch_installed\{device="hsm-b3"/m);
    // Each fact's age at the scrape, in seconds, whatever its status; none for a fact never seen.
    const ages = [
      ...text.matchAll(/^lunafleet_device_check_age_seconds\{device="([^"]+)",fact="([^"]+)"\} (\S+)$/gm),
    ]
      .map((m) => `${m[1]} ${m[2]} ${m[3]}`)
      .sort();
    expect(ages).toEqual(
      [
        "hsm-a1 ntls 90",
        "hsm-a1 patch:KB0019789 86400",
        "hsm-a2 cert 3600",
        "hsm-a2 patch:KB0019789 120",
        "hsm-b1 patch:KB0019789 60",
        "hsm-b2 ntls 7",
      ].sort(),
    );
    expect(text).toMatch(/^lunafleet_jobs_awaiting_approval 0$/m);
  });
});
