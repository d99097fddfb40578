// The twin's Microsoft Entra ID: the OpenID configuration and the v2.0 token endpoint for the client-credentials
// grant, which the unchanged @azure/identity ClientSecretCredential (MSAL node) talks to through `authorityHost`.
// Tokens are real JWTs (ES256, the twin's own key) that the Managed HSM data plane and Graph verify: audience,
// expiry, signature; `oid`/`appid` name the principal whose role assignments decide.
//
// Error answers follow Entra's shape: `{ error, error_description: "AADSTSnnnn: …", error_codes: [n], … }`, 400 for
// an unknown tenant or application, 401 `invalid_client` for a wrong or expired secret.
import { createSign, createVerify, generateKeyPairSync, type KeyObject, randomUUID } from "node:crypto";
import type { KeyVaultTwinModel, TwinApp } from "./model.ts";

export interface TokenClaims {
  aud: string;
  iss: string;
  tid: string;
  oid: string;
  appid: string;
  sub: string;
  iat: number;
  nbf: number;
  exp: number;
}

export interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

const TOKEN_LIFETIME_S = 3599;

export class EntraTwin {
  private readonly keys = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  private readonly kid = randomUUID();
  /** Set once the server listens: `https://login.localhost:<port>`. */
  base = "";

  constructor(private readonly model: KeyVaultTwinModel) {}

  /** GET /{tenant}/v2.0/.well-known/openid-configuration, POST /{tenant}/oauth2/v2.0/token. */
  handle(method: string, path: string, form: URLSearchParams): Reply {
    const seg = path.split("/").filter(Boolean);
    const tenant = seg[0] ?? "";
    if (method === "GET" && seg.slice(1).join("/") === "v2.0/.well-known/openid-configuration") {
      if (!this.knownTenant(tenant))
        return aadError(400, "invalid_tenant", 90002, `Tenant '${tenant}' not found.`);
      const t = `${this.base}/${tenant}`;
      return {
        status: 200,
        body: {
          token_endpoint: `${t}/oauth2/v2.0/token`,
          token_endpoint_auth_methods_supported: [
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic",
          ],
          jwks_uri: `${t}/discovery/v2.0/keys`,
          issuer: `${t}/v2.0`,
          authorization_endpoint: `${t}/oauth2/v2.0/authorize`,
          end_session_endpoint: `${t}/oauth2/v2.0/logout`,
          response_types_supported: ["code", "id_token", "code id_token", "id_token token"],
          subject_types_supported: ["pairwise"],
          id_token_signing_alg_values_supported: ["RS256"],
          tenant_region_scope: "EU",
        },
      };
    }
    if (method === "POST" && seg.slice(1).join("/") === "oauth2/v2.0/token") return this.token(tenant, form);
    return { status: 404, body: { error: "not_found", error_description: `No route ${method} ${path}` } };
  }

  private knownTenant(tenant: string): boolean {
    return (
      tenant.toLowerCase() === this.model.tenantId.toLowerCase() ||
      [...this.model.apps.values()].some((a) => a.tenantId.toLowerCase() === tenant.toLowerCase())
    );
  }

  private token(tenant: string, form: URLSearchParams): Reply {
    if (!this.knownTenant(tenant))
      return aadError(400, "invalid_request", 90002, `Tenant '${tenant}' not found.`);
    if (form.get("grant_type") !== "client_credentials")
      return aadError(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.");
    const clientId = form.get("client_id") ?? "";
    const app = this.model.apps.get(clientId.toLowerCase());
    if (!app || app.tenantId.toLowerCase() !== tenant.toLowerCase())
      return aadError(
        400,
        "unauthorized_client",
        700016,
        `Application with identifier '${clientId}' was not found in the directory '${tenant}'.`,
      );
    const secret = form.get("client_secret") ?? "";
    const match = app.secrets.find((s) => s.value === secret);
    if (!match)
      return aadError(
        401,
        "invalid_client",
        7000215,
        `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${app.clientId}'.`,
      );
    if (match.end.getTime() <= this.model.now().getTime())
      return aadError(
        401,
        "invalid_client",
        7000222,
        `The provided client secret keys for app '${app.clientId}' are expired. Visit the Azure portal to create new keys for your app.`,
      );
    const scope = form.get("scope") ?? "";
    const resource = scope.replace(/\/\.default$/, "");
    if (!resource)
      return aadError(400, "invalid_scope", 1002012, "The provided value for scope is not valid.");
    return {
      status: 200,
      body: {
        token_type: "Bearer",
        expires_in: TOKEN_LIFETIME_S,
        ext_expires_in: TOKEN_LIFETIME_S,
        access_token: this.issue(app, resource),
      },
    };
  }

  issue(app: TwinApp, audience: string): string {
    const now = Math.floor(this.model.now().getTime() / 1000);
    const claims: TokenClaims = {
      aud: audience,
      iss: `https://sts.windows.net/${app.tenantId}/`,
      tid: app.tenantId,
      oid: app.objectId,
      appid: app.clientId,
      sub: app.objectId,
      iat: now,
      nbf: now,
      exp: now + TOKEN_LIFETIME_S,
    };
    const head = b64u(JSON.stringify({ alg: "ES256", typ: "JWT", kid: this.kid }));
    const body = b64u(JSON.stringify({ ...claims, idtyp: "app", ver: "1.0" }));
    const sig = createSign("sha256")
      .update(`${head}.${body}`)
      .sign({ key: this.keys.privateKey, dsaEncoding: "ieee-p1363" });
    const token = `${head}.${body}.${sig.toString("base64url")}`;
    this.model.sensitive.tokens.push(token);
    return token;
  }

  /** The claims of a token this twin issued, or why it is refused. */
  verify(token: string, audience: string): { ok: true; claims: TokenClaims } | { ok: false; reason: string } {
    const parts = token.split(".");
    if (parts.length !== 3) return { ok: false, reason: "malformed token" };
    const [head, body, sig] = parts as [string, string, string];
    const valid = createVerify("sha256")
      .update(`${head}.${body}`)
      .verify({ key: this.publicKey, dsaEncoding: "ieee-p1363" }, Buffer.from(sig, "base64url"));
    if (!valid) return { ok: false, reason: "signature" };
    let claims: TokenClaims;
    try {
      claims = JSON.parse(Buffer.from(body, "base64url").toString("utf8")) as TokenClaims;
    } catch {
      return { ok: false, reason: "malformed token" };
    }
    if (claims.aud.replace(/\/+$/, "").toLowerCase() !== audience.replace(/\/+$/, "").toLowerCase())
      return { ok: false, reason: `audience ${claims.aud}` };
    if (claims.exp * 1000 <= this.model.now().getTime()) return { ok: false, reason: "expired" };
    return { ok: true, claims };
  }

  private get publicKey(): KeyObject {
    return this.keys.publicKey;
  }
}

function aadError(status: number, error: string, code: number, text: string): Reply {
  const trace = randomUUID();
  return {
    status,
    body: {
      error,
      error_description: `AADSTS${code}: ${text} Trace ID: ${trace} Correlation ID: ${randomUUID()} Timestamp: ${new Date().toISOString()}`,
      error_codes: [code],
      timestamp: new Date().toISOString(),
      trace_id: trace,
      correlation_id: randomUUID(),
    },
  };
}

function b64u(s: string): string {
  return Buffer.from(s, "utf8").toString("base64url");
}
