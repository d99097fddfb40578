// Authenticating an API request: `Authorization: Bearer <token>`, an API token (`lft_…`) or an OIDC access/ID token
// from the fleet's identity provider. A presented credential that fails is counted per client address in Redis
// (shared by every daemon on it) and recorded as evidence (log `auth:<UTC day>`: who tried from where and why it
// failed, never the credential); past identity.authFailures.max in the window the address is refused outright (429)
// until the window ends, and that is recorded once.
import type { IdentityConfig } from "../config/identity-schema.ts";
import { EvidenceLog } from "../evidence/log.ts";
import { type EvidenceSigner, sealEvidence } from "../evidence/signing.ts";
import { type LuaScript, luaScript, type RedisClient, runScript } from "../redis/client.ts";
import { OidcVerifier } from "./oidc.ts";
import { type Principal, principalFromClaims, principalFromToken } from "./principal.ts";
import { checkToken } from "./tokens.ts";

export type AuthResult =
  | { ok: true; principal: Principal }
  | { ok: false; status: 401 | 429; reason: string; retryAfterSeconds?: number };

// KEYS: counter. ARGV: window ms. The count of failures in the current window (first failure starts it).
const countFailureInWindow: LuaScript = luaScript(
  "countFailureInWindow",
  1,
  `local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return { n, redis.call('PTTL', KEYS[1]) }`,
);

function authFailureKey(address: string): string {
  return `lunafleet:auth-failures:{${address}}`;
}

export function authEvidenceJobId(at = new Date()): string {
  return `auth:${at.toISOString().slice(0, 10)}`;
}

export interface AuthenticatorOptions {
  redis: RedisClient;
  identity: IdentityConfig;
  /** Where evidence files live. */
  dataDir: string;
  /** The clock token expiry is judged by (tests); default the real time. */
  now?: () => Date;
  /** Errors while recording (never fatal to the refusal itself). */
  onRecordError?: (err: Error) => void;
  /** Seals each record of the day's log (an intermediate seal: the day's log keeps growing). */
  signer?: EvidenceSigner | undefined;
}

export class Authenticator {
  readonly #opts: AuthenticatorOptions;
  readonly #oidc: OidcVerifier | undefined;

  constructor(opts: AuthenticatorOptions) {
    this.#opts = opts;
    this.#oidc = opts.identity.oidc
      ? new OidcVerifier(opts.identity.oidc, opts.now ? { now: opts.now } : {})
      : undefined;
  }

  async authenticate(authorization: string | undefined, clientAddress: string): Promise<AuthResult> {
    const limit = this.#opts.identity.authFailures;
    const key = authFailureKey(clientAddress);
    // An address over its budget is refused before its credential is even looked at.
    const [count, ttl] = await Promise.all([this.#opts.redis.get(key), this.#opts.redis.pttl(key)]);
    if (Number(count ?? 0) >= limit.max)
      return {
        ok: false,
        status: 429,
        reason: "too many failed authentications from this address; try later",
        retryAfterSeconds: Math.max(1, Math.ceil(ttl / 1000)),
      };
    if (!authorization)
      return { ok: false, status: 401, reason: "authentication required (Authorization: Bearer …)" };
    const m = /^Bearer ([A-Za-z0-9._~+/=-]+)$/.exec(authorization);
    if (!m)
      return this.#fail(clientAddress, "unknown", "malformed Authorization header (expected Bearer <token>)");
    const token = m[1]!;
    if (token.startsWith("lft_")) {
      const check = await checkToken(this.#opts.redis, token);
      if (!check.ok) return this.#fail(clientAddress, "token", check.reason);
      return { ok: true, principal: principalFromToken(check.record.name, check.record.role) };
    }
    if (!this.#oidc)
      return this.#fail(clientAddress, "oidc", "no identity provider is configured (identity.oidc)");
    const check = await this.#oidc.verify(token);
    if (!check.ok) return this.#fail(clientAddress, "oidc", check.reason);
    try {
      return { ok: true, principal: principalFromClaims(check.claims, this.#opts.identity) };
    } catch (err) {
      return this.#fail(clientAddress, "oidc", (err as Error).message);
    }
  }

  async #fail(address: string, method: string, reason: string): Promise<AuthResult> {
    const limit = this.#opts.identity.authFailures;
    const [n] = (await runScript(
      this.#opts.redis,
      countFailureInWindow,
      [authFailureKey(address)],
      [limit.windowSeconds * 1000],
    )) as [number, number];
    await this.#record({ event: "auth-failed", method, address, reason, failuresInWindow: n });
    if (n === limit.max)
      await this.#record({
        event: "auth-rate-limited",
        address,
        failuresInWindow: n,
        windowSeconds: limit.windowSeconds,
      });
    return { ok: false, status: 401, reason };
  }

  async #record(data: Record<string, unknown>): Promise<void> {
    try {
      const log = await EvidenceLog.open(this.#opts.redis, this.#opts.dataDir, authEvidenceJobId());
      await log.append("auth", data, "api");
      await sealEvidence(log, this.#opts.signer, this.#opts.redis);
    } catch (err) {
      this.#opts.onRecordError?.(err as Error);
    }
  }
}
