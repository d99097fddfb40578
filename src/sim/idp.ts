// The demo's identity provider (TWIN ONLY): a real OpenID Connect provider (panva's oidc-provider, a certified
// implementation) on loopback over HTTPS, so the console's sign-in is the real flow — authorization code with PKCE,
// a login page, a JWT access token for the API's audience — and nothing in the daemon knows it is a demo.
//
// Its users are the fleet's principals that list an OIDC subject (identity.principals[].oidc); each gets a random
// password, kept in the data dir (0600) so a restarted demo keeps them, and printed by `npm start`. The console is
// its one client: public (no secret: it runs in the browser), PKCE required, redirect URIs on the console's origin,
// CORS only for that origin (the browser exchanges the code itself). Not for anything but the twin: `npm start` runs
// it only for a twin fleet whose identity section names no provider of its own.
import { randomBytes, timingSafeEqual } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { exportJWK, generateKeyPair } from "jose";
import Provider from "oidc-provider";

export interface DemoIdpUser {
  /** The login name and the token's preferred_username (a value of the principal's `oidc` list). */
  username: string;
  password: string;
}

export interface DemoIdp {
  issuer: string;
  port: number;
  users: DemoIdpUser[];
  /** Register the console (its origins are known once the API listens): redirect URIs, CORS. */
  registerConsole(opts: { clientId: string; origins: string[] }): Promise<void>;
  stop(): Promise<void>;
}

export interface StartDemoIdpOptions {
  /** PEM certificate and key to serve (npm start: the API's own, so a browser trusts one certificate). */
  certPem: string;
  keyPem: string;
  /** 0 = any free port. */
  port: number;
  /** The access token's audience (identity.oidc.audience). */
  audience: string;
  /** Login names (the principals' oidc subjects). */
  usernames: string[];
  /** Where the generated passwords are kept (`demo-idp-users.json`, 0600). */
  dataDir: string;
}

const USERS_FILE = "demo-idp-users.json";

/** oidc-provider's storage interface over one process-wide Map (the demo provider keeps nothing on disk). */
const store = new Map<string, { payload: Record<string, unknown>; expiresAt: number }>();
class MemoryAdapter {
  constructor(readonly model: string) {}
  #key(id: string) {
    return `${this.model}:${id}`;
  }
  async upsert(id: string, payload: Record<string, unknown>, expiresIn: number) {
    store.set(this.#key(id), { payload, expiresAt: Date.now() + expiresIn * 1000 });
  }
  async find(id: string) {
    const e = store.get(this.#key(id));
    if (!e) return undefined;
    if (e.expiresAt < Date.now()) {
      store.delete(this.#key(id));
      return undefined;
    }
    return e.payload;
  }
  async findByUid(uid: string) {
    for (const [k, e] of store) if (k.startsWith(`${this.model}:`) && e.payload.uid === uid) return e.payload;
    return undefined;
  }
  async findByUserCode(userCode: string) {
    for (const [k, e] of store)
      if (k.startsWith(`${this.model}:`) && e.payload.userCode === userCode) return e.payload;
    return undefined;
  }
  async consume(id: string) {
    const e = store.get(this.#key(id));
    if (e) e.payload.consumed = Math.floor(Date.now() / 1000);
  }
  async destroy(id: string) {
    store.delete(this.#key(id));
  }
  async revokeByGrantId(grantId: string) {
    for (const [k, e] of store) if (e.payload.grantId === grantId) store.delete(k);
  }
}

function loadPasswords(dataDir: string, usernames: string[]): DemoIdpUser[] {
  const file = join(dataDir, USERS_FILE);
  let kept: Record<string, string> = {};
  if (existsSync(file))
    try {
      kept = JSON.parse(readFileSync(file, "utf8")) as Record<string, string>;
    } catch {
      kept = {};
    }
  const users = usernames.map((username) => ({
    username,
    password: kept[username] ?? `demo-${randomBytes(9).toString("base64url")}`,
  }));
  writeFileSync(
    file,
    `${JSON.stringify(Object.fromEntries(users.map((u) => [u.username, u.password])), null, 2)}\n`,
    {
      mode: 0o600,
    },
  );
  return users;
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);

function loginPage(uid: string, error?: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in: lunafleet demo identity provider</title>
<style>body{font-family:system-ui,sans-serif;max-width:420px;margin:60px auto;padding:0 16px}label{display:block;margin:12px 0 4px}input{width:100%;padding:6px;font:inherit}button{margin-top:16px;padding:6px 16px;font:inherit}.warn{background:#fff4e5;border-left:4px solid #b35900;padding:6px 10px}.error{color:#a40e26;font-weight:600}</style>
</head><body>
<h1>Sign in</h1>
<p class="warn">lunafleet demo identity provider: TWIN ONLY. The passwords are printed by <code>npm start</code>.</p>
${error ? `<p class="error" role="alert">${escapeHtml(error)}</p>` : ""}
<form method="post" action="/interaction/${escapeHtml(uid)}/login">
<label for="username">User name</label><input id="username" name="username" autocomplete="username" required autofocus>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form></body></html>`;
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 16_384) throw new Error("form too large");
    chunks.push(chunk as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
}

export async function startDemoIdp(opts: StartDemoIdpOptions): Promise<DemoIdp> {
  const users = loadPasswords(opts.dataDir, opts.usernames);
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  const server: Server = createServer({ key: opts.keyPem, cert: opts.certPem }, (req, res) =>
    handler ? handler(req, res) : res.writeHead(503).end("starting"),
  );
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const issuer = `https://127.0.0.1:${port}`;
  const { privateKey } = await generateKeyPair("RS256", { extractable: true });
  const signingKey = { ...(await exportJWK(privateKey)), kid: "demo-rs256", use: "sig", alg: "RS256" };

  let formTargets = "'self'";
  const registerConsole = async ({ clientId, origins }: { clientId: string; origins: string[] }) => {
    const allowed = new Set(origins);
    // The login form's POST ends in redirects back to the console: form-action covers the whole chain.
    formTargets = ["'self'", ...origins].join(" ");
    const provider = new Provider(issuer, {
      clients: [
        {
          client_id: clientId,
          token_endpoint_auth_method: "none",
          grant_types: ["authorization_code"],
          response_types: ["code"],
          redirect_uris: origins.map((o) => `${o}/console/callback`),
        },
      ],
      jwks: { keys: [signingKey as never] },
      cookies: { keys: [randomBytes(24).toString("base64url")] },
      pkce: { required: () => true, methods: ["S256"] },
      clientBasedCORS: (_ctx: unknown, origin: string) => allowed.has(origin),
      findAccount: async (_ctx: unknown, sub: string) =>
        users.some((u) => u.username === sub)
          ? { accountId: sub, claims: async () => ({ sub, preferred_username: sub }) }
          : undefined,
      claims: { openid: ["sub"], profile: ["preferred_username"] },
      ttl: {
        AccessToken: 3600,
        AuthorizationCode: 60,
        IdToken: 3600,
        Session: 3600,
        Interaction: 600,
        Grant: 3600,
      },
      // In memory on purpose: the demo's sessions and grants end with the demo (a restarted demo signs in again).
      adapter: MemoryAdapter,
      interactions: {
        url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}`,
      },
      features: {
        devInteractions: { enabled: false },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => opts.audience,
          useGrantedResource: () => true,
          getResourceServerInfo: (_ctx: unknown, resource: string) => {
            if (resource !== opts.audience) throw new Error(`unknown resource ${resource}`);
            return {
              scope: "api",
              audience: resource,
              accessTokenTTL: 3600,
              accessTokenFormat: "jwt",
              jwt: { sign: { alg: "RS256" } },
            };
          },
        },
      },
      // The API names people by preferred_username (identity.oidc.principalClaim), as with Entra ID.
      extraTokenClaims: (_ctx: unknown, token: { accountId?: string }) =>
        token.accountId ? { preferred_username: token.accountId } : undefined,
    } as never);
    const oidc = provider.callback();
    handler = (req, res) => {
      const m = /^\/interaction\/([A-Za-z0-9_-]+)(\/login)?$/.exec(req.url?.split("?")[0] ?? "");
      if (!m) return void oidc(req, res);
      void interaction(provider, req, res, m[1]!, m[2] === "/login").catch((err: Error) => {
        if (!res.headersSent)
          res.writeHead(400, { "content-type": "text/plain" }).end(`sign-in failed: ${err.message}`);
      });
    };
  };

  const interaction = async (
    provider: Provider,
    req: IncomingMessage,
    res: ServerResponse,
    uid: string,
    login: boolean,
  ) => {
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== uid) throw new Error("interaction mismatch");
    const html = (body: string, status = 200) =>
      res
        .writeHead(status, {
          "content-type": "text/html; charset=utf-8",
          "cache-control": "no-store",
          "content-security-policy": `default-src 'none'; style-src 'unsafe-inline'; form-action ${formTargets}; frame-ancestors 'none'`,
        })
        .end(body);
    if (details.prompt.name === "login") {
      if (!login || req.method !== "POST") return html(loginPage(uid));
      const form = await readForm(req);
      const user = users.find((u) => u.username === form.get("username"));
      if (!user || !sameSecret(user.password, form.get("password") ?? ""))
        return html(loginPage(uid, "Unknown user name or wrong password."), 401);
      await provider.interactionFinished(
        req,
        res,
        { login: { accountId: user.username } },
        {
          mergeWithLastSubmission: false,
        },
      );
      return;
    }
    // Consent: the console is this provider's one (first-party) client; grant what it asked for.
    const { session, params, prompt } = details as unknown as {
      session: { accountId: string };
      params: { client_id: string; scope?: string };
      prompt: { details: { missingOIDCScope?: string[]; missingResourceScopes?: Record<string, string[]> } };
    };
    const grant = new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(" "));
    for (const [resource, scopes] of Object.entries(prompt.details.missingResourceScopes ?? {}))
      grant.addResourceScope(resource, scopes.join(" "));
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  };

  return {
    issuer,
    port,
    users,
    registerConsole,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
