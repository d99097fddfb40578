// The fleet report, read only from the fleet state model: certificate days left at report time with the expiry
// instant (a 5-day certificate reads 4.99 d, not 4); a failed check shown as CHECK FAILED with its reason, time and
// job (never an older green value); the age column and stale flags; a retired device shown as retired; a pair's
// problem blamed on that pair's appliance only; `report <device>` with every fact and its job history.
import { describe, expect, it } from "vitest";
import { certFact } from "../../runbooks/lib/facts.ts";
import { buildDeviceDetail, buildReport } from "../../src/daemon/report.ts";
import { renderDeviceDetail, renderReport } from "../../src/daemon/report-render.ts";
import type { Observation, ObservationInput } from "../../src/facts/model.ts";
import { RedisFactStore } from "../../src/facts/store.ts";
import { demoFleet } from "../helpers/engine.ts";
import { withRedis } from "../helpers/redis.ts";

const redis = await withRedis();
const DAY = 86_400_000;

const at = (o: ObservationInput, when: Date, jobId = "job-1", by = "tcp-check"): Observation => ({
  ...o,
  observedAt: when.toISOString(),
  jobId,
  by,
});

describe("fleet report from the state model", () => {
  it("shows certificate days left to the hundredth with the instant, and keeps the whole-day field", async () => {
    const fleet = demoFleet();
    const now = new Date("2026-11-23T11:03:00Z");
    const seen = new Date(now.getTime() - 60_000);
    const fiveDays = new Date("2026-11-28T11:02:00Z");
    const expired = new Date(now.getTime() - 2.5 * DAY);
    const long = new Date(now.getTime() + 400 * DAY);
    const cert = (device: string, validTo: Date, soon: boolean) =>
      certFact(
        device,
        {
          validTo: validTo.toISOString(),
          daysLeft: Math.trunc((validTo.getTime() - now.getTime()) / DAY),
          fingerprint256: "AA",
          subject: `CN=${device}`,
          expired: validTo.getTime() <= now.getTime(),
        },
        soon,
      );
    const client = redis.client();
    const store = new RedisFactStore(client);
    await store.record([
      at(cert("hsm-a2", fiveDays, true), seen),
      at(cert("hsm-b1", expired, true), seen),
      at(cert("hsm-a1", long, false), seen),
    ]);
    const report = await buildReport(client, fleet, { now });
    const a2 = report.devices.find((d) => d.device === "hsm-a2")!;
    expect(a2.certExpiresInDays).toBe(4);
    expect(a2.certDaysLeft).toBe(4.99);
    expect(a2.certExpiresAt).toBe("2026-11-28T11:02:00.000Z");
    expect(a2.problems).toContain("NTLS certificate expires in 4.99 days (2026-11-28 11:02Z)");
    expect(a2.facts.cert).toMatchObject({
      status: "problem",
      observedAt: seen.toISOString(),
      jobId: "job-1",
    });
    const b1 = report.devices.find((d) => d.device === "hsm-b1")!;
    expect(b1.certDaysLeft).toBe(-2.5);
    expect(b1.problems).toContain("NTLS certificate expired 2.50 days ago (2026-11-20 23:03Z)");
    const a1 = report.devices.find((d) => d.device === "hsm-a1")!;
    expect(a1.problems.some((p) => /certificate/.test(p))).toBe(false);

    const text = renderReport(report);
    expect(text).toMatch(/^DEVICE .*NTLS CERT EXPIRES .*CHECKED/);
    expect(text).toMatch(/hsm-a2 .* 4\.99 d \(2026-11-28 11:02Z\) \(!\)/);
    expect(text).toMatch(/hsm-b1 .* -2\.50 d \(2026-11-20 23:03Z\) \(!\)/);
    expect(text).toMatch(/hsm-a1 .* 400\.00 d \(\d{4}-\d\d-\d\d \d\d:\d\dZ\)(?! \(!\))/);
    // A device never checked stays unknown, and says it was never checked.
    expect(text).toMatch(/hsm-b3 +in service +unknown/);
    expect(report.problems).toContain("hsm-b3: NTLS never checked (run tcp-check)");
  });

  it("a failed check replaces an older green fact: CHECK FAILED with reason, time and job, listed as a problem", async () => {
    const fleet = demoFleet();
    const store = new RedisFactStore(redis.client());
    const t0 = new Date("2026-11-23T10:00:00Z");
    const t1 = new Date("2026-11-23T11:00:00Z");
    await store.record([
      at(
        {
          subject: "device:hsm-b2",
          fact: "software",
          status: "ok",
          summary: "7.2.0-220 / firmware 7.0.3",
          value: { softwareVersion: "7.2.0-220", firmware: "7.0.3" },
        },
        t0,
        "pv-old",
        "patch-verify",
      ),
      at(
        { subject: "device:hsm-b2", fact: "patch:KB0019789", status: "ok", summary: "installed" },
        t0,
        "pv-old",
        "patch-verify",
      ),
    ]);
    const failed = (fact: string) =>
      at(
        {
          subject: "device:hsm-b2",
          fact,
          status: "check-failed",
          summary: "check failed",
          reason: "ConnectionLost: connection dropped (hsm show)",
        },
        t1,
        "pv-new",
        "patch-verify",
      );
    await store.record([failed("software"), failed("patch:KB0019789")]);
    // An observation older than the stored one does not win.
    await store.record([
      at(
        { subject: "device:hsm-b2", fact: "software", status: "ok", summary: "old" },
        t0,
        "pv-late",
        "patch-verify",
      ),
    ]);
    const now = new Date(t1.getTime() + 5 * 60_000);
    const report = await buildReport(redis.client(), fleet, { now });
    const b2 = report.devices.find((d) => d.device === "hsm-b2")!;
    expect(b2.facts.software).toMatchObject({
      status: "check-failed",
      jobId: "pv-new",
      observedAt: t1.toISOString(),
      ageSeconds: 300,
    });
    expect(b2.softwareVersion).toBeNull();
    expect(b2.rebootPatch).toBeNull();
    expect(report.problems).toContain(
      "hsm-b2: software: CHECK FAILED at 2026-11-23 11:00Z (patch-verify job pv-new): ConnectionLost: connection dropped (hsm show)",
    );
    expect(report.problems).toContain(
      "hsm-b2: patch:KB0019789: CHECK FAILED at 2026-11-23 11:00Z (patch-verify job pv-new): ConnectionLost: connection dropped (hsm show)",
    );
    expect(renderReport(report)).toMatch(
      /hsm-b2 +in service +unknown +CHECK FAILED +CHECK FAILED +CHECK FAILED +CHECK FAILED/,
    );
  });

  it("flags stale facts by the configured age; a retired device is shown as retired, not up", async () => {
    const fleet = demoFleet();
    const store = new RedisFactStore(redis.client());
    const old = new Date("2026-11-20T00:00:00Z");
    const now = new Date("2026-11-23T00:00:00Z");
    await store.record([
      at(
        {
          subject: "device:hsm-a3",
          fact: "ntls",
          status: "ok",
          summary: "up 1ms",
          value: { endpoint: "x:1792", latencyMs: 1 },
        },
        old,
      ),
      at({ subject: "device:hsm-b3", fact: "ntls", status: "ok", summary: "up 1ms" }, old),
      at(
        {
          subject: "device:hsm-b3",
          fact: "lifecycle",
          status: "ok",
          summary: "RETIRED (deleted)",
          value: "deleted",
        },
        now,
        "dep-1",
        "deprovision",
      ),
    ]);
    const report = await buildReport(redis.client(), fleet, { now, staleAfterMs: DAY });
    expect(report.stale).toContain("hsm-a3: ntls seen 3d ago");
    expect(report.stale.some((s) => s.startsWith("hsm-b3"))).toBe(false);
    const b3 = report.devices.find((d) => d.device === "hsm-b3")!;
    expect(b3).toMatchObject({ state: "retired", retired: true, problems: [] });
    const text = renderReport(report);
    expect(text).toMatch(/hsm-a3 +in service +up 1ms .* 3d ago STALE/);
    expect(text).toMatch(/hsm-b3 +RETIRED +- +- /);
    // A week of staleness allowed: nothing is stale.
    expect((await buildReport(redis.client(), fleet, { now, staleAfterMs: 7 * DAY })).stale).toEqual([]);
  });

  it("a pair's problem is that pair's appliance's, and report <device> lists facts and jobs", async () => {
    const fleet = demoFleet();
    const client = redis.client();
    const store = new RedisFactStore(client);
    const t = new Date("2026-11-23T12:00:00Z");
    await store.record([
      at(
        {
          subject: "pair:hsm-a1|client-a",
          fact: "trust",
          status: "problem",
          summary: "mismatched",
          reason: "hsm-a1 <-> client-a mismatched: client-a trusts a stale copy",
        },
        t,
        "ntls-1",
        "ntls-cert-sync",
      ),
      at(
        { subject: "pair:hsm-a2|client-a", fact: "trust", status: "ok", summary: "in sync" },
        t,
        "ntls-1",
        "ntls-cert-sync",
      ),
    ]);
    await store.recordJob("hsm-a1", {
      jobId: "ntls-1",
      runbook: "ntls-cert-sync",
      outcome: "succeeded-with-findings",
      actor: "operator:alice",
      finishedAt: t.toISOString(),
    });
    const report = await buildReport(client, fleet, { now: t });
    const blamed = report.problems.filter((p) => /mismatched/.test(p));
    expect(blamed).toEqual(["hsm-a1: hsm-a1 <-> client-a mismatched: client-a trusts a stale copy"]);
    const detail = (await buildDeviceDetail(client, fleet, "hsm-a1", { now: t }))!;
    expect(detail.jobs.map((j) => j.jobId)).toEqual(["ntls-1"]);
    const text = renderDeviceDetail(detail);
    expect(text).toMatch(
      /trust <-> client-a +problem +mismatched +2026-11-23 12:00Z \(0s ago\) +ntls-cert-sync ntls-1/,
    );
    expect(text).toMatch(
      /2026-11-23 12:00Z +succeeded-with-findings +ntls-cert-sync +ntls-1 +operator:alice/,
    );
    expect(await buildDeviceDetail(client, fleet, "no-such", { now: t })).toBeNull();
  });
});
