// The guard's state is what the operator sees (issue 12, item 2 and 8): a credential the guard quarantined after a
// wrong password shows in `lunafleet report` (the GUARD column and a problem line saying how to release it) and on
// /metrics (lunafleet_device_quarantined_roles); a release clears both. Over the twin (real SSH) and a real Redis:
// the quarantine comes from a real failed login through the job's guard, the release from the ledger release a
// guard-admin's (approved) request performs.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { registerFleetMetrics } from "../../src/daemon/fleet-metrics.ts";
import { buildReport } from "../../src/daemon/report.ts";
import { renderReport } from "../../src/daemon/report-render.ts";
import { LoginFailed } from "../../src/guard/errors.ts";
import { LoginGuard } from "../../src/guard/guard.ts";
import { jobGuard } from "../../src/guard/job-guard.ts";
import { releaseQuarantine } from "../../src/guard/release.ts";
import {
  type GuardTwin,
  lockDevice,
  MemoryEvidence,
  resetGuardTest,
  startGuardTwin,
  WorkerShells,
} from "../helpers/guard.ts";
import { withRedis } from "../helpers/redis.ts";

const redis = await withRedis();
let g: GuardTwin;
let shells: WorkerShells;
const dataDir = mkdtempSync(join(tmpdir(), "lunafleet-guard-report-"));

beforeAll(async () => {
  g = await startGuardTwin();
  shells = new WorkerShells(g.fleet);
  await resetGuardTest(g, redis.client());
}, 30_000);

afterAll(async () => {
  await shells?.close();
  await g?.twin.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

/** What the operator sees of a device: its report row, its GUARD cell as printed, its problem lines. */
async function seen(device: string) {
  const report = await buildReport(redis.client(), g.fleet);
  const lines = renderReport(report).split("\n");
  const header = lines[0]!;
  const row = lines.find((l) => l.startsWith(`${device} `))!;
  const at = header.indexOf("GUARD");
  expect(at).toBeGreaterThan(0);
  return {
    guard: report.devices.find((d) => d.device === device)!.guard,
    guardCell: row.slice(at).split(/\s{2,}/)[0],
    problems: report.problems.filter((p) => p.startsWith(`${device}: `)),
  };
}

/** The device's quarantined_roles gauge as /metrics exports it (its registry, scraped). */
async function quarantinedRoles(device: string): Promise<string | undefined> {
  const registry = new Registry();
  registerFleetMetrics(registry, redis.client(), g.fleet);
  const text = await registry.metrics();
  const m = text.match(
    new RegExp(`^lunafleet_device_quarantined_roles\\{device="${device}"\\} (\\S+)$`, "m"),
  );
  return m?.[1];
}

describe("the guard's quarantine in report and /metrics", () => {
  it("a quarantine is in report (GUARD column, problem line) and /metrics; a release clears both", async () => {
    const partition = g.fleet.devices.find((d) => d.name === "hsm-g1")!.partitions[0]!;
    const right = partition.credentials.co;
    partition.credentials.co = "Wrong-CO-password-7";
    const jobId = "job-guard-report-1";
    const locks = await lockDevice(redis.client(), g.fleet, "hsm-g1", jobId);
    try {
      const guard = jobGuard({
        guard: new LoginGuard(redis.client()),
        shells: shells.shells,
        fleet: g.fleet,
        jobId,
        locks,
        evidence: new MemoryEvidence(),
        redis: redis.client(),
        runbook: "ha-sync",
      });
      const err = await guard.login("hsm-g1", "co", { partition: "par-g1" }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LoginFailed);
    } finally {
      await locks.release();
      partition.credentials.co = right;
    }

    const quarantined = await seen("hsm-g1");
    expect(quarantined.guard).toBe("quarantined: par-g1/co");
    expect(quarantined.guardCell).toBe("quarantined: par-g1/co");
    expect(quarantined.problems).toContainEqual(
      'hsm-g1: guard quarantine: par-g1/co (after fixing it: lunafleet guard release hsm-g1 co --partition par-g1 --reason "…")',
    );
    expect(await quarantinedRoles("hsm-g1")).toBe("1");
    // The other appliance's guard never recorded a login: no state claimed, no quarantine counted.
    expect((await seen("hsm-g2")).guardCell).toBe("-");
    expect(await quarantinedRoles("hsm-g2")).toBe("0");

    await releaseQuarantine(redis.client(), dataDir, {
      device: "hsm-g1",
      role: "co",
      partition: "par-g1",
      reason: "CO password corrected in the fleet file's secret store",
      principal: "alice",
    });
    const released = await seen("hsm-g1");
    expect(released.guard).toBe("ok");
    expect(released.guardCell).toBe("ok");
    expect(released.problems.filter((p) => /guard/.test(p))).toEqual([]);
    expect(await quarantinedRoles("hsm-g1")).toBe("0");
  });
});
