// Over 400 lines: the lock's scripts, its renewal timer and its loss detection are one state machine; split apart, a
//  reader could not see every transition of a held lock.
// Device locks: before a job touches a device (or a client host, an HA group...), it holds that resource's lock in
// Redis. This is what serializes logins to one device across every worker, process and host.
//
// - Each transition is one atomic Lua script named for what it guarantees: takeLockIfFree, extendLockIfStillOwned,
//   releaseLockIfStillOwned, checkFenceIsCurrent.
// - A job takes all its locks in one fixed (sorted) order, so two jobs can never wait on each other in a cycle;
//   it is all-or-nothing: if one lock is not free within waitMs, the ones already taken are released.
// - Every acquisition gets a fencing token from a per-resource counter that only goes up (seeded by server time, so
//   even a Redis that lost the counter does not hand out an old number again). A holder that was paused past its
//   TTL and comes back holds a stale token; every script that matters compares tokens.
// - Where Redis has replicas, a lock is acknowledged by one before the job acts under it (src/redis/replica-ack.ts).
// - Locks expire (TTL) so a dead worker's locks free themselves; a live holder renews every ttl/3. A lock held for
//   hours (a job waiting for approval) is simply renewed for hours. When renewal fails the holder is told
//   (onLost + an aborted signal) and must stop before its next step.
//
// Keys (the {resource} hash tag keeps a resource's lock and counter in one Cluster slot):
//   lunafleet:lock:{<resource>}   "<token>|<owner>" with PX ttl
//   lunafleet:fence:{<resource>}  the last fencing token issued (no TTL)
// Scripts elsewhere (the guard ledger) can check a fence inside their own atomic step: GET lockKey == lockValue().
import { type LuaScript, luaScript, type RedisClient, runScript } from "../redis/client.ts";
import { awaitReplicaAck } from "../redis/replica-ack.ts";

const PREFIX = "lunafleet";
const RESOURCE_RE = /^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,199}$/;

export function lockKey(resource: string): string {
  return `${PREFIX}:lock:{${resource}}`;
}
export function fenceKey(resource: string): string {
  return `${PREFIX}:fence:{${resource}}`;
}
/** What the lock key holds while `owner` has it with `token`. */
export function lockValue(token: number, owner: string): string {
  return `${token}|${owner}`;
}

export class LockError extends Error {
  override name = "LockError";
}

/** Not every lock could be taken within waitMs (the ones taken were released). */
export class LockUnavailableError extends LockError {
  override name = "LockUnavailableError";
  constructor(
    readonly resource: string,
    readonly heldBy: string | undefined,
    readonly waitedMs: number,
  ) {
    super(
      `lock ${resource} not free after ${waitedMs} ms` +
        (heldBy ? ` (held by job ${heldBy})` : "") +
        "; no lock of this job is held",
    );
  }
}

/** The caller no longer holds a lock it believes it holds: it must stop before its next step. */
export class LockLostError extends LockError {
  override name = "LockLostError";
  constructor(
    readonly resource: string,
    readonly token: number,
    readonly why: string,
  ) {
    super(`lock ${resource} (fencing token ${token}) lost: ${why}`);
  }
}

// KEYS: lock, fence. ARGV: owner, ttlMs.
// Returns {1, token} when taken, {0, currentValue, pttl} when someone holds it.
// The token is max(counter + 1, server time in microseconds): it still only goes up when Redis has lost the counter
// or an older copy of it (AOF loss, a Sentinel failover to a replica that lagged), as long as the server clock does;
// one lock cannot be taken, released and taken again within a microsecond, so tokens never run ahead of the clock.
// (Microseconds since 1970 stay below 2^53, exact in Lua and JS numbers, until the year 2255.)
const takeLockIfFree: LuaScript = luaScript(
  "takeLockIfFree",
  2,
  `local cur = redis.call('GET', KEYS[1])
if cur then return {0, cur, redis.call('PTTL', KEYS[1])} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local token = math.max(tonumber(redis.call('GET', KEYS[2]) or '0') + 1, now)
local tokenText = string.format('%d', token)
redis.call('SET', KEYS[2], tokenText)
redis.call('SET', KEYS[1], tokenText .. '|' .. ARGV[1], 'PX', ARGV[2])
return {1, tokenText}`,
);

// KEYS: lock. ARGV: expected value, ttlMs. Returns 1 when extended, 0 when not (or no longer) ours.
const extendLockIfStillOwned: LuaScript = luaScript(
  "extendLockIfStillOwned",
  1,
  `if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0`,
);

// KEYS: lock. ARGV: expected value. Returns 1 when deleted, 0 when it was not ours (expired or taken over).
const releaseLockIfStillOwned: LuaScript = luaScript(
  "releaseLockIfStillOwned",
  1,
  `if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0`,
);

// KEYS: lock, fence. ARGV: token. Returns {1} when the lock holds exactly this token and no newer token was issued;
// {0, current value or false, counter} otherwise.
const checkFenceIsCurrent: LuaScript = luaScript(
  "checkFenceIsCurrent",
  2,
  `local cur = redis.call('GET', KEYS[1])
local counter = redis.call('GET', KEYS[2])
if cur and counter == ARGV[1] and string.sub(cur, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. '|' then return {1} end
return {0, cur, counter}`,
);

export interface HeldLock {
  readonly resource: string;
  readonly token: number;
}

export interface AcquireOptions {
  /** Who holds the locks: the job id. Shown to jobs that wait. */
  owner: string;
  /** Lock lifetime without renewal. The holder renews every ttlMs/3. */
  ttlMs: number;
  /** How long to wait for all locks together before giving up (0 = try once). */
  waitMs: number;
  /** Renew automatically (default true). Off only for tests and one-shot tools. */
  autoRenew?: boolean;
  /** Called once when a lock is lost (renewal refused, or not confirmed before the TTL ran out). */
  onLost?: (err: LockLostError) => void;
  /**
   * The clock the held set measures its TTL by (confirmed renewals, expiry): Date.now unless a test drives time
   * itself (waiting for a busy lock always uses real time).
   */
  clock?: () => number;
}

/**
 * Take the locks of every resource (e.g. "device:hsm-a1", "client:client-a") for one job, all or nothing.
 * Resolves with the held set (renewing itself unless autoRenew is false); rejects with LockUnavailableError
 * when one lock stays taken for waitMs (the others are then released).
 */
export async function acquireDeviceLocks(
  redis: RedisClient,
  resources: readonly string[],
  opts: AcquireOptions,
): Promise<DeviceLockSet> {
  if (!opts.owner || opts.owner.includes("|"))
    throw new LockError(`lock owner must be a non-empty id without "|"`);
  if (!(opts.ttlMs >= 30)) throw new LockError(`lock ttlMs must be at least 30, got ${opts.ttlMs}`);
  for (const r of resources) {
    if (!RESOURCE_RE.test(r)) throw new LockError(`lock resource name not allowed: ${JSON.stringify(r)}`);
  }
  // The fixed order: every job sorts the same way, so no two jobs can each hold what the other waits for.
  const ordered = [...new Set(resources)].sort();
  const clock = opts.clock ?? Date.now;
  const started = Date.now();
  const deadline = started + Math.max(0, opts.waitMs);
  const held: { resource: string; token: number; confirmedAt: number }[] = [];
  try {
    for (const resource of ordered) {
      let pause = 10;
      for (;;) {
        const sentAt = clock();
        const reply = (await runScript(
          redis,
          takeLockIfFree,
          [lockKey(resource), fenceKey(resource)],
          [opts.owner, opts.ttlMs],
        )) as [number, number | string, number?];
        if (reply[0] === 1) {
          held.push({ resource, token: Number(reply[1]), confirmedAt: sentAt });
          // A lock a failover could lose is one another job could take while we act: on a replica first.
          await awaitReplicaAck(redis, lockKey(resource), `lock ${resource}`);
          break;
        }
        const now = Date.now();
        if (now >= deadline) {
          throw new LockUnavailableError(resource, ownerOf(String(reply[1])), now - started);
        }
        // Wait a little, never past the deadline nor past the moment the current holder's lock would expire.
        const pttl = typeof reply[2] === "number" && reply[2] > 0 ? reply[2] : pause;
        const jitter = Math.random() * pause * 0.5;
        await sleep(Math.max(1, Math.min(pause + jitter, pttl + 1, deadline - now)));
        pause = Math.min(pause * 2, 200);
      }
    }
  } catch (err) {
    // All or nothing: give back what was taken, even if the failure was a Redis error.
    await Promise.allSettled(
      held.map((h) =>
        runScript(redis, releaseLockIfStillOwned, [lockKey(h.resource)], [lockValue(h.token, opts.owner)]),
      ),
    );
    throw err;
  }
  const set = new DeviceLockSet(redis, opts.owner, opts.ttlMs, held, opts.onLost, clock);
  if (opts.autoRenew !== false) set.startRenewing();
  return set;
}

/** The locks one job holds. */
export class DeviceLockSet {
  readonly #redis: RedisClient;
  readonly #ttlMs: number;
  readonly #held: { resource: string; token: number; confirmedAt: number }[];
  readonly #onLost: ((err: LockLostError) => void) | undefined;
  readonly #clock: () => number;
  readonly #abort = new AbortController();
  #timer: NodeJS.Timeout | undefined;
  #lost: LockLostError | undefined;
  #released = false;
  #renewing: Promise<void> | undefined;

  constructor(
    redis: RedisClient,
    readonly owner: string,
    ttlMs: number,
    held: { resource: string; token: number; confirmedAt: number }[],
    onLost?: (err: LockLostError) => void,
    clock: () => number = Date.now,
  ) {
    this.#clock = clock;
    this.#redis = redis;
    this.#ttlMs = ttlMs;
    this.#held = held;
    this.#onLost = onLost;
  }

  /** The locks held, in acquisition (sorted) order, with their fencing tokens. */
  get locks(): readonly HeldLock[] {
    return this.#held.map(({ resource, token }) => ({ resource, token }));
  }

  /** Fencing token of one resource; throws if this set does not hold it. */
  tokenFor(resource: string): number {
    const h = this.#held.find((l) => l.resource === resource);
    if (!h) throw new LockError(`job ${this.owner} holds no lock on ${resource}`);
    return h.token;
  }

  /** Set once a lock is lost (or can no longer be proven held); the job must stop before its next step. */
  get lost(): LockLostError | undefined {
    this.#checkExpiry();
    return this.#lost;
  }

  /** Aborted (reason: the LockLostError) when a lock is lost: hand it to anything that should stop then. */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** Throw the LockLostError if a lock has been lost; cheap, no Redis round trip. */
  throwIfLost(): void {
    this.#checkExpiry();
    if (this.#lost) throw this.#lost;
  }

  /**
   * Without a confirmed renewal, a lock is ours only until its last confirmed TTL runs out; after that another job
   * may hold it, even if Redis has been unreachable all along and nothing has told us so.
   */
  #checkExpiry(): void {
    if (this.#lost || this.#released) return;
    const now = this.#clock();
    for (const h of this.#held) {
      if (now >= h.confirmedAt + this.#ttlMs) {
        this.#markLost(
          new LockLostError(h.resource, h.token, `not renewed within its ${this.#ttlMs} ms TTL`),
        );
        return;
      }
    }
  }

  /**
   * The renewal the timer has started and not yet finished (undefined when none is in flight). Release waits for it;
   * a test that drives the timer awaits it instead of polling Redis for its effect.
   */
  get renewalInFlight(): Promise<void> | undefined {
    return this.#renewing;
  }

  startRenewing(): void {
    if (this.#timer || this.#released) return;
    const every = Math.max(10, Math.floor(this.#ttlMs / 3));
    this.#timer = setInterval(() => {
      // One renewal at a time: a slow Redis must not pile up renewals. But a renewal stuck waiting for an
      // unreachable Redis must not hide that the TTL has run out meanwhile.
      if (this.#renewing) {
        this.#checkExpiry();
        return;
      }
      this.#renewing = this.renew()
        .catch(() => {}) // a lost lock has already been reported through #markLost
        .finally(() => {
          this.#renewing = undefined;
        });
    }, every);
    // Renewal alone must not keep a process alive: a process with nothing else to do is done with its job.
    this.#timer.unref();
  }

  /**
   * Extend every lock by ttlMs now. A lock that is no longer ours is lost at once; a Redis error is tolerated
   * until the last confirmed TTL would have run out (then we cannot claim to hold it any more).
   */
  async renew(): Promise<void> {
    this.throwIfLost();
    if (this.#released) throw new LockError(`job ${this.owner}: renew after release`);
    for (const h of this.#held) {
      const sentAt = this.#clock();
      let reply: unknown;
      try {
        reply = await runScript(
          this.#redis,
          extendLockIfStillOwned,
          [lockKey(h.resource)],
          [lockValue(h.token, this.owner), this.#ttlMs],
        );
      } catch (err) {
        if (this.#clock() >= h.confirmedAt + this.#ttlMs) {
          throw this.#markLost(
            new LockLostError(
              h.resource,
              h.token,
              `could not renew before expiry (${(err as Error).message})`,
            ),
          );
        }
        throw err;
      }
      if (reply !== 1) {
        throw this.#markLost(new LockLostError(h.resource, h.token, "expired or taken over before renewal"));
      }
      h.confirmedAt = sentAt;
    }
  }

  /** Check with Redis that every lock (or one resource's lock) is still ours with our token. */
  async assertHeld(resource?: string): Promise<void> {
    this.throwIfLost();
    const which = resource === undefined ? this.#held : [{ resource, token: this.tokenFor(resource) }];
    for (const h of which) {
      try {
        await assertFence(this.#redis, h.resource, h.token);
      } catch (err) {
        if (err instanceof LockLostError) throw this.#markLost(err);
        throw err;
      }
    }
  }

  /**
   * Give back every lock except those of `keep` (a job that waits for approvals keeps only the devices it will
   * change). Returns the resources given back; they are no longer part of this set until take() gets them again.
   */
  async releaseExcept(keep: readonly string[]): Promise<string[]> {
    this.throwIfLost();
    const give = this.#held.filter((h) => !keep.includes(h.resource));
    for (const h of [...give].reverse()) {
      await releaseLock(this.#redis, h.resource, this.owner, h.token);
      this.#held.splice(this.#held.indexOf(h), 1);
    }
    return give.map((h) => h.resource);
  }

  /**
   * Take more locks into this set (those releaseExcept gave back), all or nothing, waiting up to waitMs. False when
   * one stays busy (nothing taken). Taking them while holding others is outside the fixed order, so it never waits
   * for ever: all-or-nothing with a deadline cannot deadlock, it can only be retried.
   */
  async take(resources: readonly string[], waitMs: number): Promise<boolean> {
    this.throwIfLost();
    if (this.#released) throw new LockError(`job ${this.owner}: take after release`);
    const wanted = resources.filter((r) => !this.#held.some((h) => h.resource === r));
    if (wanted.length === 0) return true;
    try {
      const more = await acquireDeviceLocks(this.#redis, wanted, {
        owner: this.owner,
        ttlMs: this.#ttlMs,
        waitMs,
        autoRenew: false,
        clock: this.#clock,
      });
      this.#held.push(...more.#held);
      return true;
    } catch (err) {
      if (err instanceof LockUnavailableError) return false;
      throw err;
    }
  }

  /** Stop renewing and release every lock still ours. Returns the resources actually released. Idempotent. */
  async release(): Promise<string[]> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#released) return [];
    this.#released = true;
    await this.#renewing;
    const released: string[] = [];
    // Reverse order, so a job waiting for our first lock finds the rest free by the time it gets there.
    for (const h of [...this.#held].reverse()) {
      if (await releaseLock(this.#redis, h.resource, this.owner, h.token)) released.push(h.resource);
    }
    return released;
  }

  #markLost(err: LockLostError): LockLostError {
    if (this.#lost) return this.#lost;
    this.#lost = err;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#abort.abort(err);
    try {
      this.#onLost?.(err);
    } catch {
      // a throwing callback must not break the renewal machinery; the signal and throwIfLost still report it
    }
    return err;
  }
}

/** Extend one lock if `owner` still holds it with `token`. */
export async function renewLock(
  redis: RedisClient,
  resource: string,
  owner: string,
  token: number,
  ttlMs: number,
): Promise<boolean> {
  return (
    (await runScript(
      redis,
      extendLockIfStillOwned,
      [lockKey(resource)],
      [lockValue(token, owner), ttlMs],
    )) === 1
  );
}

/** Release one lock only if `owner` still holds it with `token`; false means it was not ours any more. */
export async function releaseLock(
  redis: RedisClient,
  resource: string,
  owner: string,
  token: number,
): Promise<boolean> {
  return (
    (await runScript(redis, releaseLockIfStillOwned, [lockKey(resource)], [lockValue(token, owner)])) === 1
  );
}

/**
 * Verify, right before a dangerous action (a login), that `token` is still the current holder of `resource`.
 * Throws LockLostError otherwise. This is check-then-act: where the action itself writes to Redis (the guard
 * ledger), check GET lockKey(resource) == lockValue(token, owner) inside that write's own script instead.
 */
export async function assertFence(redis: RedisClient, resource: string, token: number): Promise<void> {
  const reply = (await runScript(
    redis,
    checkFenceIsCurrent,
    [lockKey(resource), fenceKey(resource)],
    [String(token)],
  )) as [number, (string | null)?, (string | null)?];
  if (reply[0] === 1) return;
  const current = reply[1] ?? null;
  const why = current
    ? `now held by job ${ownerOf(current)} with token ${current.split("|")[0]}`
    : Number(reply[2] ?? 0) > token
      ? `expired; a newer token ${reply[2]} has been issued since`
      : "expired";
  throw new LockLostError(resource, token, why);
}

/** Who holds a resource now (for status displays and waiting messages); null when free. */
export async function readLock(
  redis: RedisClient,
  resource: string,
): Promise<{ owner: string; token: number; ttlMs: number } | null> {
  const [value, ttl] = await Promise.all([redis.get(lockKey(resource)), redis.pttl(lockKey(resource))]);
  if (value === null) return null;
  const bar = value.indexOf("|");
  return { owner: value.slice(bar + 1), token: Number(value.slice(0, bar)), ttlMs: ttl };
}

function ownerOf(value: string): string | undefined {
  const bar = value.indexOf("|");
  return bar === -1 ? undefined : value.slice(bar + 1);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
