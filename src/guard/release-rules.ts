// The rules for releasing a quarantined credential (issue 13): a release is a guard-admin's statement that the cause
// was fixed. For the credentials whose next failures destroy something — HSM SO (zeroizes the HSM), Partition SO
// (zeroizes the partition), a Crypto Officer/User whose lockout is permanent (HSM policy 15 = 0, or not known) — it
// also needs a reason of substance and a second principal's signed approval over a statement of exactly this release;
// only then is the ledger reset (src/guard/release.ts), with the signed statement in the evidence. Other releases
// (auditor: a healing lockout) need one guard-admin.
//
// Key: lunafleet:guard-release:{<id>}  JSON GuardReleaseRequest, kept 7 days.
import { randomBytes } from "node:crypto";
import { getDevice } from "../config/model.ts";
import type { Fleet } from "../config/schema.ts";
import { loadApproverKeys, recordCounter } from "../coord/webauthn-credentials.ts";
import { EvidenceLog } from "../evidence/log.ts";
import { type EvidenceSigner, sealEvidence, sealFinal } from "../evidence/signing.ts";
import type { RedisClient } from "../redis/client.ts";
import { checkApproval, type SignedApproval } from "../signing/approval-check.ts";
import { type GuardReleaseStatement, renderStatement } from "../signing/statement.ts";
import { credentialIdOf } from "../signing/webauthn.ts";
import { LoginLedger } from "./ledger.ts";
import { findLedgerKey, ReleaseRefused, type ReleaseResult, releaseQuarantine } from "./release.ts";
import { type GuardRole, isDestructive, rolePolicy } from "./roles.ts";

const TTL_SECONDS = 7 * 86_400;
/** How long a release request waits for its second approval. */
const RELEASE_REQUEST_MINUTES = 60;

export interface GuardReleaseRequest {
  id: string;
  device: string;
  serial: string;
  role: GuardRole;
  partition?: string;
  reason: string;
  requester: string;
  quarantinedBy: string;
  requestedAt: string;
  deadline: string;
  status: "awaiting-approval" | "released" | "refused";
  statement: string;
  approval?: {
    principal: string;
    keyFingerprint: string;
    signature: string;
    submittedBy: string;
    at: string;
  };
}

export type ReleaseDecision =
  | { kind: "released"; result: ReleaseResult }
  | { kind: "awaiting-approval"; request: GuardReleaseRequest };

const key = (id: string) => `lunafleet:guard-release:{${id}}`;

/** Does releasing this credential need a second, signed approval? */
function releaseNeedsSecondApproval(fleet: Fleet, role: GuardRole): boolean {
  return isDestructive(rolePolicy(role, fleet.defaults.thresholds).effect);
}

/** A reason an auditor can act on: at least 20 characters and four distinct words, not a placeholder. */
function reasonOfSubstance(reason: string): string | undefined {
  const text = reason.trim();
  const words = new Set(text.toLowerCase().match(/[a-z0-9][a-z0-9'-]+/g) ?? []);
  if (text.length < 20 || words.size < 4)
    return "a release of a credential that protects against zeroization needs a reason of substance (what was wrong and what was fixed: at least 20 characters, four words)";
  return undefined;
}

/**
 * A guard-admin asks to release (device, role[, partition]). Destructive roles get a pending request that waits for
 * a second principal's signature; others are released now.
 */
export async function requestGuardRelease(
  redis: RedisClient,
  dataDir: string,
  fleet: Fleet,
  req: { device: string; role: GuardRole; partition?: string | undefined; reason: string; principal: string },
  signer?: EvidenceSigner,
): Promise<ReleaseDecision> {
  const device = getDevice(fleet, req.device);
  if (!releaseNeedsSecondApproval(fleet, req.role)) {
    const result = await releaseQuarantine(redis, dataDir, req).catch(async (err: unknown) => {
      if (err instanceof ReleaseRefused && err.evidenceJobId)
        await sealFinal(await EvidenceLog.open(redis, dataDir, err.evidenceJobId), signer, redis, "refused");
      throw err;
    });
    await sealFinal(await EvidenceLog.open(redis, dataDir, result.evidenceJobId), signer, redis, "released");
    return { kind: "released", result };
  }
  const lacking = reasonOfSubstance(req.reason);
  if (lacking) throw new ReleaseRefused(lacking);
  const ledger = new LoginLedger(redis);
  const entry = await ledger.get(await findLedgerKey(ledger, req));
  if (!entry.quarantined && entry.failures === 0)
    throw new ReleaseRefused(
      `${req.device} ${req.role}${req.partition ? `@${req.partition}` : ""} is not quarantined`,
    );
  const now = Date.now();
  const id = `guard-release-${now.toString(36)}-${randomBytes(3).toString("hex")}`;
  const statement: GuardReleaseStatement = {
    kind: "guard-release",
    decision: "release",
    request: id,
    device: device.name,
    serial: device.serial,
    credential: `${req.role}${req.partition ? `@${req.partition}` : ""}`,
    quarantinedBy: entry.quarantineJob ?? "-",
    reason: req.reason.trim().replace(/\s+/g, " ").slice(0, 500),
    requester: req.principal,
    deadline: new Date(now + RELEASE_REQUEST_MINUTES * 60_000).toISOString(),
  };
  const request: GuardReleaseRequest = {
    id,
    device: device.name,
    serial: device.serial,
    role: req.role,
    ...(req.partition ? { partition: req.partition } : {}),
    reason: statement.reason,
    requester: req.principal,
    quarantinedBy: statement.quarantinedBy,
    requestedAt: new Date(now).toISOString(),
    deadline: statement.deadline,
    status: "awaiting-approval",
    statement: renderStatement(statement),
  };
  await redis.set(key(id), JSON.stringify(request), "EX", TTL_SECONDS, "NX");
  const log = await EvidenceLog.open(redis, dataDir, id);
  await log.append("guard", { event: "release-requested", ...request }, req.principal);
  await sealEvidence(log, signer, redis);
  return { kind: "awaiting-approval", request };
}

export async function getGuardReleaseRequest(
  redis: RedisClient,
  id: string,
): Promise<GuardReleaseRequest | null> {
  const raw = await redis.get(key(id));
  return raw ? (JSON.parse(raw) as GuardReleaseRequest) : null;
}

/**
 * The second approval: verified against the fleet's key registry and the request's own statement (rebuilt here, not
 * taken from the caller), never the requester's; then the ledger is reset and the signed statement recorded.
 */
export async function approveGuardRelease(
  redis: RedisClient,
  dataDir: string,
  fleet: Fleet,
  id: string,
  approval: SignedApproval & { submittedBy: string },
  signer?: EvidenceSigner,
): Promise<ReleaseResult> {
  const request = await getGuardReleaseRequest(redis, id);
  if (!request) throw new ReleaseRefused(`no guard release request '${id}'`);
  const log = await EvidenceLog.open(redis, dataDir, id);
  const refuse = async (reason: string, code: string): Promise<never> => {
    await log.append(
      "approval",
      { event: "refused", code, reason, principal: approval.principal, submittedBy: approval.submittedBy },
      approval.submittedBy,
    );
    await sealEvidence(log, signer, redis);
    throw new ReleaseRefused(`guard release ${id}: ${reason}`);
  };
  if (request.status !== "awaiting-approval")
    return refuse(`it is ${request.status}, not awaiting approval`, "not-awaiting-approval");
  const verdict = await checkApproval(
    approval,
    await loadApproverKeys(redis, fleet, { checkCounters: true }),
    { statement: request.statement, requester: request.requester, now: Date.now() },
  );
  if (!verdict.ok) return refuse(verdict.reason, verdict.code);
  const credentialId = credentialIdOf(verdict.keyFingerprint);
  if (credentialId && verdict.webauthnCounter !== undefined)
    await recordCounter(redis, credentialId, verdict.webauthnCounter);
  await log.append(
    "approval",
    {
      event: "approved",
      principal: verdict.principal,
      keyFingerprint: verdict.keyFingerprint,
      submittedBy: approval.submittedBy,
      statement: approval.statement,
      signature: approval.signature,
      // A security key's assertion: with the credential's registration (log webauthn-credentials), verifiable offline.
      ...(approval.webauthn ? { method: "webauthn", webauthn: approval.webauthn } : {}),
    },
    verdict.principal,
  );
  const result = await releaseQuarantine(redis, dataDir, {
    device: request.device,
    role: request.role,
    partition: request.partition,
    reason: `${request.reason} (requested by ${request.requester}, approved by ${verdict.principal}: ${id})`,
    principal: request.requester,
  }).catch(async (err: unknown) => {
    // Approved, but the ledger would not be reset (an attempt in flight): both logs say so, sealed; the request stays.
    if (err instanceof ReleaseRefused && err.evidenceJobId)
      await sealFinal(await EvidenceLog.open(redis, dataDir, err.evidenceJobId), signer, redis, "refused");
    await sealEvidence(log, signer, redis);
    throw err;
  });
  const done: GuardReleaseRequest = {
    ...request,
    status: "released",
    approval: {
      principal: verdict.principal,
      keyFingerprint: verdict.keyFingerprint,
      signature: approval.signature,
      submittedBy: approval.submittedBy,
      at: new Date().toISOString(),
    },
  };
  await redis.set(key(id), JSON.stringify(done), "EX", TTL_SECONDS);
  await log.append("result", { event: "released", releaseEvidence: result.evidenceJobId }, verdict.principal);
  await sealFinal(log, signer, redis, "released");
  await sealFinal(await EvidenceLog.open(redis, dataDir, result.evidenceJobId), signer, redis, "released");
  return result;
}
