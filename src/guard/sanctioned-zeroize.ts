// The sanctioned zeroize: the ONE flow in lunafleet that destroys an HSM's keys on purpose, for the deprovisioning
// runbook (Azure Dedicated HSM tenants cannot run `hsm zeroize`; the documented way is three failed HSM SO logins).
// Before anything is sent it requires: a deprovision job id, approvals by at least two distinct principals that have
// not expired, and a typed confirmation equal to the device serial — the fleet's AND the one `hsm show` reports —
// while the caller holds the device lock. It records its intent as evidence, quarantines the HSM SO ledger entry
// (no ordinary login can interleave), then sends failing SO logins with random strings (never the real password),
// answering `proceed` at the LAST caution with an exception only this module can obtain, and finally verifies that
// `hsm show` reports the HSM zeroized. Resuming after a crash is safe: a device already zeroized gets nothing sent.
import { randomBytes, randomUUID } from "node:crypto";
import { parsers } from "../../parsers/index.ts";
import { applianceIdentity, deviceSecret, getDevice } from "../config/model.ts";
import type { Device, Fleet } from "../config/schema.ts";
import { Secret } from "../config/secret.ts";
import { isValidJobId } from "../evidence/record.ts";
import type { RedisClient } from "../redis/client.ts";
import { claimLastAttemptExceptionIssuer } from "../shell/last-attempt-exception.ts";
import { issueLoginToken } from "../shell/login-token.ts";
import { sendCommand } from "../shell/reply.ts";
import type { ShellSession } from "../shell/session.ts";
import { CounterUnreadable, readHsmShow } from "./device-counter.ts";
import { SanctionedZeroizeRefused, ZeroizeNotVerified } from "./errors.ts";
import { deviceLockResource, type GuardEvidence, type GuardLocks, redactDeep } from "./guard.ts";
import { LoginLedger } from "./ledger.ts";

// Claimed at load: from here on no other module in this process can obtain a last-attempt exception.
const issueLastAttemptException = claimLastAttemptExceptionIssuer();

export interface Approval {
  principal: string;
  /** When the approval was given (ISO 8601 or Date). */
  at: string | Date;
}

/** Fencing check with Redis (DeviceLockSet.assertHeld): the lock is ours with our token, now. */
export interface ZeroizeLocks extends GuardLocks {
  assertHeld(resource?: string): Promise<void>;
}

export interface SanctionedZeroizeRequest {
  /** A lunash session of the device. */
  session: ShellSession;
  fleet: Fleet;
  device: string;
  /** The deprovision job this zeroize belongs to (its evidence holds the approvals). */
  deprovisionJobId: string;
  approvals: readonly Approval[];
  /** What the operator typed: must equal the device's serial. */
  confirmation: string;
  locks: ZeroizeLocks;
  evidence: GuardEvidence;
  actor?: string;
  /** For tests of expiry; default Date.now(). */
  now?: () => number;
}

export interface SanctionedZeroizeResult {
  device: string;
  serial: string;
  /** True when the device was already zeroized (a resume): nothing was sent. */
  alreadyZeroized: boolean;
  /** Failing SO logins sent by this call. */
  loginsSent: number;
}

/** Allowed clock skew for an approval timestamp slightly in the future. */
const SKEW_MS = 60_000;

/** Check the approvals again here (the approval flow checked them too; this is the last door). */
export function checkApprovals(
  approvals: readonly Approval[],
  policy: { required: number; expiresMinutes: number; principals?: string[] | undefined },
  now: number,
): { ok: true; principals: string[] } | { ok: false; reason: string } {
  const required = Math.max(2, policy.required);
  const valid = new Map<string, string>();
  const problems: string[] = [];
  for (const a of approvals) {
    const principal = typeof a.principal === "string" ? a.principal.trim() : "";
    const at = new Date(a.at).getTime();
    if (!principal) {
      problems.push("an approval without a principal");
      continue;
    }
    if (!Number.isFinite(at)) {
      problems.push(`approval by ${principal} has no valid time`);
      continue;
    }
    if (at > now + SKEW_MS) {
      problems.push(`approval by ${principal} is dated in the future`);
      continue;
    }
    if (now - at > policy.expiresMinutes * 60_000) {
      problems.push(`approval by ${principal} expired (older than ${policy.expiresMinutes} min)`);
      continue;
    }
    if (policy.principals && !policy.principals.includes(principal)) {
      problems.push(`${principal} is not an approver in the fleet file`);
      continue;
    }
    valid.set(principal.toLowerCase(), principal);
  }
  if (valid.size < required)
    return {
      ok: false,
      reason: `needs approvals by ${required} distinct principals, has ${valid.size}${problems.length ? ` (${problems.join("; ")})` : ""}`,
    };
  return { ok: true, principals: [...valid.values()] };
}

export async function sanctionedZeroize(
  redis: RedisClient,
  req: SanctionedZeroizeRequest,
): Promise<SanctionedZeroizeResult> {
  const now = req.now ?? Date.now;
  const record = (event: string, data: Record<string, unknown> = {}) =>
    req.evidence.append(
      "guard",
      redactDeep({
        event,
        flow: "sanctioned-zeroize",
        device: req.device,
        jobId: req.deprovisionJobId,
        ...data,
      }),
      req.actor,
    );
  const refuse = async (reason: string): Promise<never> => {
    await record("zeroize-refused", { reason }).catch(() => {});
    throw new SanctionedZeroizeRefused({ device: req.device, reason });
  };

  // 1. The paperwork, before anything touches the device.
  if (
    typeof req.deprovisionJobId !== "string" ||
    !req.deprovisionJobId ||
    !isValidJobId(req.deprovisionJobId)
  )
    return refuse("a deprovision job id is required");
  let device: Device;
  try {
    device = getDevice(req.fleet, req.device);
  } catch (err) {
    return refuse((err as Error).message);
  }
  const approvals = checkApprovals(req.approvals ?? [], req.fleet.approvals, now());
  if (!approvals.ok) return refuse(approvals.reason);
  if (req.confirmation !== device.serial)
    return refuse(`the typed confirmation does not match ${device.name}'s serial (fleet file)`);
  if (req.session.platform.kind !== "lunash" || req.session.target !== device.name)
    return refuse(`needs a lunash session of ${device.name}`);
  const resource = deviceLockResource(device);
  try {
    req.locks.throwIfLost();
    req.locks.tokenFor(resource);
    await req.locks.assertHeld(resource);
  } catch (err) {
    return refuse(`the caller does not hold the device lock ${resource} (${(err as Error).message})`);
  }

  // 2. The device's own word: the right box (serial = confirmation), and whether it is zeroized already.
  let show: Awaited<ReturnType<typeof readHsmShow>>;
  try {
    show = await readHsmShow(req.session, device);
  } catch (err) {
    return refuse(`could not read 'hsm show': ${(err as Error).message}`);
  }
  if (show.serial !== req.confirmation)
    return refuse(`the device reports serial ${show.serial}, which is not the typed confirmation`);
  if (show.zeroized) {
    await record("zeroize-already-done", { serial: show.serial, loginsSent: 0 });
    return { device: device.name, serial: show.serial, alreadyZeroized: true, loginsSent: 0 };
  }

  // 3. Intent on the record, and the HSM SO credential taken out of ordinary use.
  await record("zeroize-intent", {
    serial: show.serial,
    approvedBy: approvals.principals,
    confirmation: "matches fleet and device serial",
    attemptsLeft: show.adminLoginAttemptsLeft,
  });
  const ledger = new LoginLedger(redis);
  const q = await ledger.quarantine(
    { device: device.name, role: "hsmSo", appliance: applianceIdentity(device) },
    `sanctioned zeroize by deprovision job ${req.deprovisionJobId}`,
    req.deprovisionJobId,
  );
  if (!q.ok) return refuse(`HSM SO ledger entry busy: ${q.reason}`);

  // 4. Failing SO logins, never more than the device says are left, never the real password.
  const real = deviceSecret(req.fleet, device, "hsmSo")?.reveal();
  let sent = 0;
  let left = show.adminLoginAttemptsLeft;
  while (left > 0) {
    await req.locks.assertHeld(resource); // fenced: a worker that lost the device must stop here
    let junk = randomBytes(24).toString("base64url");
    while (junk === real) junk = randomBytes(24).toString("base64url");
    const attemptId = `${req.deprovisionJobId}:zeroize:${randomUUID().slice(0, 8)}`;
    const token = issueLoginToken({
      target: device.name,
      command: "hsm login",
      role: "hsmSo",
      secret: new Secret(junk, "sanctioned-zeroize:random"),
      attemptId,
    });
    const last = left === 1;
    const exception = last
      ? issueLastAttemptException({ target: device.name, jobId: req.deprovisionJobId })
      : undefined;
    await record("zeroize-login-sent", { attemptId, attemptsLeftBefore: left, lastAttempt: last });
    sent += 1;
    let outcome: string;
    try {
      const { reply } = await sendCommand(req.session, "hsm login", parsers.hsmLogin, {
        token,
        ...(exception ? { lastAttemptException: exception } : {}),
      });
      if (reply.ok) {
        // A random string logged in: something is badly wrong with this device. Stop and say so.
        await record("zeroize-aborted", { attemptId, reason: "a random password was accepted" });
        throw new ZeroizeNotVerified({
          device: device.name,
          reason: "a random password was accepted; stopped",
        });
      }
      outcome = `${reply.error.code} ${reply.error.errorName}`;
    } catch (err) {
      if (err instanceof ZeroizeNotVerified) throw err;
      outcome = `${(err as Error).name}: ${(err as Error).message}`;
    }
    await record("zeroize-login-outcome", { attemptId, outcome });
    // Re-read rather than count: the device's counter says what happened.
    try {
      const again = await readHsmShow(req.session, device);
      if (again.zeroized) break;
      if (again.adminLoginAttemptsLeft >= left)
        throw new ZeroizeNotVerified({
          device: device.name,
          reason: `the failing login did not count (attempts left still ${again.adminLoginAttemptsLeft}): ${outcome}`,
        });
      left = again.adminLoginAttemptsLeft;
    } catch (err) {
      if (err instanceof ZeroizeNotVerified || !(err instanceof CounterUnreadable)) throw err;
      throw new ZeroizeNotVerified({ device: device.name, reason: err.message });
    }
  }

  // 5. Verify.
  const final = await readHsmShow(req.session, device).catch((err: Error) => err);
  if (final instanceof Error || !final.zeroized) {
    const reason = final instanceof Error ? final.message : "hsm show does not report HSM IS ZEROIZED";
    await record("zeroize-unverified", { reason, loginsSent: sent });
    throw new ZeroizeNotVerified({ device: device.name, reason });
  }
  await record("zeroize-verified", { serial: final.serial, zeroized: true, loginsSent: sent });
  return { device: device.name, serial: final.serial, alreadyZeroized: false, loginsSent: sent };
}
