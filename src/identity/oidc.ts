// OIDC bearer tokens (Microsoft Entra ID in production), validated with jose: signature by a key of the issuer's
// JWKS, issuer, audience, expiry (with the configured clock tolerance), and only the configured asymmetric
// algorithms. So `alg: none` is refused (not in the list), as is the key-confusion trick of an HS256 token "signed"
// with the issuer's RSA public key as HMAC secret (HS256 is never in the list, and a JWKS key is never an HMAC key).
//
// The JWKS location comes from the fleet file or the issuer's discovery document (whose `issuer` must be the
// configured one). A twin fleet may name a private CA for the loopback demo provider; a real one uses the system store.
import { readFileSync } from "node:fs";
import { request } from "node:https";
import { createRemoteJWKSet, customFetch, errors, type JWTPayload, jwtVerify } from "jose";
import type { OidcConfig } from "../config/identity-schema.ts";

class OidcError extends Error {
  override name = "OidcError";
}

export type OidcCheck = { ok: true; claims: JWTPayload } | { ok: false; reason: string };

type FetchLike = (
  url: string,
  init?: { headers?: Headers | Record<string, string>; signal?: AbortSignal },
) => Promise<Response>;

/** GET over node:https trusting only `ca` (the twin's identity provider); redirects are not followed. */
function fetchWithCa(ca: string): FetchLike {
  return (url, init = {}) =>
    new Promise((resolve, reject) => {
      const headers: Record<string, string> = {};
      new Headers(init.headers ?? {}).forEach((v, k) => {
        headers[k] = v;
      });
      const req = request(url, { method: "GET", ca, headers, signal: init.signal }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const h = new Headers();
          for (const [k, v] of Object.entries(res.headers)) if (typeof v === "string") h.set(k, v);
          resolve(new Response(Buffer.concat(chunks), { status: res.statusCode ?? 500, headers: h }));
        });
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end();
    });
}

export class OidcVerifier {
  readonly #config: OidcConfig;
  readonly #fetch: FetchLike;
  #jwks: ReturnType<typeof createRemoteJWKSet> | undefined;
  #discovering: Promise<ReturnType<typeof createRemoteJWKSet>> | undefined;

  readonly #now: () => Date;

  /** `now`: the clock expiry is judged by (tests inject one; default the real time). */
  constructor(config: OidcConfig, opts: { now?: () => Date } = {}) {
    this.#config = config;
    this.#now = opts.now ?? (() => new Date());
    this.#fetch = config.caFile
      ? fetchWithCa(readFileSync(config.caFile, "utf8"))
      : (url, init) => fetch(url, init);
  }

  async #keys(): Promise<ReturnType<typeof createRemoteJWKSet>> {
    if (this.#jwks) return this.#jwks;
    this.#discovering ??= (async () => {
      let uri = this.#config.jwksUri;
      if (!uri) {
        const url = `${this.#config.issuer.replace(/\/$/, "")}/.well-known/openid-configuration`;
        const res = await this.#fetch(url, { signal: AbortSignal.timeout(10_000) });
        if (res.status !== 200) throw new OidcError(`discovery ${url}: HTTP ${res.status}`);
        const doc = (await res.json()) as { issuer?: unknown; jwks_uri?: unknown };
        if (doc.issuer !== this.#config.issuer)
          throw new OidcError(`discovery ${url}: issuer '${String(doc.issuer)}' is not the configured one`);
        if (typeof doc.jwks_uri !== "string") throw new OidcError(`discovery ${url}: no jwks_uri`);
        uri = doc.jwks_uri;
      }
      if (!uri.startsWith("https://")) throw new OidcError(`JWKS ${uri}: only https is accepted`);
      this.#jwks = createRemoteJWKSet(new URL(uri), {
        [customFetch]: this.#fetch as never,
        timeoutDuration: 10_000,
        cooldownDuration: 30_000,
      });
      return this.#jwks;
    })().finally(() => {
      this.#discovering = undefined;
    });
    return this.#discovering;
  }

  /** Validate a bearer token. Never throws for a bad token; says why (without the token). */
  async verify(token: string): Promise<OidcCheck> {
    let keys: ReturnType<typeof createRemoteJWKSet>;
    try {
      keys = await this.#keys();
    } catch (err) {
      return { ok: false, reason: `identity provider unavailable: ${(err as Error).message}` };
    }
    try {
      const { payload } = await jwtVerify(token, keys, {
        issuer: this.#config.issuer,
        audience: this.#config.audience,
        algorithms: this.#config.algorithms,
        clockTolerance: this.#config.clockToleranceSeconds,
        requiredClaims: ["exp", "iat"],
        currentDate: this.#now(),
      });
      return { ok: true, claims: payload };
    } catch (err) {
      return { ok: false, reason: describeJoseError(err) };
    }
  }
}

function describeJoseError(err: unknown): string {
  if (err instanceof errors.JWTExpired) return "token expired";
  if (err instanceof errors.JWTClaimValidationFailed)
    return `token claim '${err.claim}' refused (${err.reason})`;
  if (err instanceof errors.JOSEAlgNotAllowed) return "token algorithm not allowed";
  if (err instanceof errors.JWSSignatureVerificationFailed) return "token signature does not verify";
  if (err instanceof errors.JWKSNoMatchingKey) return "no key of the issuer's JWKS matches the token";
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return "malformed token";
  if (err instanceof errors.JOSEError) return `token refused (${err.code})`;
  return `token refused (${(err as Error).name})`;
}
