// The write-ahead login ledger, in Redis, per (device, partition, role). The attempt is recorded BEFORE the password
// is sent; success clears it; a wrong password or an unknown outcome increments the failures and quarantines the
// credential. Each transition is one Lua script (BullMQ style), so no crash leaves half a transition and two
// workers cannot both hold an attempt open.
import type { Redis } from "ioredis";

export interface LedgerKey {
  device: string;
  /** Partition label, or undefined for appliance-level roles (HSM SO, auditor). */
  partition?: string;
  role: string;
}

export interface LedgerEntry extends LedgerKey {
  failures: number;
  pendingAttempt?: string;
  pendingSince?: string;
  quarantined: boolean;
  quarantineReason?: string;
  lastOutcome?: string;
  lastAttemptAt?: string;
  lastSuccessAt?: string;
  /** What the device itself last showed (attempts left), and when. */
  deviceAttemptsLeft?: number;
  deviceObservedAt?: string;
}

const PREFIX = "lunafleet:guard:ledger:";

export function ledgerRedisKey(k: LedgerKey): string {
  return `${PREFIX}${k.device}:${k.partition ?? "-"}:${k.role}`;
}

function parseRedisKey(key: string): LedgerKey {
  const [device = "", partition = "-", role = ""] = key.slice(PREFIX.length).split(":");
  return { device, partition: partition === "-" ? undefined : partition, role };
}

// KEYS[1] ledger; KEYS[2] lock key (may be ""); ARGV: attemptId, now, lockValue, maxFailures
// Refuses when an attempt is pending, the credential is quarantined, failures exceed what the budget allowed, or
// the caller no longer holds the device lock (fencing: a worker whose lock expired must not log in).
const BEGIN = `
if KEYS[2] ~= '' then
  local holder = redis.call('GET', KEYS[2])
  if holder ~= ARGV[3] then return {0, 'device lock not held (fencing token mismatch)'} end
end
local pending = redis.call('HGET', KEYS[1], 'pendingAttempt')
if pending then return {0, 'an earlier attempt has no recorded outcome'} end
if redis.call('HGET', KEYS[1], 'quarantined') == '1' then return {0, 'credential quarantined'} end
local failures = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0')
if failures > tonumber(ARGV[4]) then return {0, 'failures recorded since the last success'} end
redis.call('HSET', KEYS[1], 'pendingAttempt', ARGV[1], 'pendingSince', ARGV[2], 'lastAttemptAt', ARGV[2])
return {1, 'recorded'}
`;

// KEYS[1] ledger; ARGV: attemptId, outcome (success|wrong|unknown), now, reason
const FINISH = `
local pending = redis.call('HGET', KEYS[1], 'pendingAttempt')
if pending ~= ARGV[1] then return {0, 'no such pending attempt'} end
redis.call('HDEL', KEYS[1], 'pendingAttempt', 'pendingSince')
redis.call('HSET', KEYS[1], 'lastOutcome', ARGV[2])
if ARGV[2] == 'success' then
  redis.call('HSET', KEYS[1], 'failures', 0, 'lastSuccessAt', ARGV[3])
else
  redis.call('HINCRBY', KEYS[1], 'failures', 1)
  redis.call('HSET', KEYS[1], 'quarantined', '1', 'quarantineReason', ARGV[4])
end
return {1, ARGV[2]}
`;

// A pending attempt whose worker is gone: the outcome is unknown, so it counts as a failure (never as success).
const RESOLVE_STALE = `
local pending = redis.call('HGET', KEYS[1], 'pendingAttempt')
if not pending then return 0 end
redis.call('HDEL', KEYS[1], 'pendingAttempt', 'pendingSince')
redis.call('HINCRBY', KEYS[1], 'failures', 1)
redis.call('HSET', KEYS[1], 'lastOutcome', 'unknown', 'quarantined', '1', 'quarantineReason', ARGV[1])
return 1
`;

// An operator released the quarantine after confirming the fix: ledger failures are cleared. The device's own
// counter still has to be full before a destructive role may be tried (the budget reads it).
const RELEASE = `
if redis.call('HGET', KEYS[1], 'pendingAttempt') then return {0, 'an attempt is in flight'} end
redis.call('HSET', KEYS[1], 'quarantined', '0', 'failures', 0, 'releasedAt', ARGV[1])
redis.call('HDEL', KEYS[1], 'quarantineReason')
return {1, 'released'}
`;

export type FinishOutcome = "success" | "wrong" | "unknown";

export class LoginLedger {
  constructor(private readonly redis: Redis) {}

  async get(key: LedgerKey): Promise<LedgerEntry> {
    const h = await this.redis.hgetall(ledgerRedisKey(key));
    return toEntry(key, h);
  }

  /** Record the attempt before the password is sent. Returns false (with why) when it must not be made. */
  async begin(
    key: LedgerKey,
    attemptId: string,
    opts: { lockKey?: string; lockValue?: string; maxPriorFailures: number },
  ): Promise<{ ok: boolean; reason: string }> {
    const [ok, reason] = (await this.redis.eval(
      BEGIN,
      2,
      ledgerRedisKey(key),
      opts.lockKey ?? "",
      attemptId,
      new Date().toISOString(),
      opts.lockValue ?? "",
      String(opts.maxPriorFailures),
    )) as [number, string];
    return { ok: ok === 1, reason };
  }

  async finish(key: LedgerKey, attemptId: string, outcome: FinishOutcome, reason = ""): Promise<void> {
    const [ok, why] = (await this.redis.eval(
      FINISH,
      1,
      ledgerRedisKey(key),
      attemptId,
      outcome,
      new Date().toISOString(),
      reason || `login outcome: ${outcome}`,
    )) as [number, string];
    if (ok !== 1)
      throw new Error(`guard ledger ${ledgerRedisKey(key)}: cannot finish attempt ${attemptId}: ${why}`);
  }

  async resolveStale(key: LedgerKey, reason: string): Promise<boolean> {
    return (await this.redis.eval(RESOLVE_STALE, 1, ledgerRedisKey(key), reason)) === 1;
  }

  async release(key: LedgerKey): Promise<{ ok: boolean; reason: string }> {
    const [ok, reason] = (await this.redis.eval(
      RELEASE,
      1,
      ledgerRedisKey(key),
      new Date().toISOString(),
    )) as [number, string];
    return { ok: ok === 1, reason };
  }

  async observeDeviceCounter(key: LedgerKey, attemptsLeft: number): Promise<void> {
    await this.redis.hset(ledgerRedisKey(key), {
      deviceAttemptsLeft: attemptsLeft,
      deviceObservedAt: new Date().toISOString(),
    });
  }

  async list(): Promise<LedgerEntry[]> {
    const keys: string[] = [];
    let cursor = "0";
    do {
      const [next, batch] = await this.redis.scan(cursor, "MATCH", `${PREFIX}*`, "COUNT", 500);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== "0");
    keys.sort();
    const entries: LedgerEntry[] = [];
    for (const k of keys) entries.push(toEntry(parseRedisKey(k), await this.redis.hgetall(k)));
    return entries;
  }
}

function toEntry(key: LedgerKey, h: Record<string, string>): LedgerEntry {
  return {
    ...key,
    failures: Number(h.failures ?? 0),
    pendingAttempt: h.pendingAttempt,
    pendingSince: h.pendingSince,
    quarantined: h.quarantined === "1",
    quarantineReason: h.quarantineReason,
    lastOutcome: h.lastOutcome,
    lastAttemptAt: h.lastAttemptAt,
    lastSuccessAt: h.lastSuccessAt,
    deviceAttemptsLeft: h.deviceAttemptsLeft === undefined ? undefined : Number(h.deviceAttemptsLeft),
    deviceObservedAt: h.deviceObservedAt,
  };
}
