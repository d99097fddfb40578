// Redis Cluster for real (issue 15): three primaries with two replicas each on loopback; two daemons (their own
// processes) run the same sweep plus guarded ha-sync jobs as the Sentinel test while, mid-run, slots of the primary
// that holds the job queue (the queue's among them) are resharded to another primary (their keys move under the
// running jobs), and then that new primary is SIGKILLed (its replica takes over). Every multi-key script keeps its keys in one slot (the
// script helper refuses anything else on every topology; here the server would too). Afterwards the same counts as
// for Sentinel say nothing was lost or done twice.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { QUEUE_PREFIX } from "../../src/queue/jobs.ts";
import { type ClusterGroup, type RedisProcess, startRedisCluster, until } from "../helpers/redis-ha.ts";
import { type FailoverCounts, itKeepsFailoverInvariants, runFailover } from "./failover-run.ts";

let cluster: ClusterGroup;
let counts: FailoverCounts;
const queueKey = `${QUEUE_PREFIX}:lunafleet-jobs:wait`;
const seen: {
  before?: RedisProcess;
  afterReshard?: RedisProcess;
  afterKill?: RedisProcess;
  runningAtKill?: number;
} = {};

beforeAll(async () => {
  // Two replicas per primary: after the kill the promoted replica still has one, so guarded logins whose ledger lives
  // on that shard are still acknowledged (the ledger never goes on without its replica: see replica-ack.ts).
  cluster = await startRedisCluster({ primaries: 3, replicasPerPrimary: 2 });
  counts = await runFailover({
    redisUrl: cluster.url,
    rounds: 3,
    haSyncs: 3,
    async disrupt(running) {
      const from = await cluster.primaryOf(queueKey);
      seen.before = from;
      // Another primary serving slots now (as the cluster says at this moment, not as it was at startup).
      const to = (await cluster.currentPrimaries()).find((p) => p !== from);
      if (!to) throw new Error(`no primary other than ${from.name} serves slots`);
      // Its first 2,000 slots (redis-cli moves a node's slots in order), the queue's among them: its keys, and the
      // locks', checkpoints', ledger's and evidence's keys in those slots, move under the running jobs. Not all of
      // them: a primary left without slots has no vote, and two voting primaries cannot fail one over.
      await cluster.reshard(from, to, 2000);
      await cluster.healthy();
      seen.afterReshard = await cluster.primaryOf(queueKey);
      // Strike while jobs run (the sweep keeps the queue fed until this returns).
      seen.runningAtKill = await until(async () => (await running()) || undefined, "jobs running");
      await seen.afterReshard.kill();
      // The dead primary's replica is promoted once the others agree it failed: every slot served again.
      await cluster.healthy();
      seen.afterKill = await cluster.primaryOf(queueKey);
    },
  });
}, 400_000);

afterAll(async () => {
  await cluster?.stop();
});

describe("Redis Cluster: resharding, then the primary SIGKILLed, mid-run", () => {
  it("moved the queue's slot to another primary, then failed it over to a replica", () => {
    expect(counts.disruptedAt.active).toBeGreaterThan(0);
    expect(seen.runningAtKill, "jobs were still running when the primary was killed").toBeGreaterThan(0);
    expect(seen.afterReshard).toBeDefined();
    expect(seen.afterReshard).not.toBe(seen.before);
    expect(seen.afterKill).toBeDefined();
    expect(seen.afterKill).not.toBe(seen.afterReshard);
    expect(cluster.replicas).toContain(seen.afterKill);
  });

  itKeepsFailoverInvariants(() => counts);
});
