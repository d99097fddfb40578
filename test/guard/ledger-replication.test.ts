// The guard ledger on a Redis with a replica (issue 15): the attempt is acknowledged by the replica (WAIT) before the
// password is sent, and a ledger write the replica cannot acknowledge stops the login — refused, nothing sent to
// the device, the slot given back as not sent (no failure counted, no quarantine). Real redis-server primary and
// replica on loopback, the twin over SSH.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { GuardRefused } from "../../src/guard/errors.ts";
import { LoginGuard } from "../../src/guard/guard.ts";
import { ledgerKeyFor, ledgerRedisKey } from "../../src/guard/ledger.ts";
import { connectRedis, type RedisClient } from "../../src/redis/client.ts";
import { replicaAckPolicy } from "../../src/redis/replica-ack.ts";
import {
  type GuardTwin,
  lockDevice,
  MemoryEvidence,
  resetGuardTest,
  resetTwin,
  startGuardTwin,
  WorkerShells,
} from "../helpers/guard.ts";
import { type SentinelGroup, startSentinelGroup } from "../helpers/redis-ha.ts";

let ha: SentinelGroup;
let g: GuardTwin;
let shells: WorkerShells;
let redis: RedisClient;
let guard: LoginGuard;

beforeAll(async () => {
  // A primary and one replica; no sentinel is needed to show what WAIT does.
  ha = await startSentinelGroup({ replicas: 1, sentinels: 0 });
  g = await startGuardTwin();
  shells = new WorkerShells(g.fleet);
  redis = connectRedis({ url: `redis://${ha.primary.host}:${ha.primary.port}` });
  guard = new LoginGuard(redis);
}, 60_000);

afterAll(async () => {
  ha?.replicas[0]?.resume();
  redis?.disconnect();
  await shells?.close();
  await g?.twin.stop();
  await ha?.stop();
});

beforeEach(() => resetGuardTest(g, redis));

const state = (d: string) => g.twin.appliances.get(d)!.state;
const loginsSent = (d: string) => state(d).commandLog.filter((c) => /^hsm login/.test(c.command)).length;
const replica = () => ha.replicas[0]!;

describe("guard ledger acknowledged by a replica", () => {
  it("requires one replica's acknowledgement on a server that has one", async () => {
    expect(await replicaAckPolicy(redis)).toMatchObject({ replicas: 1 });
  });

  it("a guarded login: the attempt and its outcome are on the replica when the login returns", async () => {
    const locks = await lockDevice(redis, g.fleet, "hsm-g1", "job-ack-1");
    try {
      const res = await guard.login({
        session: await shells.lunash("hsm-g1"),
        fleet: g.fleet,
        device: "hsm-g1",
        role: "hsmSo",
        jobId: "job-ack-1",
        locks,
        evidence: new MemoryEvidence(),
      });
      expect(res.role).toBe("hsmSo");
    } finally {
      await locks.release();
    }
    expect(loginsSent("hsm-g1")).toBe(1);
    // Read from the replica itself, with no wait: WAIT already made it hold the outcome.
    const onReplica = await replica()
      .client()
      .hgetall(ledgerRedisKey(ledgerKeyFor(g.fleet, "hsm-g1", "hsmSo")));
    expect(onReplica).toMatchObject({ lastOutcome: "success", failures: "0" });
  });

  it("a ledger write the replica cannot acknowledge stops the login: refused, nothing sent, nothing counted", async () => {
    resetTwin(g);
    const ev = new MemoryEvidence();
    // The lock is taken (and acknowledged) first; then the replica stops answering.
    const locks = await lockDevice(redis, g.fleet, "hsm-g1", "job-ack-2");
    replica().pause();
    let err: unknown;
    try {
      await guard.login({
        session: await shells.lunash("hsm-g1"),
        fleet: g.fleet,
        device: "hsm-g1",
        role: "hsmSo",
        jobId: "job-ack-2",
        locks,
        evidence: ev,
      });
    } catch (e) {
      err = e;
    } finally {
      replica().resume();
      await locks.release();
    }
    expect(err).toBeInstanceOf(GuardRefused);
    expect((err as Error).message).toMatch(/acknowledged by 0 of the 1 replica/);
    // Nothing reached the device.
    expect(loginsSent("hsm-g1")).toBe(0);
    expect(state("hsm-g1").soFailures).toBe(0);
    expect(ev.events()).toEqual(["refused"]);
    // The slot was given back as not sent: no pending attempt, no failure, no quarantine.
    const entry = await guard.ledger.get(ledgerKeyFor(g.fleet, "hsm-g1", "hsmSo"));
    expect(entry.pendingAttempt).toBeUndefined();
    expect(entry).toMatchObject({ failures: 0, quarantined: false, lastOutcome: "not-sent" });
  });
});
