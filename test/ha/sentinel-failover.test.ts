// Redis Sentinel for real (issue 15): a primary, two replicas and three redis-sentinel processes on loopback; two
// daemons (their own processes) run a sweep plus ha-sync jobs with guarded logins; the primary is SIGKILLed mid-run.
// The sentinels fail over (awaited as +switch-master), and afterwards the counts of jobs, steps, locks, evidence and
// ledger entries say nothing was lost or done twice (test/ha/failover-run.ts says how each is counted).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type SentinelGroup, startSentinelGroup, until } from "../helpers/redis-ha.ts";
import { type FailoverCounts, runFailover } from "./failover-run.ts";

let ha: SentinelGroup;
let counts: FailoverCounts;
let switched: { host: string; port: number } | undefined;
let runningAtKill = 0;

beforeAll(async () => {
  ha = await startSentinelGroup({ replicas: 2, sentinels: 3 });
  counts = await runFailover({
    redisUrl: ha.url,
    rounds: 3,
    haSyncs: 3,
    async disrupt(running) {
      runningAtKill = await until(async () => (await running()) || undefined, "jobs running");
      // Subscribed first (awaited), then the kill: the event cannot be missed.
      const failover = await ha.watchSwitchMaster();
      await ha.primary.kill();
      switched = await failover.switched;
    },
  });
}, 300_000);

afterAll(async () => {
  await ha?.stop();
});

describe("Redis Sentinel: the primary SIGKILLed mid-run", () => {
  it("fails over to a replica", async () => {
    expect(counts.disruptedAt.active).toBeGreaterThan(0);
    expect(runningAtKill).toBeGreaterThan(0);
    expect(switched).toBeDefined();
    const primary = await ha.currentPrimary();
    expect(ha.replicas).toContain(primary);
    expect(switched).toEqual({ host: primary.host, port: primary.port });
  });

  it("every job completes, once", () => {
    expect(counts.jobs).toMatchObject({ completed: counts.jobs.submitted, failed: 0 });
    expect(counts.jobs.notSucceeded).toEqual([]);
    expect(counts.jobs.succeededTwice).toEqual([]);
  });

  it("no finished step runs twice", () => {
    expect(counts.steps.finishedTwice).toEqual([]);
    expect(counts.steps.checkpointMismatch).toEqual([]);
    // Each job reads its package list once, plus at most once more per extra start (a start whose read never
    // reached its checkpoint); finishedTwice above proves no finished read ran again.
    for (const [device, { sent, jobs, starts, errors }] of Object.entries(
      counts.steps.packageListPerDevice,
    )) {
      const why = `${device}: package list sent ${sent} times for ${jobs} patch-verify jobs started ${starts} times\n${errors.join("\n")}`;
      expect(sent, why).toBeGreaterThanOrEqual(jobs);
      expect(sent, why).toBeLessThanOrEqual(Math.max(jobs, starts));
    }
    expect(counts.steps.synchronizes.sent, counts.steps.synchronizes.results.join("\n")).toBe(
      counts.steps.synchronizes.jobs,
    );
  });

  it("no two holders of a device lock acted; no lock is left", () => {
    expect(counts.locks.overlaps).toEqual([]);
    expect(counts.locks.left).toEqual([]);
  });

  it("no evidence chain breaks", () => {
    expect(counts.evidence.problems).toEqual([]);
    expect(counts.evidence.verified).toBe(counts.jobs.submitted);
  });

  it("no recorded guard attempt is lost", () => {
    const recorded = counts.ledger.attemptsRecordedInEvidence;
    // Three CO logins per ha-sync job, each recorded before its password was sent.
    expect(Object.values(recorded).reduce((a, b) => a + b, 0)).toBe(3 * counts.steps.synchronizes.jobs);
    expect(counts.ledger.attemptsInLedger).toMatchObject(recorded);
    expect(counts.ledger.pendingOrQuarantined).toEqual([]);
  });
});
