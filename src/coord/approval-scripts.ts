// The approvals store's Redis keys and its Lua scripts, one atomic script per transition, each named for what it
// guarantees (BullMQ's rule: a crash or a race never leaves a half transition; two approvers at once are serialized by
// Redis). The rules they enforce are listed at the top of approvals.ts.
import { type LuaScript, luaScript } from "../redis/client.ts";

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
export const requestApprovalOnce: LuaScript = luaScript(
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
export const approveIfValid: LuaScript = luaScript(
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
export const rejectIfAwaiting: LuaScript = luaScript(
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
export const readApprovalState: LuaScript = luaScript(
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
export const closeWhenJobEnds: LuaScript = luaScript(
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
export const recordRefusal: LuaScript = luaScript(
  "recordApprovalRefusal",
  1,
  `${LUA_PRELUDE}
local raw = redis.call('GET', KEYS[1])
if not raw then return { 'missing' } end
local doc = cjson.decode(raw)
return refuse(KEYS[1], doc, ARGV[1], nowMs(), ARGV[2])`,
);
