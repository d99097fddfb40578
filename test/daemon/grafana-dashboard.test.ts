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

  it("the gauges carry the model: reachable, member down, certificate days; nothing for a fact never seen", async () => {
    const client = redis.client();
    const now = new Date().toISOString();
    const o = (
      subject: string,
      fact: string,
      status: Observation["status"],
      value?: Observation["value"],
    ): Observation => ({
      subject,
      fact,
      status,
      summary: status,
      observedAt: now,
      jobId: "j1",
      by: "test",
      ...(value !== undefined ? { value } : {}),
    });
    const validTo = new Date(Date.now() + 5 * 86_400_000).toISOString();
    await new RedisFactStore(client).record([
      o("device:hsm-a1", "ntls", "ok", { endpoint: "x:1792", latencyMs: 1 }),
      o("device:hsm-a2", "cert", "problem", { validTo, daysLeft: 4 }),
      o("device:hsm-b2", "ntls", "check-failed"),
      o("ha-member:ha-tokens/hsm-b2/par-tok", "member", "problem", { status: "down" }),
    ]);
    const metrics = createMetrics(queue);
    registerFleetMetrics(metrics.registry, client, demoFleet());
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^lunafleet_device_reachable\{device="hsm-a1"\} 1$/m);
    expect(text).not.toMatch(/^lunafleet_device_reachable\{device="hsm-b2"\}/m); // its check failed: no value
    expect(text).not.toMatch(/^lunafleet_device_reachable\{device="hsm-b3"\}/m); // never seen: no value
    expect(text).toMatch(/^lunafleet_device_facts\{device="hsm-b2",status="check-failed"\} 1$/m);
    expect(text).toMatch(
      /^lunafleet_ha_member_up\{group="ha-tokens",device="hsm-b2",partition="par-tok"\} 0$/m,
    );
    expect(text).toMatch(/^lunafleet_device_cert_days_left\{device="hsm-a2"\} 4\.9\d$/m);
    expect(text).toMatch(/^lunafleet_jobs_awaiting_approval 0$/m);
  });
});
