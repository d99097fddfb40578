// Quarantine release and status for operators (`lunafleet guard release|status`). A release is an operator's
// statement that the credential was fixed; it is recorded in its own evidence log (job id
// `guard:<device>:<role>:<ms>`), naming who released, why, and the job whose failure caused the quarantine. It only
// resets the ledger: the device's own counter still has to be full before a destructive role is tried again.

import { NonRetryable } from "../errors/non-retryable.ts";
import { EvidenceLog } from "../evidence/log.ts";
import type { RedisClient } from "../redis/client.ts";
import { redactDeep } from "./guard.ts";
import { observeGuard } from "./guard-facts.ts";
import { type LedgerEntry, type LedgerKey, LoginLedger } from "./ledger.ts";
import { GUARD_ROLES, type GuardRole } from "./roles.ts";

export class ReleaseRefused extends NonRetryable {
  override name = "ReleaseRefused";
  constructor(
    message: string,
    /** The log the refusal was recorded in, when it got that far (its writer seals it). */
    readonly evidenceJobId?: string,
  ) {
    super(message);
  }
}

export interface ReleaseRequest {
  device: string;
  role: GuardRole;
  partition?: string | undefined;
  reason: string;
  /** The operator principal who confirms the fix. */
  principal: string;
}

export interface ReleaseResult {
  key: LedgerKey;
  /** The evidence job id the release was recorded under. */
  evidenceJobId: string;
  /** The entry as it was before the release. */
  before: LedgerEntry;
}

function guardEvidenceJobId(k: LedgerKey, at = Date.now()): string {
  const part = k.partition ? `${k.partition}:` : "";
  return `guard:${k.device}:${part}${k.role}:${at}`;
}

export async function releaseQuarantine(
  redis: RedisClient,
  dataDir: string,
  req: ReleaseRequest,
): Promise<ReleaseResult> {
  if (!GUARD_ROLES.includes(req.role)) throw new ReleaseRefused(`unknown role '${req.role}'`);
  if (!req.reason.trim()) throw new ReleaseRefused("a release needs --reason");
  if (!req.principal.trim()) throw new ReleaseRefused("a release needs --as <principal>");
  const ledger = new LoginLedger(redis);
  const key = await findLedgerKey(ledger, req);
  const before = await ledger.get(key);
  if (!before.quarantined && before.failures === 0)
    throw new ReleaseRefused(`${describe(key)} is not quarantined`);
  if (before.pendingAttempt)
    throw new ReleaseRefused(
      `${describe(key)} has an attempt in flight (${before.pendingAttempt}); wait for it`,
    );
  const evidenceJobId = guardEvidenceJobId(key);
  const evidence = await EvidenceLog.open(redis, dataDir, evidenceJobId);
  // Intent first: the evidence says who released what and why, even if the ledger write then fails.
  await evidence.append(
    "guard",
    redactDeep({
      event: "release-requested",
      ...key,
      reason: req.reason,
      quarantineReason: before.quarantineReason ?? null,
      quarantineJob: before.quarantineJob ?? null,
      failures: before.failures,
      deviceAttemptsLeft: before.deviceAttemptsLeft ?? null,
      deviceObservedAt: before.deviceObservedAt ?? null,
    }),
    req.principal,
  );
  const r = await ledger.release(key, { principal: req.principal, reason: req.reason });
  if (!r.ok) {
    await evidence.append("guard", { event: "release-refused", ...key, reason: r.reason }, req.principal);
    throw new ReleaseRefused(`${describe(key)}: ${r.reason}`, evidenceJobId);
  }
  await evidence.append(
    "result",
    { event: "released", ...key, note: "ledger reset; the device counter still guards destructive roles" },
    req.principal,
  );
  await observeGuard(redis, req.device, { jobId: null, by: `guard release by ${req.principal}` });
  return { key, evidenceJobId, before };
}

export async function guardStatus(redis: RedisClient): Promise<LedgerEntry[]> {
  return new LoginLedger(redis).list();
}

/**
 * The ledger entry an operator names by the fleet's names (device, partition label, role). Entries are keyed by the
 * appliance's identity, with the names beside them: find it there; an entry from before keys were by identity is
 * still found under the names themselves.
 */
export async function findLedgerKey(
  ledger: LoginLedger,
  req: { device: string; role: string; partition?: string | undefined },
): Promise<LedgerKey> {
  const byName = (await ledger.list()).filter(
    (e) =>
      (e.device === req.device || e.appliance === req.device) &&
      e.role === req.role &&
      (e.partition ?? undefined) === (req.partition ?? undefined),
  );
  const entry = byName.find((e) => e.quarantined || e.failures > 0) ?? byName[0];
  if (entry)
    return {
      device: entry.device,
      role: entry.role,
      ...(entry.partition ? { partition: entry.partition } : {}),
      ...(entry.appliance ? { appliance: entry.appliance } : {}),
      ...(entry.partitionSerial ? { partitionSerial: entry.partitionSerial } : {}),
    };
  return { device: req.device, role: req.role, ...(req.partition ? { partition: req.partition } : {}) };
}

function describe(k: LedgerKey): string {
  return `${k.device}${k.partition ? `/${k.partition}` : ""} ${k.role}`;
}
