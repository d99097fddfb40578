// Over 400 lines: the login sequence reads in its order, one block per numbered step below; spread over files, the
//  order that keeps a device from zeroizing would be hidden.
// The login guard: the ONLY way lunafleet logs in to a device role (HSM SO, Partition SO, Crypto Officer/User,
// Auditor). One call = at most one password sent, in this order, every step on the job's evidence:
//   1. the caller holds the device lock (fencing token) — otherwise refused;
//   2. a pending attempt whose owner no longer holds the lock is resolved as a failure (resolveStale);
//   3. the device's own counter is read first (`hsm show`, lunacm `partition showinfo` / `role show`, policies);
//   4. the budget decides (decideLoginBudget) — refused with the reason, or allowed;
//   5. the attempt is written to the ledger, atomically with the fence check, BEFORE the password is sent;
//   6. a one-use LoginToken is issued and the login sent once: no retry, no -force, the LAST-attempt caution is
//      never answered `proceed` (the shell answers `quit`);
//   7. the outcome is recorded: success clears, a wrong password or an unknown outcome (timeout, lost connection,
//      unparsed reply) counts as a failure and quarantines the credential; the guard then throws LoginFailed.
// A failed or unknown login is never retried here or by the engine (LoginFailed/GuardRefused are non-retryable).
import { randomUUID } from "node:crypto";
import { type CommandParser, parsers } from "../../parsers/index.ts";
import {
  applianceIdentity,
  deviceLockResource,
  deviceSecret,
  getDevice,
  getPartition,
  partitionSecret,
} from "../config/model.ts";
import type { Device, Fleet, Partition } from "../config/schema.ts";
import { redact, type Secret } from "../config/secret.ts";
import { lockKey, lockValue } from "../coord/locks.ts";
import type { RedisClient } from "../redis/client.ts";
import { issueLoginToken, type LoginToken } from "../shell/login-token.ts";
import { type Sent, sendCommand } from "../shell/reply.ts";
import type { ShellSession } from "../shell/session.ts";
import { type BudgetDecision, decideLoginBudget } from "./budget.ts";
import {
  type DeviceObservation,
  lunacmRoleName,
  observeApplianceRole,
  observePartitionRole,
  readPolicy15,
} from "./device-counter.ts";
import { GuardRefused, LedgerUnavailable, LoginFailed } from "./errors.ts";
import { type FinishOutcome, type LedgerKey, LoginLedger } from "./ledger.ts";
import { type GuardRole, isDestructive, rolePolicy } from "./roles.ts";

/** Where the guard writes its records: the job's evidence log (src/evidence EvidenceLog satisfies it). */
export interface GuardEvidence {
  append(kind: "guard", data: unknown, actor?: string): Promise<unknown>;
}

/** The caller's device locks (src/queue DeviceLockSet satisfies it). */
export interface GuardLocks {
  readonly owner: string;
  tokenFor(resource: string): number;
  throwIfLost(): void;
}

export interface LoginRequest {
  /** lunash session of the device (HSM SO, auditor) or lunacm session of a client host (partition roles). */
  session: ShellSession;
  /** A lunash session of the device, to read HSM policy 15 for CO/CU (optional; unknown = permanent lockout). */
  applianceSession?: ShellSession | undefined;
  fleet: Fleet;
  device: string;
  partition?: string | undefined;
  role: GuardRole;
  jobId: string;
  locks: GuardLocks;
  evidence: GuardEvidence;
  actor?: string | undefined;
}

export interface LoginResult {
  device: string;
  partition?: string;
  role: GuardRole;
  attemptId: string;
  /** The shell session is logged in while its generation stays this one (a reconnect logs it out). */
  sessionGeneration: number | undefined;
  /** Attempts the device would still have had if this login had failed. */
  attemptsLeftAfterFailure: number;
}

/** The device lock resource every job takes before touching a device: the appliance's identity (config/model.ts). */
export { deviceLockResource };

/**
 * The login command of each role and the parser of its reply. `audit login` has none: no capture of its reply exists,
 * so an auditor login's outcome could not be read, and the guard does not send one.
 */
const LOGIN_COMMAND: Record<
  GuardRole,
  { shell: "lunash" | "lunacm"; canonical: string; parser: CommandParser | undefined }
> = {
  hsmSo: { shell: "lunash", canonical: "hsm login", parser: parsers.hsmLogin },
  auditor: { shell: "lunash", canonical: "audit login", parser: undefined },
  partitionSo: { shell: "lunacm", canonical: "role login", parser: parsers.roleLogin },
  co: { shell: "lunacm", canonical: "role login", parser: parsers.roleLogin },
  cu: { shell: "lunacm", canonical: "role login", parser: parsers.roleLogin },
};

/** Device replies that mean "this password is wrong" (the attempt counted); anything else is an unknown outcome. */
const WRONG_PASSWORD_CODES = new Set(["a00000", "0xa0"]);
const WRONG_PASSWORD_NAMES = new Set(["LUNA_RET_UM_PIN_INCORRECT", "CKR_PIN_INCORRECT"]);

/** The tail of the guard's queue per shell session (see login()). */
const sessionTurns = new WeakMap<ShellSession, Promise<unknown>>();

export class LoginGuard {
  readonly ledger: LoginLedger;

  constructor(redis: RedisClient) {
    this.ledger = new LoginLedger(redis);
  }

  /**
   * Log in once, or throw GuardRefused (nothing sent) / LoginFailed (sent, failed or unknown, quarantined).
   * Logins through one shell session run one at a time: a lunacm session is shared by every partition of its client
   * host, and `slot set` → counters → `role login` must not interleave with another login's slot selection.
   */
  login(req: LoginRequest): Promise<LoginResult> {
    const prev = sessionTurns.get(req.session) ?? Promise.resolve();
    const mine = prev.then(
      () => this.#login(req),
      () => this.#login(req),
    );
    sessionTurns.set(
      req.session,
      mine.catch(() => {}),
    );
    return mine;
  }

  async #login(req: LoginRequest): Promise<LoginResult> {
    const { fleet, role, jobId, evidence } = req;
    const where = { device: req.device, partition: req.partition, role };
    const record = (data: Record<string, unknown>) =>
      evidence.append("guard", redactDeep({ ...where, ...data }), req.actor);
    const refuse = async (reason: string, extra: Record<string, unknown> = {}): Promise<never> => {
      // A refusal that cannot be put on the record is still a refusal; nothing was sent either way.
      await record({ event: "refused", reason, ...extra }).catch(() => {});
      throw new GuardRefused({ ...where, reason });
    };

    // 0. What is being asked, through which session, under which lock.
    const target = resolveTarget(fleet, req);
    if ("refused" in target) return refuse(target.refused);
    const { device, partition, key } = target;
    const replyParser = LOGIN_COMMAND[role].parser;
    if (!replyParser)
      return refuse(
        `lunafleet has no parser for the reply of '${LOGIN_COMMAND[role].canonical}' (no capture of it exists): the outcome of this login could not be read`,
      );
    const resource = deviceLockResource(device);
    let token: number;
    try {
      req.locks.throwIfLost();
      token = req.locks.tokenFor(resource);
    } catch (err) {
      return refuse(`the caller does not hold the device lock ${resource} (${(err as Error).message})`);
    }
    const lock = { key: lockKey(resource), value: lockValue(token, req.locks.owner) };
    const secret = credentialOf(fleet, device, partition, role);
    if (!secret) return refuse(`the fleet file holds no ${role} credential for ${describeKey(key)}`);

    // 1. An attempt left pending by a worker that is gone counts as a failure (and quarantines).
    const stale = await this.ledger.resolveStale(
      key,
      lock.key,
      "an earlier attempt's worker lost the device lock before recording the outcome (crash, kill, lost lock)",
    );
    if (stale === "resolved")
      await record({ event: "stale-attempt-resolved", outcome: "unknown", quarantined: true });

    // 2. The device's own counter first.
    let observed: DeviceObservation;
    try {
      observed =
        role === "hsmSo" || role === "auditor"
          ? await observeApplianceRole(req.session, device, role)
          : await observePartitionRole(req.session, device, partition as Partition, role);
      if ((role === "co" || role === "cu") && req.applianceSession) {
        try {
          const p15 = await readPolicy15(req.applianceSession);
          if (p15 !== undefined) observed.policy15 = p15;
          observed.reads.push("hsm showPolicies");
        } catch (err) {
          observed.unreadable.push(`hsm showPolicies: ${(err as Error).message}`);
        }
      }
    } catch (err) {
      return refuse(`could not read the device's own counter: ${(err as Error).message}`);
    }
    await this.ledger.observeDeviceCounter(key, {
      attemptsLeft: observed.attemptsLeft,
      state: observed.state,
    });

    // 3. The budget.
    const entry = await this.ledger.get(key);
    const policy = rolePolicy(role, fleet.defaults.thresholds, {
      ...(observed.policy15 !== undefined ? { policy15: observed.policy15 } : {}),
      ...(observed.policy20 !== undefined ? { policy20: observed.policy20 } : {}),
    });
    const decision: BudgetDecision = decideLoginBudget(
      policy,
      {
        failures: entry.failures,
        pending: entry.pendingAttempt !== undefined,
        quarantined: entry.quarantined,
        ...(entry.quarantineReason !== undefined ? { quarantineReason: entry.quarantineReason } : {}),
      },
      {
        ...(observed.attemptsLeft !== undefined ? { attemptsLeft: observed.attemptsLeft } : {}),
        lockedOrZeroized: observed.state !== "ok",
      },
      // Destructive roles need the device's own word: a released ledger must never be the only guard.
      { deviceCounterRequired: isDestructive(policy.effect) },
    );
    const facts = {
      policy,
      device: {
        attemptsLeft: observed.attemptsLeft ?? null,
        state: observed.state,
        policy15: observed.policy15 ?? null,
        policy20: observed.policy20 ?? null,
        reads: observed.reads,
        unreadable: observed.unreadable,
      },
      ledger: { failures: entry.failures, quarantined: entry.quarantined },
    };
    if (!decision.allowed) return refuse(decision.reason, facts);

    // 4. Write-ahead: the attempt is on the ledger (fenced) before anything reaches the device.
    const attemptId = `${jobId}:${randomUUID().slice(0, 12)}`;
    const begun = await this.ledger.begin(key, attemptId, {
      lockKey: lock.key,
      lockValue: lock.value,
      maxPriorFailures: isDestructive(policy.effect) ? 0 : Math.max(0, policy.threshold - 2),
      jobId,
    });
    if (!begun.ok) return refuse(`the ledger refused the attempt: ${begun.reason}`, facts);
    try {
      await record({
        event: "attempt-recorded",
        attemptId,
        attemptsLeftAfterFailure: decision.attemptsLeftAfterFailure,
        fencingToken: token,
        ...facts,
      });
    } catch (err) {
      // No record, no login: give the slot back (the token was never issued, nothing was sent).
      await this.ledger.finish(key, attemptId, "not-sent", "evidence unavailable", jobId).catch(() => {});
      throw new GuardRefused({
        ...where,
        reason: `evidence could not be written: ${(err as Error).message}`,
      });
    }

    // 5. One login, once.
    const loginToken = issueLoginToken({
      target: req.session.target,
      command: LOGIN_COMMAND[role].canonical,
      role,
      secret,
      attemptId,
    });
    let sent: Sent<unknown> | undefined;
    let thrown: unknown;
    try {
      // No `confirm`: every confirmation (and the LAST-attempt caution above all) is declined with `quit`.
      sent = await sendCommand(req.session, loginCommand(role), replyParser, { token: loginToken });
    } catch (err) {
      thrown = err;
    }
    const verdict = classify(sent, thrown, loginToken);

    // 6. The outcome, ledger first (it is what the next attempt reads), then the evidence.
    try {
      await this.ledger.finish(key, attemptId, verdict.outcome, verdict.reason, jobId);
    } catch (err) {
      await record({ event: "outcome-unrecorded", attemptId, ...verdict }).catch(() => {});
      throw new LedgerUnavailable({
        ...where,
        reason: `login outcome '${verdict.outcome}' could not be recorded (${(err as Error).message}); the pending attempt will count as a failure`,
      });
    }
    await record({
      event: "outcome",
      attemptId,
      outcome: verdict.outcome,
      reason: verdict.reason,
      quarantined: verdict.outcome === "wrong" || verdict.outcome === "unknown",
      notices: sent?.output.notices ?? [],
    });
    if (verdict.outcome === "success")
      return {
        device: device.name,
        ...(partition ? { partition: partition.label } : {}),
        role,
        attemptId,
        sessionGeneration: req.session.generation,
        attemptsLeftAfterFailure: decision.attemptsLeftAfterFailure,
      };
    if (verdict.outcome === "not-sent")
      throw new GuardRefused({ ...where, reason: `the login was not sent: ${verdict.reason}` });
    throw new LoginFailed({
      ...where,
      outcome: verdict.outcome,
      reason: `${verdict.reason}; credential quarantined until 'lunafleet guard release'`,
      underlying: verdict.underlying,
    });
  }

  /**
   * At startup (daemon) or from `lunafleet guard status`: resolve every pending attempt whose owner no longer holds
   * its device lock as a failure. Returns the entries resolved.
   */
  async resolveStaleAll(): Promise<LedgerKey[]> {
    const resolved: LedgerKey[] = [];
    for (const e of await this.ledger.list()) {
      if (e.pendingAttempt === undefined) continue;
      const key: LedgerKey = {
        device: e.device,
        role: e.role,
        ...(e.partition ? { partition: e.partition } : {}),
        ...(e.appliance ? { appliance: e.appliance } : {}),
        ...(e.partitionSerial ? { partitionSerial: e.partitionSerial } : {}),
      };
      const r = await this.ledger.resolveStale(
        key,
        lockKey(`device:${e.appliance ?? e.device}`),
        "found pending at startup: its worker no longer holds the device lock",
      );
      if (r === "resolved") resolved.push(key);
    }
    return resolved;
  }
}

function resolveTarget(
  fleet: Fleet,
  req: LoginRequest,
): { device: Device; partition: Partition | undefined; key: LedgerKey } | { refused: string } {
  let device: Device;
  try {
    device = getDevice(fleet, req.device);
  } catch (err) {
    return { refused: (err as Error).message };
  }
  const spec = LOGIN_COMMAND[req.role];
  if (!spec) return { refused: `unknown role '${String(req.role)}'` };
  if (req.session.platform.kind !== spec.shell)
    return {
      refused: `${req.role} logs in through ${spec.shell}, not a ${req.session.platform.kind} session`,
    };
  if (spec.shell === "lunash" && req.session.target !== device.name)
    return { refused: `the lunash session is for '${req.session.target}', not '${device.name}'` };
  if (spec.shell === "lunash") {
    if (req.partition !== undefined) return { refused: `${req.role} is not a partition role` };
    return {
      device,
      partition: undefined,
      key: { device: device.name, role: req.role, appliance: applianceIdentity(device) },
    };
  }
  if (req.partition === undefined) return { refused: `${req.role} needs a partition` };
  let partition: Partition;
  try {
    partition = getPartition(device, req.partition);
  } catch (err) {
    return { refused: (err as Error).message };
  }
  return {
    device,
    partition,
    key: {
      device: device.name,
      partition: partition.label,
      role: req.role,
      appliance: applianceIdentity(device),
      partitionSerial: partition.serial,
    },
  };
}

function credentialOf(
  fleet: Fleet,
  device: Device,
  partition: Partition | undefined,
  role: GuardRole,
): Secret | undefined {
  if (role === "hsmSo" || role === "auditor") return deviceSecret(fleet, device, role);
  if (!partition) return undefined;
  return partitionSecret(fleet, device, partition, role);
}

/** The exact command line; never `-password` (typed at the prompt) and never `-force`. */
function loginCommand(role: GuardRole): string {
  if (role === "hsmSo") return "hsm login";
  if (role === "auditor") return "audit login";
  return `role login -name ${lunacmRoleName(role)}`;
}

function classify(
  sent: Sent<unknown> | undefined,
  thrown: unknown,
  token: LoginToken,
): { outcome: FinishOutcome; reason: string; underlying?: string } {
  if (thrown !== undefined || sent === undefined) {
    const kind = thrown instanceof Error ? thrown.name : "Error";
    const message = thrown instanceof Error ? thrown.message : String(thrown);
    // The token is spent just before the command is written: unspent = provably nothing reached the device.
    if (!token.used) return { outcome: "not-sent", reason: `${kind}: ${message}`, underlying: kind };
    return { outcome: "unknown", reason: `${kind}: ${message}`, underlying: kind };
  }
  if (sent.reply.ok) return { outcome: "success", reason: "logged in" };
  const e = sent.reply.error;
  if (WRONG_PASSWORD_CODES.has(e.code.toLowerCase()) || WRONG_PASSWORD_NAMES.has(e.errorName))
    return { outcome: "wrong", reason: `the device rejected the password (${e.code} ${e.errorName})` };
  return {
    outcome: "unknown",
    reason: `the device answered the login with an error (${e.code} ${e.errorName}: ${e.deviceMessage})`,
    underlying: "DeviceError",
  };
}

function describeKey(k: LedgerKey): string {
  return `${k.device}${k.partition ? `/${k.partition}` : ""}`;
}

/** Strings redacted all the way down (evidence redacts again; errors and reasons may quote device text). */
export function redactDeep(x: unknown): unknown {
  if (typeof x === "string") return redact(x);
  if (Array.isArray(x)) return x.map(redactDeep);
  if (typeof x === "object" && x !== null) {
    const o: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(x)) o[k] = redactDeep(v);
    return o;
  }
  return x;
}
