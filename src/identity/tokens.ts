// API tokens for automation (`lunafleet token create --name … --role … --expires …`): a random secret printed once
// and stored only as its SHA-256 (the secret is 256 random bits, so a plain hash cannot be reversed by guessing).
// The token names its record (`lft_<id>_<secret>`), so a check is one lookup and a constant-time comparison.
// Every token expires (at most a year); a revoked or expired token is refused and stays listed for the record.
//
// Key: lunafleet:api-tokens  hash  <id> -> JSON TokenRecord (one key: the whole set is read and changed atomically).
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { Role } from "../config/identity-schema.ts";
import { type LuaScript, luaScript, type RedisClient, runScript } from "../redis/client.ts";
import { ROLES } from "./roles.ts";

export const TOKENS_KEY = "lunafleet:api-tokens";
const TOKEN_RE = /^lft_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const MAX_LIFETIME_MS = 366 * 86_400_000;

export interface TokenRecord {
  id: string;
  name: string;
  role: Role;
  /** sha256 hex of the secret part. */
  hash: string;
  createdAt: string;
  createdBy: string;
  expiresAt: string;
  revokedAt?: string;
  revokedBy?: string;
}

/** What `token list` shows: never the hash. */
export type TokenInfo = Omit<TokenRecord, "hash"> & { status: "active" | "expired" | "revoked" };

export class TokenError extends Error {
  override name = "TokenError";
}

// KEYS: tokens hash. ARGV: id, record JSON, name, nowMs. Refuses while an active token already has this name.
const createTokenIfNameFree: LuaScript = luaScript(
  "createTokenIfNameFree",
  1,
  `local all = redis.call('HGETALL', KEYS[1])
for i = 2, #all, 2 do
  local t = cjson.decode(all[i])
  if t.name == ARGV[3] and t.revokedAt == nil and tonumber(t.expiresMs) > tonumber(ARGV[4]) then
    return { 'name-taken', t.id }
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return { 'created', ARGV[1] }`,
);

// KEYS: tokens hash. ARGV: name or id, who, iso time. Revokes every active token of that name (or that id).
const revokeActiveTokens: LuaScript = luaScript(
  "revokeActiveTokens",
  1,
  `local all = redis.call('HGETALL', KEYS[1])
local n = 0
for i = 1, #all, 2 do
  local t = cjson.decode(all[i + 1])
  if (t.name == ARGV[1] or t.id == ARGV[1]) and t.revokedAt == nil then
    t.revokedAt = ARGV[3]
    t.revokedBy = ARGV[2]
    redis.call('HSET', KEYS[1], all[i], cjson.encode(t))
    n = n + 1
  end
end
return n`,
);

const sha256 = (s: string) => createHash("sha256").update(s, "utf8").digest("hex");

/** `90d`, `12h`, `30m`, or an ISO date: when a token expires. */
export function parseExpiry(text: string, now = Date.now()): number {
  const rel = /^(\d+)([mhd])$/.exec(text.trim());
  const at = rel
    ? now + Number(rel[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[rel[2] as "m" | "h" | "d"]
    : Date.parse(text);
  if (!Number.isFinite(at)) throw new TokenError(`--expires '${text}': give 90d, 12h, 30m or an ISO date`);
  if (at <= now) throw new TokenError(`--expires '${text}' is in the past`);
  if (at - now > MAX_LIFETIME_MS) throw new TokenError(`--expires '${text}': a token lives at most 366 days`);
  return at;
}

export async function createToken(
  redis: RedisClient,
  req: { name: string; role: Role; expiresAt: number; createdBy: string },
  now = Date.now(),
): Promise<{ token: string; record: TokenInfo }> {
  if (!NAME_RE.test(req.name)) throw new TokenError("a token name is 1-63 letters, digits, '.', '_' or '-'");
  if (!ROLES.includes(req.role)) throw new TokenError(`unknown role '${req.role}' (${ROLES.join(", ")})`);
  if (!(req.expiresAt > now) || req.expiresAt - now > MAX_LIFETIME_MS)
    throw new TokenError("a token must expire, within 366 days");
  const id = randomBytes(8).toString("hex");
  const secret = randomBytes(32).toString("base64url");
  const record: TokenRecord & { expiresMs: number } = {
    id,
    name: req.name,
    role: req.role,
    hash: sha256(secret),
    createdAt: new Date(now).toISOString(),
    createdBy: req.createdBy,
    expiresAt: new Date(req.expiresAt).toISOString(),
    expiresMs: req.expiresAt,
  };
  const reply = (await runScript(
    redis,
    createTokenIfNameFree,
    [TOKENS_KEY],
    [id, JSON.stringify(record), req.name, now],
  )) as [string, string];
  if (reply[0] !== "created")
    throw new TokenError(`an active token named '${req.name}' exists (id ${reply[1]}); revoke it first`);
  return { token: `lft_${id}_${secret}`, record: info(record, now) };
}

export async function listTokens(redis: RedisClient, now = Date.now()): Promise<TokenInfo[]> {
  const all = await redis.hgetall(TOKENS_KEY);
  return Object.values(all)
    .map((raw) => info(JSON.parse(raw) as TokenRecord, now))
    .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
}

/** Revoke the active tokens with this name (or id); returns how many. */
export async function revokeToken(redis: RedisClient, nameOrId: string, by: string): Promise<number> {
  return (await runScript(
    redis,
    revokeActiveTokens,
    [TOKENS_KEY],
    [nameOrId, by, new Date().toISOString()],
  )) as number;
}

export type TokenCheck = { ok: true; record: TokenInfo } | { ok: false; reason: string };

/** Check a presented token. The reason never contains the token. */
export async function checkToken(
  redis: RedisClient,
  presented: string,
  now = Date.now(),
): Promise<TokenCheck> {
  const m = TOKEN_RE.exec(presented);
  if (!m) return { ok: false, reason: "not a lunafleet API token" };
  const raw = await redis.hget(TOKENS_KEY, m[1]!);
  if (!raw) return { ok: false, reason: "unknown API token" };
  const record = JSON.parse(raw) as TokenRecord;
  const expected = Buffer.from(record.hash, "hex");
  const given = Buffer.from(sha256(m[2]!), "hex");
  if (expected.length !== given.length || !timingSafeEqual(expected, given))
    return { ok: false, reason: `wrong secret for API token ${record.id}` };
  const i = info(record, now);
  if (i.status !== "active") return { ok: false, reason: `API token '${record.name}' is ${i.status}` };
  return { ok: true, record: i };
}

function info(r: TokenRecord & { expiresMs?: number }, now: number): TokenInfo {
  const { hash: _hash, expiresMs: _ms, ...rest } = r;
  const status = r.revokedAt ? "revoked" : Date.parse(r.expiresAt) <= now ? "expired" : "active";
  return { ...rest, status };
}
