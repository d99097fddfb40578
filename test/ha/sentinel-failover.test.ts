// Redis Sentinel for real (issue 15): a primary, two replicas and three redis-sentinel processes on loopback; two
// daemons (their own processes) run a sweep plus ha-sync jobs with guarded logins; the primary is SIGKILLed mid-run.
// The sentinels fail over (awaited as +switch-master), and afterwards the counts of jobs, steps, locks, evidence and
// ledger entries say nothing was lost or done twice (test/ha/failover-run.ts says how each is counted).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type SentinelGroup, startSentinelGroup, until } from "../helpers/redis-ha.ts";
import { type FailoverCounts, itKeepsFailoverInvariants, runFailover } from "./failover-run.ts";

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

  itKeepsFailoverInvariants(() => counts);
});
