// Approvals of destructive jobs (deprovisioning): a job asks, operators approve or reject, the job waits — holding its
// device lock — until enough distinct principals have approved with a typed confirmation equal to the device serial.
//
// Rules, each enforced inside ONE atomic Lua script per transition (BullMQ's rule: a crash or a race never leaves a
// half transition, and two operators approving at once are serialized by Redis):
// - the same principal twice does not count (compared case-insensitively: "Alice" and "alice" are one person);
// - a confirmation that is not exactly the device serial is refused, and the refusal is recorded;
// - an optional allow-list (`fleet.approvals.principals`) refuses anyone else, recorded too;
// - the request expires `expiresMinutes` after it was made (Redis server time, the same clock for every host):
//   an incomplete request becomes `expired`, and an approved one that was not used in time expires as well;
// - `rejected` and `expired` are final for the job: a new deprovisioning needs a new job;
// - a job that ends (failed, cancelled, done) closes its request with its outcome (closeApproval): a request still
//   awaiting approval becomes `withdrawn`, and approving a job that no longer waits is refused naming its state.
//
// What waits is listed from an index (listWaitingApprovals): each request says what the job will do (`action`), on
// which device and serial, by when. The statement an approver approves (approvalStatement: job, runbook, device,
// serial, action, plan digest, deadline) is what a signature verifier (ApprovalVerifier) checks before approve() counts
// anything; the store itself stays the one place that decides what counts.
//
// The data (states, statement, proof, errors) is approval-model.ts; the keys and Lua scripts approval-scripts.ts.
//
// Keys (the approval document's hash tag = job id, the same slot as the job's checkpoints):
//   lunafleet:approval:{<jobId>}    JSON document (see ApprovalState), kept 30 days after its deadline.
//   lunafleet:approvals:waiting     sorted set of job ids awaiting approval, by deadline (an index: each listed
//                                   document is re-read, and entries that no longer wait are dropped)

import { type RedisClient, runScript } from "../redis/client.ts";
import {
  ApprovalError,
  type ApprovalInput,
  type ApprovalOptions,
  ApprovalProofRefused,
  type ApprovalRefusalReason,
  ApprovalRefused,
  type ApprovalRequest,
  ApprovalRequestConflict,
  type ApprovalState,
  approvalStatement,
  NoApprovalRequest,
  toState,
} from "./approval-model.ts";
import {
  APPROVAL_REQUESTED_CHANNEL,
  approvalKey,
  approveIfValid,
  closeWhenJobEnds,
  readApprovalState,
  recordRefusal,
  rejectIfAwaiting,
  requestApprovalOnce,
  WAITING_APPROVALS_KEY,
} from "./approval-scripts.ts";

export * from "./approval-model.ts";
export { APPROVAL_REQUESTED_CHANNEL, approvalKey, WAITING_APPROVALS_KEY } from "./approval-scripts.ts";

const PRINCIPAL_RE = /^[A-Za-z0-9][A-Za-z0-9._@:+-]{0,127}$/;

function checkPrincipal(principal: string): void {
  if (!PRINCIPAL_RE.test(principal))
    throw new ApprovalError(
      `principal ${JSON.stringify(principal)} is not a valid name (letters, digits, . _ @ : + -, up to 128)`,
    );
}

/**
 * Ask for approvals of a job (idempotent: a resumed job asking again gets its standing request, approvals and all).
 * A standing request for another device or serial is a conflict (a job id reused for another device).
 */
export async function requestApproval(
  redis: RedisClient,
  jobId: string,
  req: ApprovalRequest,
  opts: ApprovalOptions = {},
): Promise<ApprovalState> {
  if (!Number.isInteger(req.required) || req.required < 1)
    throw new ApprovalError(`approvals required must be a positive integer, got ${req.required}`);
  if (!(req.expiresMinutes > 0))
    throw new ApprovalError(`approval expiry must be positive, got ${req.expiresMinutes} minutes`);
  for (const p of req.principals ?? []) checkPrincipal(p);
  const expiresMs = Math.max(1, Math.round(req.expiresMinutes * 60_000));
  const reply = (await runScript(
    redis,
    requestApprovalOnce,
    [approvalKey(jobId)],
    [
      jobId,
      req.device,
      req.serial,
      req.required,
      expiresMs,
      JSON.stringify(req.principals ?? null),
      req.runbook ?? "",
      req.action ?? "",
      req.planDigest ?? "",
      req.requester ?? "",
    ],
  )) as [string, string];
  const state = toState(reply[1]);
  await indexWaiting(redis, state);
  if (reply[0] === "conflict")
    throw new ApprovalRequestConflict(
      `job ${jobId} already has an approval request for ${state.device} (serial ${state.serial}); ` +
        `it cannot be reused for ${req.device} (serial ${req.serial})`,
    );
  // Fire and forget: the notifier also sweeps the waiting index, so a message lost here is only later, not lost.
  if (reply[0] === "created") await redis.publish(APPROVAL_REQUESTED_CHANNEL, jobId).catch(() => 0);
  if (reply[0] === "created")
    await opts.evidence?.append("approval", {
      event: "requested",
      action: state.action,
      planDigest: state.planDigest,
      device: state.device,
      serial: state.serial,
      required: state.required,
      principals: state.principals,
      expiresAt: state.expiresAt,
    });
  return state;
}

/**
 * One principal approves, typing the device serial as confirmation. Resolves with the new state (status
 * `approved` once enough distinct principals have approved); throws ApprovalRefused (recorded) otherwise.
 */
export async function approve(
  redis: RedisClient,
  jobId: string,
  input: ApprovalInput,
  opts: ApprovalOptions = {},
): Promise<ApprovalState> {
  checkPrincipal(input.principal);
  const current = await approvalState(redis, jobId);
  if (!current) throw noRequest(jobId);
  let principal = input.principal;
  let keyFingerprint = "";
  // A request that no longer waits is refused by the store itself with its state (below), signed or not.
  const open = current.status === "awaiting-approval" && !current.closed;
  try {
    if (!open) {
      // fall through to the store's own refusal
    } else if (!opts.verifier || !input.proof)
      throw new ApprovalProofRefused(
        "unsigned",
        "an approval counts only as a signature by a key registered in the fleet file (lunafleet approve <job> --key …); an unsigned one never counts",
      );
    else ({ principal, keyFingerprint } = await opts.verifier.verify(approvalStatement(current), input));
  } catch (err) {
    if (!(err instanceof ApprovalProofRefused)) throw err;
    const reply = (await runScript(
      redis,
      recordRefusal,
      [approvalKey(jobId)],
      [input.principal, err.code],
    )) as string[];
    const state = reply[0] === "refused" ? toState(reply[2]!) : current;
    await opts.evidence?.append(
      "approval",
      {
        event: "refused",
        principal: input.principal,
        reason: err.code,
        detail: err.message,
        ...(input.proof ? { keyFingerprint: input.proof.keyFingerprint } : {}),
        submittedBy: input.proof?.submittedBy ?? input.submittedBy,
        status: state.status,
      },
      input.proof?.submittedBy ?? input.submittedBy ?? input.principal,
    );
    throw new ApprovalRefused(jobId, err.code, state, `job ${jobId}: ${err.message}; not counted (recorded)`);
  }
  const proof = input.proof
    ? { ...input.proof, submittedBy: input.proof.submittedBy ?? principal }
    : undefined;
  const reply = (await runScript(
    redis,
    approveIfValid,
    [approvalKey(jobId)],
    [principal, input.confirmation, open && proof ? JSON.stringify(proof) : "", open ? keyFingerprint : ""],
  )) as string[];
  if (reply[0] === "missing") throw noRequest(jobId);
  if (reply[0] === "refused") {
    const reason = reply[1] as ApprovalRefusalReason;
    const state = toState(reply[2]!);
    await indexWaiting(redis, state);
    await opts.evidence?.append(
      "approval",
      { event: "refused", principal: input.principal, reason, status: state.status },
      input.proof?.submittedBy ?? input.submittedBy ?? input.principal,
    );
    throw new ApprovalRefused(jobId, reason, state, refusalMessage(jobId, input.principal, reason, state));
  }
  const state = toState(reply[1]!);
  await indexWaiting(redis, state);
  await opts.evidence?.append(
    "approval",
    {
      event: "approved",
      principal,
      // The signed statement and signature: an auditor checks them offline with ssh-keygen -Y verify.
      keyFingerprint,
      submittedBy: proof?.submittedBy,
      statement: proof?.statement,
      signature: proof?.signature,
      // A security key's assertion (its challenge is the statement's SHA-256): verifiable offline with the
      // credential's public key from its registration record (log webauthn-credentials).
      ...(proof?.webauthn ? { method: "webauthn", webauthn: proof.webauthn } : {}),
      confirmation: "matches the device serial",
      approvals: state.approvals.length,
      required: state.required,
      status: state.status,
    },
    principal,
  );
  return state;
}

/** One principal rejects the job: final, the waiting job stops before anything destructive. */
export async function reject(
  redis: RedisClient,
  jobId: string,
  input: { principal: string; reason: string },
  opts: ApprovalOptions = {},
): Promise<ApprovalState> {
  checkPrincipal(input.principal);
  const reason = input.reason.trim();
  if (reason.length === 0) throw new ApprovalError("a rejection needs a reason");
  const reply = (await runScript(
    redis,
    rejectIfAwaiting,
    [approvalKey(jobId)],
    [input.principal, reason.slice(0, 2000)],
  )) as string[];
  if (reply[0] === "missing") throw noRequest(jobId);
  if (reply[0] === "refused") {
    const why = reply[1] as ApprovalRefusalReason;
    const state = toState(reply[2]!);
    await indexWaiting(redis, state);
    await opts.evidence?.append(
      "approval",
      { event: "refused", principal: input.principal, reason: why, status: state.status },
      input.principal,
    );
    throw new ApprovalRefused(jobId, why, state, refusalMessage(jobId, input.principal, why, state));
  }
  const state = toState(reply[1]!);
  await indexWaiting(redis, state);
  await opts.evidence?.append(
    "approval",
    { event: "rejected", principal: input.principal, reason, status: state.status },
    input.principal,
  );
  return state;
}

/** The job's approval state, or null when it never asked. A due expiry is applied (and stored) first. */
export async function approvalState(redis: RedisClient, jobId: string): Promise<ApprovalState | null> {
  const reply = (await runScript(redis, readApprovalState, [approvalKey(jobId)], [])) as string[];
  if (reply[0] === "missing") return null;
  return toState(reply[1]!);
}

/**
 * The job ended with `outcome`: record it on its approval request (if it made one) and withdraw a request still
 * awaiting approval. Idempotent; the first outcome recorded stands.
 */
export async function closeApproval(
  redis: RedisClient,
  jobId: string,
  outcome: string,
  opts: ApprovalOptions = {},
): Promise<ApprovalState | null> {
  const reply = (await runScript(redis, closeWhenJobEnds, [approvalKey(jobId)], [outcome])) as string[];
  if (reply[0] === "missing") return null;
  const state = toState(reply[1]!);
  await indexWaiting(redis, state);
  if (state.status === "withdrawn" && state.closed?.outcome === outcome)
    await opts.evidence?.append("approval", {
      event: "withdrawn",
      jobOutcome: outcome,
      status: state.status,
    });
  return state;
}

/** Every request still awaiting approval, soonest deadline first (expired and closed ones are dropped from the index). */
export async function listWaitingApprovals(redis: RedisClient): Promise<ApprovalState[]> {
  const ids = await redis.zrange(WAITING_APPROVALS_KEY, "0", "-1");
  const out: ApprovalState[] = [];
  for (const id of ids) {
    const state = await approvalState(redis, id);
    if (state?.status === "awaiting-approval") out.push(state);
    else await redis.zrem(WAITING_APPROVALS_KEY, id);
  }
  return out.sort((a, b) => a.expiresAt.localeCompare(b.expiresAt));
}

/**
 * Keep the waiting index in step with a document just read or written. Separate from the document's own atomic
 * script on purpose: the index is another key (another Cluster slot), and a stale entry is harmless because every
 * listing re-reads the document.
 */
async function indexWaiting(redis: RedisClient, state: ApprovalState): Promise<void> {
  if (state.status === "awaiting-approval")
    await redis.zadd(WAITING_APPROVALS_KEY, String(Date.parse(state.expiresAt)), state.jobId);
  else await redis.zrem(WAITING_APPROVALS_KEY, state.jobId);
}

/** The approvals store the worker hands the engine (its ApprovalsPort): ask (idempotent) and read, by job id. */
export interface ApprovalsStore {
  request(jobId: string, req: ApprovalRequest): Promise<ApprovalState>;
  state(jobId: string): Promise<ApprovalState | null>;
}

export function approvalsStore(redis: RedisClient): ApprovalsStore {
  return {
    request: (jobId, req) => requestApproval(redis, jobId, req),
    state: (jobId) => approvalState(redis, jobId),
  };
}

/** @deprecated the old name of approvalsStore(). */
export const approvalsPort = approvalsStore;

function noRequest(jobId: string): NoApprovalRequest {
  return new NoApprovalRequest(
    `job ${jobId} has no approval request (wrong job id, or the job has not reached its preflight yet)`,
  );
}

function refusalMessage(
  jobId: string,
  principal: string,
  reason: ApprovalRefusalReason,
  state: ApprovalState,
): string {
  switch (reason) {
    case "wrong-confirmation":
      return `job ${jobId}: ${principal}'s confirmation does not match the serial of ${state.device}; not counted (recorded)`;
    case "duplicate-principal":
      return `job ${jobId}: ${principal} has already approved; the same principal does not count twice (${state.approvals.length}/${state.required} distinct approvals)`;
    case "principal-not-allowed":
      return `job ${jobId}: ${principal} is not on the fleet's approvals allow-list; not counted (recorded)`;
    case "not-awaiting-approval":
      return state.closed
        ? `job ${jobId} is ${state.closed.outcome} (its approval request is ${state.status}); it no longer waits for approval, nothing changed (recorded)`
        : `job ${jobId} is ${state.status}, not awaiting approval; nothing changed (recorded)`;
    case "duplicate-key":
      return `job ${jobId}: ${principal}'s key has already approved; one key counts once (recorded)`;
    case "self-approval":
      return `job ${jobId}: ${principal} requested this job; the requester's approval never counts (recorded)`;
    default:
      return `job ${jobId}: ${principal}'s approval refused (${reason}); not counted (recorded)`;
  }
}
