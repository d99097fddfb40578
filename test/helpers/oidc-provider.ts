// A real OpenID Connect provider (panva's oidc-provider, the certified implementation) on loopback over HTTPS, issuing
// real RS256-signed JWT access tokens by the client-credentials grant, the way Entra ID issues tokens to workload
// identities: one confidential client per test principal, whose token carries the app roles / groups configured for
// it (`roles`, `groups` claims) and `preferred_username`. Nothing is mocked: the daemon discovers the provider,
// fetches its JWKS over TLS (trusting this provider's self-signed certificate as a twin CA) and verifies signatures.

import { writeFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import Provider from "oidc-provider";
import { generateSelfSignedCert } from "../../src/sim/certs.ts";

export interface TestClient {
  id: string;
  roles?: string[];
  groups?: string[];
}

export interface TestOidcProvider {
  issuer: string;
  /** PEM file of the provider's certificate (identity.oidc.caFile of a twin fleet). */
  caFile: string;
  audience: string;
  /** A fresh access token for a client, for `resource` (default: the API's audience). */
  token(clientId: string, resource?: string): Promise<string>;
  /** The provider's public signing key (for the key-confusion test). */
  publicJwk: Record<string, unknown>;
  /**
   * Claims signed with the provider's own key, as the provider would have issued them at another time (an expired
   * token: the provider itself only ever issues fresh ones).
   */
  sign(claims: Record<string, unknown>): Promise<string>;
  stop(): Promise<void>;
}

export const TEST_AUDIENCE = "api://lunafleet";
export const OTHER_AUDIENCE = "api://another-service";

export async function startOidcProvider(dir: string, clients: TestClient[]): Promise<TestOidcProvider> {
  const cert = await generateSelfSignedCert({
    commonName: "127.0.0.1",
    validDays: 1,
    altNames: ["localhost"],
  });
  const caFile = join(dir, "idp-ca.pem");
  writeFileSync(caFile, cert.certPem);
  let handler: ((req: never, res: never) => void) | undefined;
  const server: Server = createServer({ key: cert.keyPem, cert: cert.certPem }, (req, res) =>
    handler ? handler(req as never, res as never) : res.writeHead(503).end(),
  );
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const issuer = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const { privateKey, publicKey } = await generateKeyPair("RS256", { extractable: true });
  const privateJwk = { ...(await exportJWK(privateKey)), kid: "test-rs256", use: "sig", alg: "RS256" };
  const publicJwk = { ...(await exportJWK(publicKey)), kid: "test-rs256", use: "sig", alg: "RS256" };
  const secrets = new Map(
    clients.map((c) => [c.id, `secret-${c.id}-${Math.random().toString(36).slice(2)}`]),
  );
  const byId = new Map(clients.map((c) => [c.id, c]));

  const provider = new Provider(issuer, {
    clients: clients.map((c) => ({
      client_id: c.id,
      client_secret: secrets.get(c.id)!,
      grant_types: ["client_credentials"],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: "client_secret_post",
    })),
    jwks: { keys: [privateJwk as never] },
    cookies: { keys: [`cookie-${Math.random().toString(36).slice(2)}`] },
    ttl: { ClientCredentials: 600 },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => TEST_AUDIENCE,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx: unknown, resource: string) => ({
          scope: "api",
          audience: resource,
          accessTokenTTL: 600,
          accessTokenFormat: "jwt",
          jwt: { sign: { alg: "RS256" } },
        }),
      },
    },
    extraTokenClaims: (_ctx: unknown, token: { clientId?: string }) => {
      const c = token.clientId ? byId.get(token.clientId) : undefined;
      if (!c) return undefined;
      return {
        preferred_username: `${c.id}@example.test`,
        ...(c.roles ? { roles: c.roles } : {}),
        ...(c.groups ? { groups: c.groups } : {}),
      };
    },
  } as never);
  handler = provider.callback() as never;

  const tokenEndpoint = `${issuer}/token`;
  return {
    issuer,
    caFile,
    audience: TEST_AUDIENCE,
    publicJwk,
    sign: (claims) =>
      new SignJWT(claims).setProtectedHeader({ alg: "RS256", kid: "test-rs256" }).sign(privateKey),
    async token(clientId, resource = TEST_AUDIENCE) {
      const body = new URLSearchParams({
        grant_type: "client_credentials",
        client_id: clientId,
        client_secret: secrets.get(clientId) ?? "unknown",
        resource,
        scope: "api",
      });
      const res = await postForm(tokenEndpoint, body.toString(), cert.certPem);
      if (res.status !== 200) throw new Error(`token endpoint: ${res.status} ${res.body}`);
      return (JSON.parse(res.body) as { access_token: string }).access_token;
    },
    stop: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

async function postForm(url: string, body: string, ca: string): Promise<{ status: number; body: string }> {
  const { request } = await import("node:https");
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: "POST", ca, headers: { "content-type": "application/x-www-form-urlencoded" } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}
