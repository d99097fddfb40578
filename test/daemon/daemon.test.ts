// `npm start -- --once`, in-process: the demo twin (rebased to a private loopback block), the embedded Redis and
// the daemon; a fleet sweep; the report must show the demo's planted problems. Then, on the same running daemon:
// /metrics and /healthz, cancelling a running job, and a scheduled job that waits for its maintenance window.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DemoRun, runDemo } from "../../src/cli/demo.ts";
import { verifyJobEvidence } from "../../src/evidence/log.ts";
import { cancelJob, submitJob } from "../../src/queue/jobs.ts";
import { windowState } from "../../src/queue/schedules.ts";

const dataDir = mkdtempSync(join(tmpdir(), "lf-demo-"));
let demo: DemoRun;
const printed: string[] = [];

beforeAll(async () => {
  demo = await runDemo({ dataDir, rebase: true, httpPort: 0, print: (l) => printed.push(l) });
});

afterAll(async () => {
  await demo?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

// Waits on the state itself with no deadline of its own, which load could beat: the test's timeout is the hang guard.
async function waitState(id: string, states: string[]): Promise<string> {
  for (;;) {
    const state = (await (await demo.daemon.queue.getJob(id))?.getState()) ?? "missing";
    if (states.includes(state)) return state;
    await sleep(50);
  }
}

describe("npm start --once (in-process, rebased twin)", () => {
  it("sweeps the fleet and reports the planted problems", async () => {
    // 14 sweep jobs (tcp-check + patch-verify on 7 devices) and the Managed HSM sweep (audit, cmk-health, placement).
    expect(demo.jobs).toHaveLength(17);
    expect(demo.jobs.every((j) => j.state === "completed")).toBe(true);
    const b3 = demo.report.devices.find((d) => d.device === "hsm-b3")!;
    expect(b3).toMatchObject({ rebootPatch: false, rebootUnsafe: true, reachable: true });
    const a2 = demo.report.devices.find((d) => d.device === "hsm-a2")!;
    expect(a2.certExpiringSoon).toBe(true);
    expect(a2.certExpiresInDays).toBeGreaterThanOrEqual(4);
    expect(a2.certExpiresInDays).toBeLessThanOrEqual(5);
    // The demo's 5-day certificate right after start: just under 5 days, not "4".
    expect(a2.certDaysLeft).toBeGreaterThan(4.9);
    expect(a2.certDaysLeft).toBeLessThan(5);
    const a1 = demo.report.devices.find((d) => d.device === "hsm-a1")!;
    expect(a1).toMatchObject({ rebootUnsafe: false, softwareVersion: "7.2.0-220", firmware: "7.0.3" });
    expect(a1.certExpiresInDays).toBeGreaterThan(300);
    expect(demo.report.problems).toContain("hsm-b3: KB0019789 reboot patch missing: REBOOT-UNSAFE");
    expect(
      demo.report.problems.some((p) =>
        /^hsm-a2: NTLS certificate expires in 4\.9\d days \(\d{4}-\d\d-\d\d \d\d:\d\dZ\)$/.test(p),
      ),
    ).toBe(true);
    // The Managed HSM facts join the report from the fleet state model: the demo's planted problems, each once.
    const pay = demo.report.managedHsms.find((m) => m.managedHsm === "mhsm-pay")!;
    expect(pay).toMatchObject({
      lifecycle: "active",
      activationStatus: "Active",
      purgeProtection: false,
      keys: 3,
    });
    expect(pay.facts.keys).toMatchObject({ status: "problem", by: "mhsm-audit" });
    expect(pay.facts["purge-protection"]).toMatchObject({ status: "problem", summary: "off" });
    expect(pay.facts["gate:payments-api"] ?? pay.facts["consumer:payments-api"]).toBeDefined();
    expect(pay.consumers.map((c) => `${c.consumer}:${c.gate}`)).toEqual([
      "secret-server:passed",
      "payments-api:passed",
    ]);
    const dr = demo.report.managedHsms.find((m) => m.managedHsm === "mhsm-dr")!;
    expect(dr.activationStatus).toBe("NotActivated");
    const mhsmProblems = demo.report.problems.filter((p) => /^(mhsm-|consumer |vault )/.test(p));
    expect(mhsmProblems.map((p) => p.replace(/: .*$/, "")).sort()).toEqual(
      [
        "consumer payments-api",
        "consumer payments-api",
        "consumer secret-server",
        "mhsm-dr",
        "mhsm-pay",
        "mhsm-pay/keys/legacy-export",
        "vault kv-app-std/keys/app-dek",
      ].sort(),
    );
    const text = printed.join("\n");
    expect(text).toMatch(
      /mhsm-pay +active +Active +OFF +Disabled +3 +secret-server:passed,payments-api:passed/,
    );
    expect(text).toMatch(/hsm-b3 .*MISSING +UNSAFE/);
    expect(text).toMatch(/hsm-a2 .* 4\.9\d d \(\d{4}-\d\d-\d\d \d\d:\d\dZ\) \(!\)/);
    // Every sweep job left verifiable evidence (Redis and file copy agree).
    const check = await verifyJobEvidence(demo.daemon.redis, dataDir, demo.jobs[0]!.jobId);
    expect(check.ok).toBe(true);
  });

  it("serves /metrics and /healthz on its local port", async () => {
    const base = `http://127.0.0.1:${demo.daemon.http!.port}`;
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ ok: true, redis: "ok", worker: "running" });
    const metrics = await (await fetch(`${base}/metrics`)).text();
    // Six patched devices succeed; hsm-b3 (no reboot patch) is a finding, never plain green.
    expect(metrics).toMatch(/lunafleet_jobs_finished_total\{runbook="patch-verify",outcome="succeeded"\} 6/);
    expect(metrics).toMatch(
      /lunafleet_jobs_finished_total\{runbook="patch-verify",outcome="succeeded-with-findings"\} 1/,
    );
    expect(metrics).toMatch(/lunafleet_jobs\{state="completed"\} 17/);
    expect(metrics).toMatch(
      /lunafleet_step_duration_seconds_count\{runbook="patch-verify",step="hsm-show"\} 7/,
    );
    // 14 device jobs, the two Managed HSM jobs that lock their pools, and vault-placement, which locks none of its
    // targets (it only reads) and takes the lock of its own job id instead.
    expect(metrics).toMatch(/lunafleet_device_lock_wait_seconds_count\{acquired="true"\} 17/);
    expect(metrics).toMatch(/lunafleet_ssh_connections [1-9]/);
    expect(metrics).toMatch(/lunafleet_shell_sessions 0/);
  });

  it("cancels a running job before its next step", async () => {
    await demo.twin.setFault("hsm-a1", "slow", "400");
    try {
      const { jobId } = await submitJob(demo.daemon.queue, {
        fleet: demo.twin.fleet,
        runbook: "patch-verify",
        target: "hsm-a1",
        actor: "test",
      });
      expect(await waitState(jobId, ["active"])).toBe("active");
      expect(await cancelJob(demo.daemon.queue, demo.daemon.redis, jobId)).toBe("flagged");
      expect(await waitState(jobId, ["failed", "completed"])).toBe("failed");
      const job = await demo.daemon.queue.getJob(jobId);
      expect(job?.failedReason).toMatch(/JobCancelled/);
      expect(job?.attemptsMade).toBe(1); // never retried
    } finally {
      await demo.twin.setFault("hsm-a1", "slow", "off");
    }
  });

  it("a job of a closed maintenance window waits for the window's next start", async () => {
    const window = demo.twin.fleet.maintenanceWindows[0]!;
    const state = windowState(window);
    const { jobId } = await submitJob(demo.daemon.queue, {
      fleet: demo.twin.fleet,
      runbook: "patch-verify",
      target: "hsm-a3",
      window: window.name,
      actor: "test",
    });
    if (state.open) {
      expect(await waitState(jobId, ["completed"])).toBe("completed");
      return;
    }
    // The worker takes it, sees the window closed, and moves it to the next window start.
    // (Awaited with no deadline of its own: the test's timeout is the hang guard.)
    let job = await demo.daemon.queue.getJob(jobId);
    while (!(job?.processedOn && (await job.getState()) === "delayed")) {
      await sleep(50);
      job = await demo.daemon.queue.getJob(jobId);
    }
    expect(await job!.getState()).toBe("delayed");
    // Re-read: the object above may have been fetched while the job was still active (processedOn already set,
    // delay not yet), and only its state was read fresh.
    job = await demo.daemon.queue.getJob(jobId);
    const runsAt = job!.timestamp + job!.delay;
    expect(Math.abs(runsAt - state.nextStart.getTime())).toBeLessThan(5_000);
    await job!.remove();
  });
});
