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
// Keys (the approval document's hash tag = job id, the same slot as the job's checkpoints):
//   lunafleet:approval:{<jobId>}    JSON document (see ApprovalState), kept 30 days after its deadline.
//   lunafleet:approvals:waiting     sorted set of job ids awaiting approval, by deadline (an index: each listed
//                                   document is re-read, and entries that no longer wait are dropped)

import { NonRetryable } from "../errors/non-retryable.ts";
import { type LuaScript, luaScript, type RedisClient, runScript } from "../redis/client.ts";

export type ApprovalStatus = "awaiting-approval" | "approved" | "rejected" | "expired" | "withdrawn";

export interface ApprovalEntry {
  principal: string;
  /** ISO time (Redis server clock). */
  at: string;
  /** What the principal typed; an approval is only counted when it equals the device serial. */
  confirmation: string;
  /** The signature that made it count (src/coord/signed-approvals.ts), kept so the worker re-verifies it. */
  proof?: ApprovalProof;
}

/**
 * A signed approval as stored: the statement, the signature (armored SSH, or a WebAuthn assertion's with its
 * authenticator and client data), the key (`webauthn:<credential id>` for a security key), who submitted it.
 */
export interface ApprovalProof {
  method: "sshsig" | "webauthn";
  keyFingerprint: string;
  statement: string;
  signature: string;
  webauthn?: { authenticatorData: string; clientDataJSON: string; userHandle?: string | undefined };
  submittedBy: string;
}

export interface ApprovalRefusal {
  principal: string;
  at: string;
  reason: ApprovalRefusalReason;
}

export type ApprovalRefusalReason =
  | "wrong-confirmation"
  | "duplicate-principal"
  | "principal-not-allowed"
  | "not-awaiting-approval"
  // Signed approvals (src/signing/approval-check.ts codes):
  | "duplicate-key"
  | "self-approval"
  | "unsigned"
  | "unregistered-key"
  | "key-of-another-principal"
  | "bad-signature"
  | "statement-mismatch"
  | "expired";

export interface ApprovalState {
  jobId: string;
  /** The runbook of the job ("deprovision", "ntls-cert-sync"); null for requests made before it was recorded. */
  runbook: string | null;
  /** What the job will do once approved, in an operator's words (shown by `lunafleet approvals`). */
  action: string | null;
  /** SHA-256 of the job's admitted plan (engine/admit.ts): part of what an approver signs. */
  planDigest: string | null;
  /** Who asked for the job: their approval never counts. */
  requester: string | null;
  device: string;
  /** The device serial the typed confirmation must equal (not a secret: it is printed by `hsm show`). */
  serial: string;
  required: number;
  /** The allow-list in force when the request was made; null = any principal. */
  principals: string[] | null;
  status: ApprovalStatus;
  requestedAt: string;
  expiresAt: string;
  /** Valid approvals, by distinct principals, in the order they were given. */
  approvals: ApprovalEntry[];
  approvedAt?: string;
  rejection?: { principal: string; at: string; reason: string };
  /** Attempts that did not count, and why (wrong serial, same principal again, not on the allow-list…). */
  refusals: ApprovalRefusal[];
  /** Set when the job ended: its outcome (src/engine/outcome.ts words) and when. */
  closed?: { outcome: string; at: string };
}

export interface ApprovalRequest {
  runbook?: string;
  /** The job's requester (its authenticated principal): never counted as an approver. */
  requester?: string;
  /** What the job will do once approved ("zeroize hsm-c1 (serial 700301), delete its Azure resource …"). */
  action?: string;
  planDigest?: string;
  device: string;
  serial: string;
  required: number;
  /** Minutes from the request to its deadline; fractions are accepted (tests). */
  expiresMinutes: number;
  principals?: string[] | undefined;
}

/** Where approval events are recorded: the job's evidence log (src/evidence EvidenceLog satisfies it). */
export interface ApprovalEvidence {
  append(kind: "approval", data: unknown, actor?: string): Promise<unknown>;
}

export class ApprovalError extends NonRetryable {
  override name = "ApprovalError";
}

/** There is no approval request for this job (it has not reached preflight, or the id is wrong). */
export class NoApprovalRequest extends ApprovalError {
  override name = "NoApprovalRequest";
}

/** An approve/reject that did not count; the refusal is recorded on the request. */
export class ApprovalRefused extends ApprovalError {
  override name = "ApprovalRefused";
  constructor(
    readonly jobId: string,
    readonly reason: ApprovalRefusalReason,
    readonly state: ApprovalState,
    message: string,
  ) {
    super(message);
  }
}

/** The job asked again with a different device or serial than its standing request. */
export class ApprovalRequestConflict extends ApprovalError {
  override name = "ApprovalRequestConflict";
}

const PREFIX = "lunafleet";
/** Job ids awaiting approval, scored by deadline (ms). */
export const WAITING_APPROVALS_KEY = `${PREFIX}:approvals:waiting`;
/** Pub/sub channel a new request's job id is published on (the notifier tells approvers at once; src/notify). */
export const APPROVAL_REQUESTED_CHANNEL = `${PREFIX}:approvals:requested`;
const KEEP_AFTER_DEADLINE_SECONDS = 30 * 86_400;
const MAX_REFUSALS = 100;

export function approvalKey(jobId: string): string {
  return `${PREFIX}:approval:{${jobId}}`;
}

// Shared Lua: server time in ms, lazy expiry, empty-table-safe encoding.
const LUA_PRELUDE = `
local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function expireIfDue(doc, now)
  if (doc.status == 'awaiting-approval' or doc.status == 'approved') and now >= doc.expiresAt then
    doc.status = 'expired'
    doc.expiredAt = doc.expiresAt
    return true
  end
  return false
end
local function save(key, doc)
  redis.call('SET', key, cjson.encode(doc))
  local ttlMs = doc.expiresAt - nowMs() + tonumber(${KEEP_AFTER_DEADLINE_SECONDS}) * 1000
  if ttlMs < 1000 then ttlMs = 1000 end
  redis.call('PEXPIRE', key, ttlMs)
end
local function refuse(key, doc, principal, now, reason)
  if type(doc.refusals) ~= 'table' or doc.refusals[1] == nil then doc.refusals = {} end
  if #doc.refusals < ${MAX_REFUSALS} then
    table.insert(doc.refusals, { principal = principal, at = now, reason = reason })
  end
  save(key, doc)
  return { 'refused', reason, cjson.encode(doc) }
end
local function norm(p) return string.lower(p) end
-- Approve and reject both act only on a request still awaiting approval (after a due expiry) and, with an allow-list,
-- only for a principal on it. Returns the recorded refusal to send back, or nil when the principal may act.
local function refuseUnlessOpenTo(key, doc, principal, now)
  if expireIfDue(doc, now) then save(key, doc) end
  if doc.status ~= 'awaiting-approval' or doc.closedOutcome then return refuse(key, doc, principal, now, 'not-awaiting-approval') end
  if type(doc.principals) == 'table' then
    local allowed = false
    for _, p in ipairs(doc.principals) do if norm(p) == norm(principal) then allowed = true end end
    if not allowed then return refuse(key, doc, principal, now, 'principal-not-allowed') end
  end
  return nil
end
`;

// KEYS: approval. ARGV: jobId, device, serial, required, expiresMs, principals JSON ('null' = any), runbook, action,
// planDigest ('' = none).
// Creates the request if absent; a standing request for the same device and serial is returned unchanged (a resumed
// job asks again). Returns {'created'|'existing', doc} or {'conflict', doc}.
const requestApprovalOnce: LuaScript = luaScript(
  "requestApprovalOnce",
  1,
  `${LUA_PRELUDE}
local now = nowMs()
local raw = redis.call('GET', KEYS[1])
if raw then
  local doc = cjson.decode(raw)
  if doc.device ~= ARGV[2] or doc.serial ~= ARGV[3] then return { 'conflict', raw } end
  if expireIfDue(doc, now) then save(KEYS[1], doc) end
  return { 'existing', cjson.encode(doc) }
end
local doc = {
  jobId = ARGV[1], device = ARGV[2], serial = ARGV[3], required = tonumber(ARGV[4]),
  principals = cjson.decode(ARGV[6]), status = 'awaiting-approval',
  requestedAt = now, expiresAt = now + tonumber(ARGV[5]), approvals = {}, refusals = {},
  runbook = ARGV[7], action = ARGV[8], planDigest = ARGV[9], requester = ARGV[10]
}
save(KEYS[1], doc)
return { 'created', cjson.encode(doc) }`,
);

// KEYS: approval. ARGV: principal, confirmation, proof JSON ('' = none), key fingerprint ('' = none).
// The requester never counts; neither does a principal or a key that already counted (the signature itself was
// checked before, src/coord/signed-approvals.ts, and is stored with the approval for the worker to check again).
// Returns {'missing'} | {'approved'|'counted', doc} | {'refused', reason, doc}.
const approveIfValid: LuaScript = luaScript(
  "approveIfValid",
  1,
  `${LUA_PRELUDE}
local raw = redis.call('GET', KEYS[1])
if not raw then return { 'missing' } end
local doc = cjson.decode(raw)
local now = nowMs()
local principal = ARGV[1]
local refusal = refuseUnlessOpenTo(KEYS[1], doc, principal, now)
if refusal then return refusal end
-- The store never counts an unsigned approval, whoever calls it.
if ARGV[3] == '' then return refuse(KEYS[1], doc, principal, now, 'unsigned') end
if ARGV[2] ~= doc.serial then return refuse(KEYS[1], doc, principal, now, 'wrong-confirmation') end
if type(doc.requester) == 'string' and doc.requester ~= '' and norm(doc.requester) == norm(principal) then
  return refuse(KEYS[1], doc, principal, now, 'self-approval')
end
if type(doc.approvals) ~= 'table' or doc.approvals[1] == nil then doc.approvals = {} end
for _, a in ipairs(doc.approvals) do
  if norm(a.principal) == norm(principal) then return refuse(KEYS[1], doc, principal, now, 'duplicate-principal') end
  if ARGV[4] ~= '' and a.keyFingerprint == ARGV[4] then return refuse(KEYS[1], doc, principal, now, 'duplicate-key') end
end
local entry = { principal = principal, at = now, confirmation = ARGV[2] }
if ARGV[3] ~= '' then
  entry.proof = cjson.decode(ARGV[3])
  entry.keyFingerprint = ARGV[4]
end
table.insert(doc.approvals, entry)
local outcome = 'counted'
if #doc.approvals >= doc.required then
  doc.status = 'approved'
  doc.approvedAt = now
  outcome = 'approved'
end
save(KEYS[1], doc)
return { outcome, cjson.encode(doc) }`,
);

// KEYS: approval. ARGV: principal, reason. Returns {'missing'} | {'rejected', doc} | {'refused', reason, doc}.
const rejectIfAwaiting: LuaScript = luaScript(
  "rejectIfAwaiting",
  1,
  `${LUA_PRELUDE}
local raw = redis.call('GET', KEYS[1])
if not raw then return { 'missing' } end
local doc = cjson.decode(raw)
local now = nowMs()
local principal = ARGV[1]
local refusal = refuseUnlessOpenTo(KEYS[1], doc, principal, now)
if refusal then return refusal end
doc.status = 'rejected'
doc.rejection = { principal = principal, at = now, reason = ARGV[2] }
save(KEYS[1], doc)
return { 'rejected', cjson.encode(doc) }`,
);

// KEYS: approval. Returns {'missing'} | {'state', doc}; applies a due expiry (so every reader sees the same status).
const readApprovalState: LuaScript = luaScript(
  "readApprovalState",
  1,
  `${LUA_PRELUDE}
local raw = redis.call('GET', KEYS[1])
if not raw then return { 'missing' } end
local doc = cjson.decode(raw)
if expireIfDue(doc, nowMs()) then save(KEYS[1], doc) end
return { 'state', cjson.encode(doc) }`,
);

// KEYS: approval. ARGV: the job's outcome. The job has ended: a request still awaiting approval is withdrawn (nobody
// can approve a job that will not act on it); whatever its status, the outcome is recorded once.
// Returns {'missing'} | {'closed', doc}.
const closeWhenJobEnds: LuaScript = luaScript(
  "closeWhenJobEnds",
  1,
  `${LUA_PRELUDE}
local raw = redis.call('GET', KEYS[1])
if not raw then return { 'missing' } end
local doc = cjson.decode(raw)
local now = nowMs()
expireIfDue(doc, now)
if not doc.closedOutcome then
  doc.closedOutcome = ARGV[1]
  doc.closedAt = now
  if doc.status == 'awaiting-approval' then doc.status = 'withdrawn' end
end
save(KEYS[1], doc)
return { 'closed', cjson.encode(doc) }`,
);

// KEYS: approval. ARGV: principal, reason. A refusal decided before the count (the signature check): recorded on the
// request like the others. Returns {'missing'} | {'refused', reason, doc}.
const recordRefusal: LuaScript = luaScript(
  "recordApprovalRefusal",
  1,
  `${LUA_PRELUDE}
local raw = redis.call('GET', KEYS[1])
if not raw then return { 'missing' } end
local doc = cjson.decode(raw)
return refuse(KEYS[1], doc, ARGV[1], nowMs(), ARGV[2])`,
);

const PRINCIPAL_RE = /^[A-Za-z0-9][A-Za-z0-9._@:+-]{0,127}$/;

function checkPrincipal(principal: string): void {
  if (!PRINCIPAL_RE.test(principal))
    throw new ApprovalError(
      `principal ${JSON.stringify(principal)} is not a valid name (letters, digits, . _ @ : + -, up to 128)`,
    );
}

export interface ApprovalOptions {
  /** The job's evidence log: every approval event is appended there as an `approval` record. */
  evidence?: ApprovalEvidence;
  /**
   * Checks the approver's proof (a signature over the statement, src/coord/signed-approvals.ts) before anything is
   * counted. Required: without one every approval is refused as unsigned (a principal's word never counts).
   */
  verifier?: ApprovalVerifier;
}

/** Exactly what an approver approves: the job, what it will do, to which device, under which plan, until when. */
export interface ApprovalStatement {
  jobId: string;
  runbook: string | null;
  action: string | null;
  device: string;
  serial: string;
  planDigest: string | null;
  requester: string | null;
  expiresAt: string;
}

/** What an approver hands in: who, the typed confirmation, and (for a verifier) the proof over the statement. */
export interface ApprovalInput {
  principal: string;
  confirmation: string;
  /** The authenticated principal who handed it in (the record's actor; a signed one names the key's owner too). */
  submittedBy?: string;
  /** The signed approval: statement, armored SSH signature, key fingerprint (checked by the verifier). */
  proof?: Omit<ApprovalProof, "submittedBy"> & { submittedBy?: string };
}

/** A verifier's refusal: the code is recorded on the request and in the evidence. */
export class ApprovalProofRefused extends ApprovalError {
  override name = "ApprovalProofRefused";
  constructor(
    readonly code: ApprovalRefusalReason,
    message: string,
  ) {
    super(message);
  }
}

export interface ApprovalVerifier {
  /**
   * Resolve with the principal the proof counts for when `input.proof` proves it approved exactly `statement`;
   * throw ApprovalProofRefused otherwise.
   */
  verify(
    statement: ApprovalStatement,
    input: ApprovalInput,
  ): Promise<{ principal: string; keyFingerprint: string }>;
}

export function approvalStatement(state: ApprovalState): ApprovalStatement {
  return {
    jobId: state.jobId,
    runbook: state.runbook,
    action: state.action,
    device: state.device,
    serial: state.serial,
    planDigest: state.planDigest,
    requester: state.requester,
    expiresAt: state.expiresAt,
  };
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

interface RawDoc {
  jobId: string;
  runbook?: string;
  action?: string;
  planDigest?: string;
  requester?: string;
  closedOutcome?: string;
  closedAt?: number;
  device: string;
  serial: string;
  required: number;
  principals: unknown;
  status: ApprovalStatus;
  requestedAt: number;
  expiresAt: number;
  approvedAt?: number;
  approvals: unknown;
  refusals: unknown;
  rejection?: { principal: string; at: number; reason: string };
}

/** cjson encodes an empty Lua table as `{}`: lists are normalized here. */
function toState(json: string): ApprovalState {
  const d = JSON.parse(json) as RawDoc;
  const list = <T>(v: unknown): T[] => (Array.isArray(v) ? (v as T[]) : []);
  const iso = (ms: number) => new Date(ms).toISOString();
  const text = (v: string | undefined) => (typeof v === "string" && v !== "" ? v : null);
  const state: ApprovalState = {
    jobId: d.jobId,
    runbook: text(d.runbook),
    action: text(d.action),
    planDigest: text(d.planDigest),
    requester: text(d.requester),
    device: d.device,
    serial: d.serial,
    required: d.required,
    principals: Array.isArray(d.principals) ? (d.principals as string[]) : null,
    status: d.status,
    requestedAt: iso(d.requestedAt),
    expiresAt: iso(d.expiresAt),
    approvals: list<{ principal: string; at: number; confirmation: string; proof?: ApprovalProof }>(
      d.approvals,
    ).map((a) => ({
      principal: a.principal,
      at: iso(a.at),
      confirmation: a.confirmation,
      ...(a.proof ? { proof: a.proof } : {}),
    })),
    refusals: list<{ principal: string; at: number; reason: ApprovalRefusalReason }>(d.refusals).map((r) => ({
      principal: r.principal,
      at: iso(r.at),
      reason: r.reason,
    })),
  };
  if (d.approvedAt !== undefined) state.approvedAt = iso(d.approvedAt);
  if (d.closedOutcome !== undefined)
    state.closed = { outcome: d.closedOutcome, at: iso(d.closedAt ?? d.requestedAt) };
  if (d.rejection)
    state.rejection = {
      principal: d.rejection.principal,
      at: iso(d.rejection.at),
      reason: d.rejection.reason,
    };
  return state;
}
