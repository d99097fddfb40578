// The fleet report's certificate column and problems: exact days left at report time with the expiry instant (a
// 5-day certificate reads 4.99 d, not 4), from the tcp-check finding in real Redis.
import { describe, expect, it } from "vitest";
import { buildReport, renderReport } from "../../src/daemon/report.ts";
import type { JobResult } from "../../src/engine/runner.ts";
import { recordFindings } from "../../src/queue/findings.ts";
import { demoFleet } from "../engine/support.ts";
import { withRedis } from "../helpers/redis.ts";

const redis = await withRedis();
const DAY = 86_400_000;

function tcpCheckResult(entries: Record<string, unknown>[]): JobResult {
  return {
    jobId: `tcp-check-report-${Math.random().toString(36).slice(2)}`,
    runbook: "tcp-check",
    status: "succeeded",
    targets: { devices: entries.map((e) => String(e.device)), clientHosts: [] },
    steps: [{ id: "report", status: "succeeded", result: { devices: entries } }],
  } as unknown as JobResult;
}

const probe = (device: string, validTo: Date, now: Date, soon: boolean) => ({
  device,
  endpoint: `${device}:1792`,
  reachable: true,
  handshakeOk: true,
  latencyMs: 1.2,
  cert: { validTo: validTo.toISOString(), daysLeft: Math.trunc((validTo.getTime() - now.getTime()) / DAY) },
  expiresInDays: Math.trunc((validTo.getTime() - now.getTime()) / DAY),
  certExpiringSoon: soon,
});

describe("fleet report: certificate expiry", () => {
  it("shows days left to the hundredth with the expiry instant, and keeps the whole-day field", async () => {
    const fleet = demoFleet();
    const now = new Date("2026-11-23T11:03:00Z");
    const fiveDays = new Date("2026-11-28T11:02:00Z"); // made a minute before `now`, valid 5 days
    const expired = new Date(now.getTime() - 2.5 * DAY);
    const long = new Date(now.getTime() + 400 * DAY);
    const client = redis.client();
    await recordFindings(
      client,
      tcpCheckResult([
        probe("hsm-a2", fiveDays, now, true),
        probe("hsm-b1", expired, now, true),
        probe("hsm-a1", long, now, false),
      ]),
    );
    const report = await buildReport(client, fleet, now);
    const a2 = report.devices.find((d) => d.device === "hsm-a2")!;
    expect(a2.certExpiresInDays).toBe(4);
    expect(a2.certDaysLeft).toBe(4.99);
    expect(a2.certExpiresAt).toBe("2026-11-28T11:02:00.000Z");
    expect(a2.problems).toContain("NTLS certificate expires in 4.99 days (2026-11-28 11:02Z)");
    const b1 = report.devices.find((d) => d.device === "hsm-b1")!;
    expect(b1.certDaysLeft).toBe(-2.5);
    expect(b1.problems).toContain("NTLS certificate expired 2.50 days ago (2026-11-20 23:03Z)");
    const a1 = report.devices.find((d) => d.device === "hsm-a1")!;
    expect(a1.problems.some((p) => /certificate/.test(p))).toBe(false);

    const text = renderReport(report);
    expect(text).toMatch(/^DEVICE .*NTLS CERT EXPIRES/);
    expect(text).toMatch(/hsm-a2 .* 4\.99 d \(2026-11-28 11:02Z\) \(!\)/);
    expect(text).toMatch(/hsm-b1 .* -2\.50 d \(2026-11-20 23:03Z\) \(!\)/);
    expect(text).toMatch(/hsm-a1 .* 400\.00 d \(\d{4}-\d\d-\d\d \d\d:\d\dZ\)(?! \(!\))/);
    // A device never checked stays unknown.
    expect(text).toMatch(/hsm-b3 .* unknown/);
  });
});
