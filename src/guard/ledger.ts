// The write-ahead login ledger, in Redis, per (device, partition, role). The attempt is recorded BEFORE the password
// is sent; success clears it; a wrong password or an unknown outcome increments the failures and quarantines the
// credential. Each transition is one Lua script (BullMQ style), so no crash leaves half a transition and two
// workers cannot both hold an attempt open.
//
// Where Redis has replicas (Sentinel, Cluster), every transition waits until a replica acknowledges it
// (src/redis/replica-ack.ts): above all the attempt, before the password is sent — one that cannot be acknowledged
// is given back as not sent and the login refused. The embedded server's append-only file is fsynced on every write.
//
// Keys carry the device lock's hash tag ({device:<appliance identity>}), so a script that checks the device lock and
// writes the ledger touches one Redis Cluster slot. Both are keyed by what identifies the appliance — its serial and
// host:port (config/model.ts applianceIdentity), the partition by its serial — never by a fleet file's names for
// them: two names for one appliance in two fleet files share one budget. The names are kept in the entry for
// display (deviceName, partitionLabel).
//   lunafleet:guard:ledger:{device:<serial>@<host>:<port>}:<partition serial or ->:<role>
import { applianceIdentity, getDevice, getPartition } from "../config/model.ts";
import type { Fleet } from "../config/schema.ts";
import { type LuaScript, luaScript, type RedisClient, runScript, scanKeys } from "../redis/client.ts";
import { awaitReplicaAck, ReplicaAckError } from "../redis/replica-ack.ts";

export interface LedgerKey {
  /** The fleet's name for the device (display; the key is `appliance` when known). */
  device: string;
  /** Partition label, or undefined for appliance-level roles (HSM SO, auditor). */
  partition?: string;
  role: string;
  /** The appliance's identity (applianceIdentity): what the Redis key is made of. */
  appliance?: string;
  /** The partition's serial: what the Redis key is made of for partition roles. */
  partitionSerial?: string;
}

/** The ledger key of a fleet device's role (and partition): by identity, with the fleet's names for display. */
export function ledgerKeyFor(
  fleet: Fleet,
  deviceName: string,
  role: string,
  partitionLabel?: string,
): LedgerKey {
  const device = getDevice(fleet, deviceName);
  const partition = partitionLabel === undefined ? undefined : getPartition(device, partitionLabel);
  return {
    device: device.name,
    role,
    appliance: applianceIdentity(device),
    ...(partition ? { partition: partition.label, partitionSerial: partition.serial } : {}),
  };
}

export interface LedgerEntry extends LedgerKey {
  failures: number;
  /** Attempts ever recorded for this credential (each one before its password was sent). */
  attempts: number;
  pendingAttempt?: string;
  pendingSince?: string;
  /** The job that recorded the pending attempt, and the lock value it held (who must still hold the lock). */
  pendingJob?: string;
  pendingLockValue?: string;
  quarantined: boolean;
  quarantineReason?: string;
  /** The job whose attempt (or stale attempt) caused the quarantine: its evidence has the record. */
  quarantineJob?: string;
  quarantinedAt?: string;
  lastOutcome?: string;
  lastAttemptAt?: string;
  lastSuccessAt?: string;
  releasedAt?: string;
  releasedBy?: string;
  releaseReason?: string;
  /** What the device itself last showed (attempts left), and when. */
  deviceAttemptsLeft?: number;
  deviceObservedAt?: string;
  /** What the device reported about the role: "ok", "locked", "zeroized". */
  deviceState?: string;
}

const PREFIX = "lunafleet:guard:ledger:";

export function ledgerRedisKey(k: LedgerKey): string {
  return `${PREFIX}{device:${k.appliance ?? k.device}}:${k.partitionSerial ?? k.partition ?? "-"}:${k.role}`;
}

/** The key's parts; the names come from the entry (deviceName, partitionLabel) when it has them. */
function parseRedisKey(
  key: string,
): { appliance: string; partition: string | undefined; role: string } | undefined {
  const m = /^\{device:([^}]+)\}:([^:]+):([^:]+)$/.exec(key.slice(PREFIX.length));
  if (!m) return undefined;
  const [, appliance = "", partition = "-", role = ""] = m;
  return { appliance, partition: partition === "-" ? undefined : partition, role };
}

/** The display names written beside the counters, so listings say `hsm-a1 par-pay` rather than serials. */
function nameFields(key: LedgerKey): Record<string, string> {
  if (key.appliance === undefined) return {};
  return { deviceName: key.device, ...(key.partition ? { partitionLabel: key.partition } : {}) };
}

// KEYS[1] ledger; KEYS[2] lock key; ARGV: attemptId, now, lockValue, maxPriorFailures, jobId, fenced ('1' or '0':
// only a test records an attempt without a lock; KEYS[2] is then the ledger key again, so both stay in one slot)
// Refuses when an attempt is pending, the credential is quarantined, failures exceed what the budget allowed, or
// the caller no longer holds the device lock (fencing: a worker whose lock expired must not log in). The same
// attempt sent again (a reply lost to a dropped connection, resent on reconnect) is answered "recorded" again.
const beginAttemptIfFencedAndClean: LuaScript = luaScript(
  "beginAttemptIfFencedAndClean",
  2,
  `if ARGV[6] == '1' then
  local holder = redis.call('GET', KEYS[2])
  if holder ~= ARGV[3] then return {0, 'device lock not held (fencing token mismatch)'} end
end
local pending = redis.call('HGET', KEYS[1], 'pendingAttempt')
if pending == ARGV[1] then return {1, 'recorded'} end
if pending then return {0, 'an earlier attempt has no recorded outcome'} end
if redis.call('HGET', KEYS[1], 'quarantined') == '1' then return {0, 'credential quarantined'} end
local failures = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0')
if failures > tonumber(ARGV[4]) then return {0, 'failures recorded since the last success'} end
redis.call('HSET', KEYS[1], 'pendingAttempt', ARGV[1], 'pendingSince', ARGV[2], 'lastAttemptAt', ARGV[2],
  'pendingLockValue', ARGV[3], 'pendingJob', ARGV[5])
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
return {1, 'recorded'}`,
);

// KEYS[1] ledger; ARGV: attemptId, outcome (success|wrong|unknown|not-sent), now, reason, jobId
// not-sent: the guard holds proof that nothing reached the device (the one-use token was never spent).
// The same outcome of the same attempt sent again (a resent command) is answered as recorded, and counts once.
const recordOutcomeOfPendingAttempt: LuaScript = luaScript(
  "recordOutcomeOfPendingAttempt",
  1,
  `local pending = redis.call('HGET', KEYS[1], 'pendingAttempt')
if pending ~= ARGV[1] then
  if not pending and redis.call('HGET', KEYS[1], 'lastAttemptId') == ARGV[1]
    and redis.call('HGET', KEYS[1], 'lastOutcome') == ARGV[2] then return {1, ARGV[2]} end
  return {0, 'no such pending attempt'}
end
redis.call('HDEL', KEYS[1], 'pendingAttempt', 'pendingSince', 'pendingLockValue', 'pendingJob')
redis.call('HSET', KEYS[1], 'lastOutcome', ARGV[2], 'lastAttemptId', ARGV[1])
if ARGV[2] == 'success' then
  redis.call('HSET', KEYS[1], 'failures', 0, 'lastSuccessAt', ARGV[3])
elseif ARGV[2] ~= 'not-sent' then
  redis.call('HINCRBY', KEYS[1], 'failures', 1)
  redis.call('HSET', KEYS[1], 'quarantined', '1', 'quarantineReason', ARGV[4], 'quarantineJob', ARGV[5],
    'quarantinedAt', ARGV[3])
end
return {1, ARGV[2]}`,
);

// KEYS[1] ledger; KEYS[2] the device lock key; ARGV: reason, now
// A pending attempt whose owner no longer holds the device lock: its worker is gone (crash, kill, lost lock), the
// outcome is unknown, so it counts as a failure (never as a success). Returns 1 resolved, 0 nothing pending,
// 2 the owner still holds the lock (its attempt may be in flight: leave it).
const failAttemptIfOwnerGone: LuaScript = luaScript(
  "failAttemptIfOwnerGone",
  2,
  `local pending = redis.call('HGET', KEYS[1], 'pendingAttempt')
if not pending then return 0 end
local owner = redis.call('HGET', KEYS[1], 'pendingLockValue')
if owner and owner ~= '' and redis.call('GET', KEYS[2]) == owner then return 2 end
local job = redis.call('HGET', KEYS[1], 'pendingJob') or ''
redis.call('HDEL', KEYS[1], 'pendingAttempt', 'pendingSince', 'pendingLockValue', 'pendingJob')
redis.call('HINCRBY', KEYS[1], 'failures', 1)
redis.call('HSET', KEYS[1], 'lastOutcome', 'unknown', 'quarantined', '1', 'quarantineReason', ARGV[1],
  'quarantineJob', job, 'quarantinedAt', ARGV[2])
return 1`,
);

// KEYS[1] ledger; ARGV: reason, jobId, now. Quarantine without an attempt (the sanctioned zeroize announces itself).
const quarantineIfNoAttemptInFlight: LuaScript = luaScript(
  "quarantineIfNoAttemptInFlight",
  1,
  `if redis.call('HGET', KEYS[1], 'pendingAttempt') then return {0, 'an attempt is in flight'} end
redis.call('HSET', KEYS[1], 'quarantined', '1', 'quarantineReason', ARGV[1], 'quarantineJob', ARGV[2],
  'quarantinedAt', ARGV[3])
return {1, 'quarantined'}`,
);

// An operator released the quarantine after confirming the fix: ledger failures are cleared. The device's own
// counter still has to be full before a destructive role may be tried (the budget reads it).
// KEYS[1] ledger; ARGV: now, principal, reason
const releaseQuarantineIfNoAttemptInFlight: LuaScript = luaScript(
  "releaseQuarantineIfNoAttemptInFlight",
  1,
  `if redis.call('HGET', KEYS[1], 'pendingAttempt') then return {0, 'an attempt is in flight'} end
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 'no ledger entry'} end
redis.call('HSET', KEYS[1], 'quarantined', '0', 'failures', 0, 'releasedAt', ARGV[1], 'releasedBy', ARGV[2],
  'releaseReason', ARGV[3])
redis.call('HDEL', KEYS[1], 'quarantineReason', 'quarantineJob', 'quarantinedAt')
return {1, 'released'}`,
);

export type FinishOutcome = "success" | "wrong" | "unknown" | "not-sent";

export class LoginLedger {
  constructor(private readonly redis: RedisClient) {}

  async get(key: LedgerKey): Promise<LedgerEntry> {
    const h = await this.redis.hgetall(ledgerRedisKey(key));
    return toEntry(key, h);
  }

  /** Record the attempt before the password is sent. Returns false (with why) when it must not be made. */
  async begin(
    key: LedgerKey,
    attemptId: string,
    opts: { lockKey?: string; lockValue?: string; maxPriorFailures: number; jobId?: string },
  ): Promise<{ ok: boolean; reason: string }> {
    await this.nameEntry(key);
    const [ok, reason] = (await runScript(
      this.redis,
      beginAttemptIfFencedAndClean,
      [ledgerRedisKey(key), opts.lockKey || ledgerRedisKey(key)],
      [
        attemptId,
        new Date().toISOString(),
        opts.lockValue ?? "",
        String(opts.maxPriorFailures),
        opts.jobId ?? "",
        opts.lockKey ? "1" : "0",
      ],
    )) as [number, string];
    if (ok !== 1) return { ok: false, reason };
    // Before anything reaches the device, the attempt must be on a replica where there are replicas: a failover
    // that lost it would let a second attempt through. Not acknowledged: no login (the slot is given back).
    try {
      await awaitReplicaAck(this.redis, ledgerRedisKey(key), `guard ledger: attempt ${attemptId}`, {
        strict: true,
      });
    } catch (err) {
      if (!(err instanceof ReplicaAckError)) throw err;
      await this.finish(key, attemptId, "not-sent", err.message, opts.jobId ?? "").catch(() => {});
      return { ok: false, reason: err.message };
    }
    return { ok: true, reason };
  }

  async finish(
    key: LedgerKey,
    attemptId: string,
    outcome: FinishOutcome,
    reason = "",
    jobId = "",
  ): Promise<void> {
    const [ok, why] = (await runScript(
      this.redis,
      recordOutcomeOfPendingAttempt,
      [ledgerRedisKey(key)],
      [attemptId, outcome, new Date().toISOString(), reason || `login outcome: ${outcome}`, jobId],
    )) as [number, string];
    if (ok !== 1)
      throw new Error(`guard ledger ${ledgerRedisKey(key)}: cannot finish attempt ${attemptId}: ${why}`);
    // Not acknowledged: the caller reports the outcome unrecorded; a failover that lost it leaves the attempt
    // pending, which counts as a failure (never as a success).
    await awaitReplicaAck(this.redis, ledgerRedisKey(key), `guard ledger: outcome of ${attemptId}`, {
      strict: true,
    });
  }

  /**
   * Resolve a pending attempt as a failure when its owner no longer holds `lockKey` (pass the device lock's key).
   * "resolved": it counted as a failure and quarantined; "none": nothing pending; "owner-alive": leave it.
   */
  async resolveStale(
    key: LedgerKey,
    lockKey: string,
    reason: string,
  ): Promise<"resolved" | "none" | "owner-alive"> {
    const r = await runScript(
      this.redis,
      failAttemptIfOwnerGone,
      [ledgerRedisKey(key), lockKey],
      [reason, new Date().toISOString()],
    );
    if (r === 1)
      await awaitReplicaAck(this.redis, ledgerRedisKey(key), "guard ledger: stale attempt resolved", {
        strict: true,
      });
    return r === 1 ? "resolved" : r === 2 ? "owner-alive" : "none";
  }

  async quarantine(key: LedgerKey, reason: string, jobId: string): Promise<{ ok: boolean; reason: string }> {
    await this.nameEntry(key);
    const [ok, why] = (await runScript(
      this.redis,
      quarantineIfNoAttemptInFlight,
      [ledgerRedisKey(key)],
      [reason, jobId, new Date().toISOString()],
    )) as [number, string];
    if (ok === 1)
      await awaitReplicaAck(this.redis, ledgerRedisKey(key), "guard ledger: quarantine", { strict: true });
    return { ok: ok === 1, reason: why };
  }

  async release(
    key: LedgerKey,
    by: { principal: string; reason: string },
  ): Promise<{ ok: boolean; reason: string }> {
    const [ok, reason] = (await runScript(
      this.redis,
      releaseQuarantineIfNoAttemptInFlight,
      [ledgerRedisKey(key)],
      [new Date().toISOString(), by.principal, by.reason],
    )) as [number, string];
    if (ok === 1)
      await awaitReplicaAck(this.redis, ledgerRedisKey(key), "guard ledger: release", { strict: true });
    return { ok: ok === 1, reason };
  }

  async observeDeviceCounter(
    key: LedgerKey,
    seen: { attemptsLeft?: number | undefined; state: "ok" | "locked" | "zeroized" },
  ): Promise<void> {
    const fields: Record<string, string | number> = {
      deviceState: seen.state,
      deviceObservedAt: new Date().toISOString(),
    };
    if (seen.attemptsLeft !== undefined) fields.deviceAttemptsLeft = seen.attemptsLeft;
    await this.redis.hset(ledgerRedisKey(key), { ...fields, ...nameFields(key) });
    if (seen.attemptsLeft === undefined) await this.redis.hdel(ledgerRedisKey(key), "deviceAttemptsLeft");
  }

  async list(): Promise<LedgerEntry[]> {
    const keys = (await scanKeys(this.redis, `${PREFIX}*`)).sort();
    const entries: LedgerEntry[] = [];
    for (const k of keys) {
      const parts = parseRedisKey(k);
      if (!parts) continue;
      const h = await this.redis.hgetall(k);
      // Entries written before keys were by identity have no names beside them: their key parts are the names.
      const named = h.deviceName !== undefined;
      const key: LedgerKey = named
        ? {
            device: h.deviceName!,
            role: parts.role,
            appliance: parts.appliance,
            ...(parts.partition !== undefined
              ? { partition: h.partitionLabel ?? parts.partition, partitionSerial: parts.partition }
              : {}),
          }
        : {
            device: parts.appliance,
            role: parts.role,
            ...(parts.partition ? { partition: parts.partition } : {}),
          };
      entries.push(toEntry(key, h));
    }
    return entries;
  }

  /** Names beside the counters (not part of any transition: a display field, written before the transition). */
  private async nameEntry(key: LedgerKey): Promise<void> {
    const fields = nameFields(key);
    if (Object.keys(fields).length > 0) await this.redis.hset(ledgerRedisKey(key), fields);
  }
}

function toEntry(key: LedgerKey, h: Record<string, string>): LedgerEntry {
  const e: LedgerEntry = {
    ...key,
    failures: Number(h.failures ?? 0),
    attempts: Number(h.attempts ?? 0),
    quarantined: h.quarantined === "1",
  };
  const text = [
    "pendingAttempt",
    "pendingSince",
    "pendingJob",
    "pendingLockValue",
    "quarantineReason",
    "quarantineJob",
    "quarantinedAt",
    "lastOutcome",
    "lastAttemptAt",
    "lastSuccessAt",
    "releasedAt",
    "releasedBy",
    "releaseReason",
    "deviceObservedAt",
    "deviceState",
  ] as const;
  for (const f of text) if (h[f] !== undefined) e[f] = h[f];
  if (h.deviceAttemptsLeft !== undefined) e.deviceAttemptsLeft = Number(h.deviceAttemptsLeft);
  if (e.partition === undefined) delete e.partition;
  return e;
}
