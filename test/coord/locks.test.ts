import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Redis } from "ioredis";
import { describe, expect, it, vi } from "vitest";
import {
  acquireDeviceLocks,
  assertFence,
  fenceKey,
  LockError,
  LockLostError,
  LockUnavailableError,
  lockKey,
  readLock,
  releaseLock,
  renewLock,
} from "../../src/coord/locks.ts";
import { connectRedis } from "../../src/redis/client.ts";
import { startEmbeddedRedis } from "../../src/redis/embedded-server.ts";
import { withRedis } from "../helpers/redis.ts";

const redis = await withRedis();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let uniq = 0;
/** A fresh resource name per test, so tests never see each other's locks or counters. */
const res = (name: string) => `device:${name}-${++uniq}`;

/**
 * A connection whose script calls (every lock operation is one) go through `around`, which gets the call's keys and
 * sends it when it chooses: a test orders two jobs' lock attempts by events instead of by sleeping.
 */
function scriptCalls(
  conn: Redis,
  around: (keys: string[], send: () => Promise<unknown>) => Promise<unknown>,
): Redis {
  return new Proxy(conn, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (prop !== "evalsha" && prop !== "eval")
        return typeof value === "function" ? value.bind(target) : value;
      return (script: string, numKeys: number, ...rest: (string | number)[]) =>
        around(rest.slice(0, numKeys).map(String), () => value.call(target, script, numKeys, ...rest));
    },
  });
}

/** Poll a condition with no deadline of its own (the test's timeout is the hang guard). */
async function waitUntil(cond: () => Promise<boolean>): Promise<void> {
  while (!(await cond())) await sleep(2);
}

describe("device locks", () => {
  it("three workers on separate connections never hold the same device together", async () => {
    const device = res("hsm-a1");
    const probe = redis.client();
    const tokens: number[] = [];
    let inside = 0;
    let maxInside = 0;
    const worker = async (name: string) => {
      const conn = redis.client();
      for (let i = 0; i < 6; i++) {
        const set = await acquireDeviceLocks(conn, [device], {
          owner: `${name}-${i}`,
          ttlMs: 2000,
          waitMs: 5000,
        });
        // Inside: count holders both locally and in Redis (another connection sees the same truth).
        inside++;
        maxInside = Math.max(maxInside, inside);
        expect(await probe.incr(`lf:test:inside:${device}`)).toBe(1);
        tokens.push(set.tokenFor(device));
        await sleep(3);
        await probe.decr(`lf:test:inside:${device}`);
        inside--;
        expect(await set.release()).toEqual([device]);
      }
    };
    await Promise.all([worker("w1"), worker("w2"), worker("w3")]);
    expect(maxInside).toBe(1);
    expect(tokens).toHaveLength(18);
    // Tokens come out in the order the lock was granted: strictly increasing, one per acquisition.
    expect(tokens).toEqual([...tokens].sort((a, b) => a - b));
    expect(new Set(tokens).size).toBe(18);
    expect(await readLock(probe, device)).toBeNull();
  });

  it("two jobs wanting {a,b} and {b,a} at the same time both finish (fixed order, no deadlock)", async () => {
    // The interleaving that deadlocks without a fixed order, arranged by events rather than a sleep: job 1 has taken
    // a and is about to ask for b; job 2 (asked for b, a) asks now. With the fixed order job 2 asks for a first,
    // is refused, and holds nothing — in particular not b, which would leave both waiting on each other. Only then
    // does job 1 ask for b.
    const a = res("a");
    const b = res("b");
    const probe = redis.client();
    let job2Refused!: () => void;
    const job2Waiting = new Promise<void>((resolve) => {
      job2Refused = resolve;
    });
    let bHolderWhenJob2Waited: string | null | undefined;
    // Job 1's connection: its attempt on b goes out only once job 2 has been refused.
    const c1 = scriptCalls(redis.client(), async (keys, send) => {
      if (keys.includes(lockKey(b))) await job2Waiting;
      return send();
    });
    // Job 2's connection: tells when an attempt was refused (the lock held by someone else).
    const c2 = scriptCalls(redis.client(), async (_keys, send) => {
      const reply = await send();
      if (Array.isArray(reply) && reply[0] === 0) {
        bHolderWhenJob2Waited ??= (await readLock(probe, b))?.owner ?? null;
        job2Refused();
      }
      return reply;
    });
    const job = async (conn: typeof c1, owner: string, wants: string[]) => {
      // waitMs: a hang guard; job 2 waits exactly as long as job 1 holds a.
      const set = await acquireDeviceLocks(conn, wants, { owner, ttlMs: 5000, waitMs: 60_000 });
      expect(set.locks.map((l) => l.resource)).toEqual([a, b]); // taken in sorted order whatever was asked
      await set.release();
      return owner;
    };
    const job1 = job(c1, "j1", [a, b]);
    await waitUntil(async () => (await readLock(probe, a))?.owner === "j1");
    const done = await Promise.all([job1, job(c2, "j2", [b, a])]);
    expect(done).toEqual(["j1", "j2"]);
    expect(bHolderWhenJob2Waited).toBeNull(); // job 2 waited holding nothing
  });

  it("is all-or-nothing: a lock not free within waitMs releases the ones already taken", async () => {
    const a = res("a");
    const b = res("b");
    const conn = redis.client();
    const holder = await acquireDeviceLocks(conn, [b], { owner: "job-holder", ttlMs: 5000, waitMs: 0 });
    const started = Date.now();
    const err = await acquireDeviceLocks(conn, [a, b], { owner: "job-late", ttlMs: 5000, waitMs: 150 }).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(LockUnavailableError);
    expect(err.resource).toBe(b);
    expect(err.heldBy).toBe("job-holder");
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect(await readLock(conn, a)).toBeNull(); // given back
    expect((await readLock(conn, b))?.owner).toBe("job-holder");
    await holder.release();
  });

  it("issues a strictly increasing fencing token per resource", async () => {
    const d = res("fence");
    const conn = redis.client();
    const seen: number[] = [];
    // As fast as one connection can: take and give back the lock 30 times back to back.
    for (let i = 0; i < 30; i++) {
      const set = await acquireDeviceLocks(conn, [d], {
        owner: `job-${i}`,
        ttlMs: 1000,
        waitMs: 0,
        autoRenew: false,
      });
      seen.push(set.tokenFor(d));
      await set.release();
    }
    for (let i = 1; i < seen.length; i++) expect(seen[i]).toBeGreaterThan(seen[i - 1]!);
    expect(seen.every(Number.isSafeInteger)).toBe(true);
    // Redis lost the counter (failover to a lagging replica, AOF loss): the next token is still newer.
    await conn.del(fenceKey(d));
    const after = await acquireDeviceLocks(conn, [d], { owner: "job-after-loss", ttlMs: 1000, waitMs: 0 });
    expect(after.tokenFor(d)).toBeGreaterThan(seen[seen.length - 1]!);
    await after.release();
  });

  it("expires when the owner stops renewing; the stale owner's renew, release and fence are refused", async () => {
    const d = res("expiry");
    const c1 = redis.client();
    const c2 = redis.client();
    const stale = await acquireDeviceLocks(c1, [d], {
      owner: "job-dead",
      ttlMs: 150,
      waitMs: 0,
      autoRenew: false,
    });
    const staleToken = stale.tokenFor(d);
    // The live job waits; it gets the lock once the dead owner's TTL runs out, with a newer token.
    const fresh = await acquireDeviceLocks(c2, [d], { owner: "job-live", ttlMs: 5000, waitMs: 2000 });
    const freshToken = fresh.tokenFor(d);
    expect(freshToken).toBeGreaterThan(staleToken);

    expect(await renewLock(c1, d, "job-dead", staleToken, 5000)).toBe(false);
    expect(await releaseLock(c1, d, "job-dead", staleToken)).toBe(false);
    // Same owner name but the old token: still refused (a retried job with the same id is a new holder).
    expect(await releaseLock(c1, d, "job-live", staleToken)).toBe(false);
    const fenceErr = await assertFence(c1, d, staleToken).catch((e) => e);
    expect(fenceErr).toBeInstanceOf(LockLostError);
    expect(fenceErr.message).toContain(`now held by job job-live with token ${freshToken}`);
    await expect(stale.renew()).rejects.toBeInstanceOf(LockLostError);
    expect(stale.lost).toBeInstanceOf(LockLostError);
    expect(await stale.release()).toEqual([]);

    // The live holder is untouched by all of that.
    await assertFence(c2, d, freshToken);
    expect(await readLock(c2, d)).toMatchObject({ owner: "job-live", token: freshToken });
    expect(await fresh.release()).toEqual([d]);
    // Once released, even the right token no longer passes the fence.
    await expect(assertFence(c2, d, freshToken)).rejects.toThrow(/expired/);
  });

  it("renews automatically: a lock held far beyond its TTL stays held", async () => {
    // Deterministic: the set's renewal timer and its clock are faked, Redis is real. Each round makes Redis believe
    // most of the TTL has passed (PEXPIRE), fires one renewal tick, and awaits that renewal itself (not its effect
    // seen through another connection: a probe's reply can be read before the renewal's own, and the next tick then
    // finds the renewal still in flight and skips); ten rounds hold a 30 s lock through 100 s of its own time.
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval", "Date"] });
    try {
      const d = res("long");
      const c1 = redis.client();
      const probe = redis.client();
      const set = await acquireDeviceLocks(c1, [d], {
        owner: "job-waits-approval",
        ttlMs: 30_000,
        waitMs: 0,
      });
      for (let round = 0; round < 10; round++) {
        await probe.pexpire(lockKey(d), 5_000);
        await vi.advanceTimersByTimeAsync(10_000);
        // In flight still, or (if the fake clock let real I/O run) already done: either way finished after this.
        await set.renewalInFlight;
        expect(await probe.pttl(lockKey(d)), `round ${round + 1}: renewed`).toBeGreaterThan(20_000);
      }
      await expect(
        acquireDeviceLocks(redis.client(), [d], { owner: "job-other", ttlMs: 1000, waitMs: 0 }),
      ).rejects.toBeInstanceOf(LockUnavailableError);
      await set.assertHeld();
      expect(set.lost).toBeUndefined();
      await set.release();
    } finally {
      vi.useRealTimers();
    }
  });

  it("gives back every lock but those kept (a job waiting for approval), and takes them back all or nothing", async () => {
    const device = res("kept");
    const host = res("given");
    const c1 = redis.client();
    const set = await acquireDeviceLocks(c1, [device, host], {
      owner: "job-waiting",
      ttlMs: 5000,
      waitMs: 0,
    });
    const hostToken = set.tokenFor(host);
    expect(await set.releaseExcept([device])).toEqual([host]);
    expect(set.locks.map((l) => l.resource)).toEqual([device]);
    expect(await readLock(c1, host)).toBeNull();
    // Another job uses the host meanwhile; taking it back is refused (nothing taken), not waited for ever.
    const other = await acquireDeviceLocks(redis.client(), [host], {
      owner: "job-other",
      ttlMs: 5000,
      waitMs: 0,
    });
    expect(await set.take([host], 0)).toBe(false);
    expect(set.locks.map((l) => l.resource)).toEqual([device]);
    await other.release();
    expect(await set.take([host], 0)).toBe(true);
    expect(set.tokenFor(host)).toBeGreaterThan(hostToken);
    await set.assertHeld();
    expect((await set.release()).sort()).toEqual([device, host].sort());
  });

  it("reports a lost lock through onLost and the abort signal when renewal is refused", async () => {
    const d = res("lost");
    const conn = redis.client();
    const lostErrors: LockLostError[] = [];
    const set = await acquireDeviceLocks(conn, [d], {
      owner: "job-victim",
      ttlMs: 150,
      waitMs: 0,
      onLost: (e) => lostErrors.push(e),
    });
    const aborted = new Promise((resolve) => set.signal.addEventListener("abort", resolve, { once: true }));
    // Someone (an operator's manual unlock, a Redis failover that lost the key) removes it.
    await conn.del(lockKey(d));
    // The next renewal finds the lock gone: awaited as the event it is, however late the renewal timer fires.
    await aborted;
    expect(lostErrors).toHaveLength(1);
    expect(lostErrors[0]!.resource).toBe(d);
    expect(set.signal.aborted).toBe(true);
    expect(() => set.throwIfLost()).toThrow(LockLostError);
    await expect(set.assertHeld()).rejects.toBeInstanceOf(LockLostError);
    await set.release();
  });

  it("survives a Redis restart mid-hold (AOF) and keeps renewing", async () => {
    const d = res("restart");
    const conn = redis.client();
    // The renewal timer and the set's clock are faked (a restart under load must not outlast a short TTL); Redis
    // and its restart are real. Redis's own TTL (30 s) is far beyond any restart.
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval", "Date"] });
    try {
      const set = await acquireDeviceLocks(conn, [d], { owner: "job-restart", ttlMs: 30_000, waitMs: 0 });
      await redis.restart();
      // Most of the TTL gone in Redis, then one renewal tick after the restart: the renewal reconnects and lands.
      await conn.pexpire(lockKey(d), 5_000);
      await vi.advanceTimersByTimeAsync(10_000);
      await set.renewalInFlight;
      expect(await conn.pttl(lockKey(d))).toBeGreaterThan(20_000);
      await set.assertHeld();
      expect(set.lost).toBeUndefined();
      expect(await set.release()).toEqual([d]);
    } finally {
      vi.useRealTimers();
    }
  });

  it("declares the lock lost when Redis stays unreachable past the TTL", async () => {
    // A server of its own: this test kills it.
    const dir = mkdtempSync(join(tmpdir(), "lf-lost-"));
    const server = await startEmbeddedRedis({ dataDir: dir });
    const conn = connectRedis({ url: server.url });
    try {
      const lostErrors: LockLostError[] = [];
      const d = res("unreachable");
      // The set's renewal timer and clock are faked: "past the TTL" is the set's own time, not a race with load.
      vi.useFakeTimers({ toFake: ["setInterval", "clearInterval", "Date"] });
      const set = await acquireDeviceLocks(conn, [d], {
        owner: "job-cut-off",
        ttlMs: 300,
        waitMs: 0,
        onLost: (e) => lostErrors.push(e),
      });
      await server.stop();
      await vi.advanceTimersByTimeAsync(250);
      expect(set.lost).toBeUndefined(); // still within the TTL it last confirmed
      expect(lostErrors).toHaveLength(0);
      // The tick at 300 ms finds no confirmed renewal within the TTL (the renewal sent at 100 ms never came back).
      await vi.advanceTimersByTimeAsync(100);
      expect(lostErrors).toHaveLength(1);
      expect(lostErrors[0]!.message).toMatch(/not renewed within its 300 ms TTL/);
      expect(set.signal.aborted).toBe(true);
      expect(() => set.throwIfLost()).toThrow(LockLostError);
    } finally {
      vi.useRealTimers();
      conn.disconnect();
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses bad resource names and owners", async () => {
    const conn = redis.client();
    await expect(
      acquireDeviceLocks(conn, ["dev{x}"], { owner: "j", ttlMs: 1000, waitMs: 0 }),
    ).rejects.toThrow(LockError);
    await expect(
      acquireDeviceLocks(conn, [res("ok")], { owner: "a|b", ttlMs: 1000, waitMs: 0 }),
    ).rejects.toThrow(/owner/);
  });
});
