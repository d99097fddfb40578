// WebAuthn credentials (security keys, passkeys) in Redis, and the approver-key registry built from them.
//
// Registering a credential is authorized twice, so that nobody — not an admin, not a stolen console session — can
// give a principal a credential that is not theirs:
//   1. the principal signs in (OIDC) and their browser makes the credential: the daemon checks the attestation against
//      a challenge it issued to that principal (begin → finish), then holds it as PENDING with the statement to sign;
//   2. the principal signs that `webauthn-credential` statement with one of THEIR approval keys from the fleet file
//      (`ssh-keygen -Y sign -n lunafleet-approval`), and hands in the signature (complete): the credential is stored
//      only if ApproverKeys accepts it — the same check that runs whenever approvals are counted, so the stored record
//      stays a claim that a key of the reviewed fleet file must vouch for every time.
// Revoking (the owner or an admin) removes the record: approvals it made stop counting at the worker's next check.
//
// Keys:
//   lunafleet:webauthn:credentials            hash credential id -> WebAuthnCredentialRecord JSON
//   lunafleet:webauthn:begin:{<principal>}    the registration challenge issued to a principal (5 minutes)
//   lunafleet:webauthn:pending:{<id>}         an attested credential awaiting its owner's SSH signature (30 minutes)
import { randomBytes } from "node:crypto";
import type { Fleet } from "../config/schema.ts";
import { type LuaScript, luaScript, type RedisClient, runScript } from "../redis/client.ts";
import { ApproverKeys } from "../signing/approval-check.ts";
import { relyingPartyOf, type WebAuthnCredentialRecord } from "../signing/webauthn.ts";

export const CREDENTIALS_KEY = "lunafleet:webauthn:credentials";
const BEGIN_TTL_SECONDS = 300;
const PENDING_TTL_SECONDS = 1800;

export function beginKey(principal: string): string {
  return `lunafleet:webauthn:begin:{${principal.toLowerCase()}}`;
}

export function pendingKey(id: string): string {
  return `lunafleet:webauthn:pending:{${id}}`;
}

/** An attested credential waiting for its owner's signature over `statement`. */
export interface PendingCredential {
  id: string;
  principal: string;
  credentialId: string;
  publicKey: string;
  counter: number;
  rpId: string;
  aaguid: string;
  transports: string[];
  label: string;
  statement: string;
  createdAt: string;
  expiresAt: string;
}

export class CredentialError extends Error {
  override name = "CredentialError";
  constructor(
    message: string,
    readonly status: 400 | 403 | 404 | 409 = 400,
  ) {
    super(message);
  }
}

/** Remember the challenge issued to `principal` for a new credential (one at a time; a new begin replaces it). */
export async function rememberChallenge(
  redis: RedisClient,
  principal: string,
  challenge: string,
): Promise<void> {
  await redis.set(beginKey(principal), challenge, "EX", BEGIN_TTL_SECONDS);
}

/** The challenge issued to `principal`, consumed (a registration response is checked against it once). */
export async function takeChallenge(redis: RedisClient, principal: string): Promise<string | null> {
  return redis.getdel(beginKey(principal));
}

export async function savePending(
  redis: RedisClient,
  pending: Omit<PendingCredential, "id" | "createdAt" | "expiresAt">,
): Promise<PendingCredential> {
  const now = Date.now();
  const full: PendingCredential = {
    ...pending,
    id: randomBytes(12).toString("base64url"),
    createdAt: new Date(now).toISOString(),
    expiresAt: new Date(now + PENDING_TTL_SECONDS * 1000).toISOString(),
  };
  await redis.set(pendingKey(full.id), JSON.stringify(full), "EX", PENDING_TTL_SECONDS);
  return full;
}

export async function readPending(redis: RedisClient, id: string): Promise<PendingCredential | null> {
  if (!/^[A-Za-z0-9_-]{16}$/.test(id)) return null;
  const raw = await redis.get(pendingKey(id));
  return raw ? (JSON.parse(raw) as PendingCredential) : null;
}

// KEYS: credentials hash, pending key. ARGV: credential id, record JSON.
// Stores a new credential and consumes its pending entry in one step; an id already registered is refused (one
// credential cannot count under two names, nor be registered twice).
const storeNewCredential: LuaScript = luaScript(
  "storeNewWebAuthnCredential",
  1,
  `if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1`,
);

/** Store a credential whose registration signature the caller has checked (completeRegistration does). */
export async function storeCredential(
  redis: RedisClient,
  record: WebAuthnCredentialRecord,
  pendingId: string,
): Promise<void> {
  const stored = (await runScript(
    redis,
    storeNewCredential,
    [CREDENTIALS_KEY],
    [record.credentialId, JSON.stringify(record)],
  )) as number;
  // The pending entry is another key (another Cluster slot): removed after, harmless if it lingers to its TTL.
  await redis.del(pendingKey(pendingId));
  if (stored !== 1) throw new CredentialError(`credential ${record.credentialId} is already registered`, 409);
}

/** Every stored credential (claims: ApproverKeys decides which count). */
export async function listCredentials(redis: RedisClient): Promise<WebAuthnCredentialRecord[]> {
  const raw = await redis.hgetall(CREDENTIALS_KEY);
  return Object.values(raw).flatMap((json) => {
    try {
      return [JSON.parse(json) as WebAuthnCredentialRecord];
    } catch {
      return [];
    }
  });
}

export async function getCredential(
  redis: RedisClient,
  credentialId: string,
): Promise<WebAuthnCredentialRecord | null> {
  const raw = await redis.hget(CREDENTIALS_KEY, credentialId);
  return raw ? (JSON.parse(raw) as WebAuthnCredentialRecord) : null;
}

export async function removeCredential(redis: RedisClient, credentialId: string): Promise<boolean> {
  return (await redis.hdel(CREDENTIALS_KEY, credentialId)) === 1;
}

// KEYS: credentials hash. ARGV: credential id, new counter. Raises the stored signature counter, never lowers it.
const raiseCounter: LuaScript = luaScript(
  "raiseWebAuthnCounter",
  1,
  `local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local rec = cjson.decode(raw)
local n = tonumber(ARGV[2])
if n > (tonumber(rec.counter) or 0) then
  rec.counter = n
  redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(rec))
  return 1
end
return 0`,
);

export async function recordCounter(
  redis: RedisClient,
  credentialId: string,
  counter: number,
): Promise<void> {
  if (counter > 0) await runScript(redis, raiseCounter, [CREDENTIALS_KEY], [credentialId, counter]);
}

/**
 * The approver-key registry of a fleet: its SSH keys and the WebAuthn credentials they vouch for.
 * `checkCounters`: true when an approval is handed in, false when the worker re-verifies counted ones.
 */
export async function loadApproverKeys(
  redis: RedisClient,
  fleet: Pick<Fleet, "identity" | "twin" | "console">,
  opts: { checkCounters: boolean },
): Promise<ApproverKeys> {
  return new ApproverKeys(fleet.identity, {
    credentials: await listCredentials(redis),
    rp: relyingPartyOf(fleet),
    checkCounters: opts.checkCounters,
  });
}
