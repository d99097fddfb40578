// Submitting jobs: every kind of bad input is refused at submit time with a clear message and nothing is enqueued;
// maintenance windows become deterministic schedulers; a scheduled job outside its window waits for the next one.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadFleet } from "../../src/config/load.ts";
import type { Fleet } from "../../src/config/schema.ts";
import {
  cancelJob,
  createJobQueue,
  JobSubmitError,
  publicFleet,
  scheduledJobId,
  submitJob,
  submitJobs,
} from "../../src/queue/jobs.ts";
import {
  delayUntilWindow,
  HA_RECOVER_AUTO_SCHEDULER,
  listSchedules,
  syncSchedules,
  windowState,
} from "../../src/queue/schedules.ts";
import { withRedis } from "../helpers/redis.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const DEMO = join(ROOT, "config/demo.yaml");
const redis = await withRedis();
const client = redis.client();
const queue = createJobQueue(client);
const fleet = loadFleet(DEMO);
const tmp = mkdtempSync(join(tmpdir(), "lf-jobs-"));

afterAll(async () => {
  await queue.close();
  rmSync(tmp, { recursive: true, force: true });
});

async function queued(): Promise<number> {
  const c = await queue.getJobCounts("waiting", "delayed", "active", "prioritized", "completed", "failed");
  return Object.values(c).reduce((a, b) => a + b, 0);
}

async function refused(req: Parameters<typeof submitJob>[1]): Promise<JobSubmitError> {
  const before = await queued();
  const err = await submitJob(queue, req).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(JobSubmitError);
  expect(await queued()).toBe(before);
  return err as JobSubmitError;
}

describe("submitJob refuses bad input and enqueues nothing", () => {
  it("an unknown runbook", async () => {
    const err = await refused({ fleet, runbook: "reboot-everything", target: "hsm-a1" });
    expect(err.reason).toBe("UnknownRunbook");
    expect(err.message).toMatch(
      /unknown runbook 'reboot-everything' \(known runbooks: .*patch-verify.*tcp-check/,
    );
  });

  it("an unknown device", async () => {
    const err = await refused({ fleet, runbook: "patch-verify", target: "hsm-z9" });
    expect(err.reason).toBe("UnknownTargetError");
    expect(err.message).toMatch(/unknown target 'hsm-z9'.*hsm-a1/);
  });

  it("a parameter that fails the runbook's schema", async () => {
    const err = await refused({ fleet, runbook: "tcp-check", target: "hsm-a1", params: { timeoutMs: -1 } });
    expect(err.reason).toBe("ParamsInvalid");
    expect(err.message).toMatch(/timeoutMs/);
    const extra = await refused({
      fleet,
      runbook: "patch-verify",
      target: "hsm-a1",
      params: { reboot: true },
    });
    expect(extra.message).toMatch(/invalid parameters/);
  });

  it("a fleet file that fails validation (and its secrets never appear in the message)", async () => {
    const bad = readFileSync(DEMO, "utf8").replace('serial: "700102"', 'serial: "not-a-serial"');
    const file = join(tmp, "bad-fleet.yaml");
    writeFileSync(file, bad);
    const err = await refused({ fleetFile: file, runbook: "patch-verify", target: "hsm-a1" });
    expect(err.reason).toBe("FleetConfigError");
    expect(err.message).toMatch(/failed validation/);
    expect(err.message).toMatch(/devices\[1\]\.serial/);
    expect(err.message).not.toMatch(/Appliance-A2-pw/);
  });

  it("a caller's own job id queues once: the second submit of it creates nothing", async () => {
    const before = await queued();
    const req = {
      fleet,
      runbook: "patch-verify",
      target: "hsm-b3",
      actor: "operator:test",
      jobId: "nightly-b3-1",
    };
    const first = await submitJob(queue, req);
    const second = await submitJob(queue, req);
    expect([first.created, second.created]).toEqual([true, false]);
    expect(second.jobId).toBe("nightly-b3-1");
    expect(await queued()).toBe(before + 1);
  });

  it("accepts a good request; job data holds names and params only, never secrets or the fleet", async () => {
    const before = await queued();
    const { jobId, created, plan } = await submitJob(queue, {
      fleet,
      runbook: "patch-verify",
      target: "hsm-b3",
      actor: "operator:test",
    });
    expect(created).toBe(true);
    expect(plan.targets.devices).toEqual(["hsm-b3"]);
    expect(await queued()).toBe(before + 1);
    const job = await queue.getJob(jobId);
    expect(Object.keys(job!.data).sort()).toEqual([
      "actor",
      "fleetDigest",
      "params",
      "requestedAt",
      "runbook",
    ]);
    expect(job!.data.params).toEqual({ target: "hsm-b3" });
    const raw = JSON.stringify(job!.data);
    for (const secret of ["Appliance-B3-pw", "HsmSo-B3-secret", "127.0.1.6"])
      expect(raw).not.toContain(secret);
    // Cancel before any worker took it: removed from the queue.
    expect(await cancelJob(queue, client, jobId)).toBe("removed");
    expect(await queue.getJob(jobId)).toBeUndefined();
    expect(await cancelJob(queue, client, jobId)).toBe("unknown");
  });

  it("the published fleet carries no credentials", () => {
    const text = JSON.stringify(publicFleet(fleet));
    expect(text).not.toMatch(/credentials|Appliance-A1-pw|HsmSo-A1-secret|ParSo-A1-secret/);
    expect(publicFleet(fleet).devices.map((d) => d.name)).toEqual(fleet.devices.map((d) => d.name));
  });
});

describe("submitJobs (a sweep's jobs in bulk)", () => {
  const devices = () => fleet.devices.map((d) => d.name);

  it("queues every request in order, each with the data submitJob would give it", async () => {
    const before = await queued();
    const reqs = devices().map((target) => ({ fleet, runbook: "tcp-check", target, actor: "operator:test" }));
    const submitted = await submitJobs(queue, reqs);
    expect(submitted.map((s) => s.plan.targets.devices)).toEqual(devices().map((d) => [d]));
    expect(submitted.every((s) => s.created)).toBe(true);
    expect(new Set(submitted.map((s) => s.jobId)).size).toBe(reqs.length);
    expect(await queued()).toBe(before + reqs.length);
    // The queue hands them out in the order given.
    const waiting = await queue.getJobs(["waiting"], 0, -1, true);
    const ours = waiting.filter((j) => submitted.some((s) => s.jobId === j.id));
    expect(ours.map((j) => j.data.params.target)).toEqual(devices());
    const one = ours[0]!;
    expect(Object.keys(one.data).sort()).toEqual([
      "actor",
      "fleetDigest",
      "params",
      "requestedAt",
      "runbook",
    ]);
    expect(one.opts.attempts).toBe(5);
    for (const s of submitted) await cancelJob(queue, client, s.jobId);
  });

  it("one refused request queues none of them", async () => {
    const before = await queued();
    const reqs = [
      { fleet, runbook: "tcp-check", target: "hsm-a1" },
      { fleet, runbook: "tcp-check", target: "hsm-z9" },
    ];
    const err = await submitJobs(queue, reqs).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JobSubmitError);
    expect((err as JobSubmitError).message).toMatch(/unknown target 'hsm-z9'/);
    expect(await queued()).toBe(before);
  });

  it("refuses a caller's own id (it may name a job that exists: submitJob checks that)", async () => {
    const err = await submitJobs(queue, [
      { fleet, runbook: "tcp-check", target: "hsm-a1", jobId: "mine-1" },
    ]).catch((e: unknown) => e);
    expect((err as JobSubmitError).reason).toBe("BadJobId");
    expect(await queue.getJob("mine-1")).toBeUndefined();
  });
});

describe("maintenance windows", () => {
  const window = { ...fleet.maintenanceWindows[0]! }; // sunday-night: "0 2 * * 0", 120 min, UTC

  it("knows when a window is open and when the next one starts", () => {
    const inside = new Date("2030-01-06T02:30:00Z"); // a Sunday
    expect(windowState(window, inside)).toMatchObject({ open: true });
    expect(windowState(window, inside).currentStart?.toISOString()).toBe("2030-01-06T02:00:00.000Z");
    expect(delayUntilWindow(window, inside)).toBe(0);
    const after = new Date("2030-01-06T04:00:00Z"); // closed at 04:00 exactly
    expect(windowState(window, after).open).toBe(false);
    expect(delayUntilWindow(window, after)).toBe(7 * 86_400_000 - 2 * 3_600_000);
    const start = new Date("2030-01-06T02:00:00Z");
    expect(windowState(window, start).open).toBe(true);
  });

  it("become one scheduler per (window, runbook, target), idempotently, with deterministic job ids", async () => {
    // Windows only here (no automatic HA recovery: the next test has it).
    const windowsOnly: Fleet = { ...fleet, haGroups: fleet.haGroups.map((g) => ({ ...g, auto: false })) };
    const first = await syncSchedules(queue, windowsOnly);
    const again = await syncSchedules(queue, windowsOnly);
    expect(first.upserted).toEqual(again.upserted);
    expect(first.upserted).toHaveLength(2);
    const listed = await listSchedules(queue);
    expect(listed.map((s) => `${s.window} ${s.runbook} ${s.target} ${s.cron}`).sort()).toEqual([
      "sunday-night patch-verify fleet 0 2 * * 0",
      "sunday-night tcp-check fleet 0 2 * * 0",
    ]);
    // The next slot's job exists once, under the id scheduledJobId computes.
    const delayed = await queue.getDelayed();
    const next = listed[0]!.next!;
    const ids = delayed.map((j) => j.id);
    expect(ids).toContain(scheduledJobId("sunday-night", listed[0]!.runbook!, "fleet", next));
    expect(new Set(ids).size).toBe(ids.length);
    expect(delayed.filter((j) => j.data.window === "sunday-night")).toHaveLength(2);

    // A fleet without the window: its schedulers go away.
    const without: Fleet = { ...windowsOnly, maintenanceWindows: [] };
    const synced = await syncSchedules(queue, without);
    expect(synced.removed.sort()).toEqual([...first.upserted].sort());
    expect(await listSchedules(queue)).toEqual([]);
  });

  it("an HA group with auto: true gets automatic recovery every haRecoverEveryMinutes, and its first run is queued", async () => {
    const auto: Fleet = {
      ...fleet,
      maintenanceWindows: [],
      defaults: { ...fleet.defaults, haRecoverEveryMinutes: 7 },
      haGroups: fleet.haGroups.map((g, i) => ({ ...g, auto: i === 0 })),
    };
    expect(auto.haGroups.length).toBeGreaterThan(0);
    const synced = await syncSchedules(queue, auto);
    expect(synced.upserted).toEqual([HA_RECOVER_AUTO_SCHEDULER]);
    const listed = await listSchedules(queue);
    expect(listed).toEqual([
      expect.objectContaining({
        id: HA_RECOVER_AUTO_SCHEDULER,
        everyMinutes: 7,
        runbook: "ha-recover",
        params: { auto: true },
        actor: "schedule:ha-recover-auto",
      }),
    ]);
    // The scheduler has put its first run in the queue: an ha-recover auto=true job by the schedule.
    const queued = [...(await queue.getWaiting()), ...(await queue.getDelayed())].filter(
      (j) => j.data.actor === "schedule:ha-recover-auto",
    );
    expect(queued).toHaveLength(1);
    expect(queued[0]!.data).toMatchObject({ runbook: "ha-recover", params: { auto: true } });
    // Due one interval after the scheduler was made (not at the daemon's start), and a second sync leaves it alone.
    expect(await queued[0]!.getState()).toBe("delayed");
    expect(queued[0]!.timestamp + queued[0]!.delay).toBeGreaterThan(Date.now() + 6.5 * 60_000);
    await syncSchedules(queue, auto);
    expect(
      (await queue.getDelayed()).filter((j) => j.data.actor === "schedule:ha-recover-auto").map((j) => j.id),
    ).toEqual([queued[0]!.id]);
    // No auto group any more: the scheduler goes.
    const none = await syncSchedules(queue, {
      ...auto,
      haGroups: auto.haGroups.map((g) => ({ ...g, auto: false })),
    });
    expect(none.removed).toEqual([HA_RECOVER_AUTO_SCHEDULER]);
    expect(await listSchedules(queue)).toEqual([]);
    await queue.drain(true);
  });

  it("a window that names an unknown runbook or target is refused", async () => {
    const bad: Fleet = {
      ...fleet,
      maintenanceWindows: [
        { ...window, runbooks: [{ runbook: "patch-verify", target: "hsm-q1", params: {} }] },
      ],
    };
    await expect(syncSchedules(queue, bad)).rejects.toThrow(
      /maintenance window 'sunday-night'.*unknown target 'hsm-q1'/,
    );
  });
});
