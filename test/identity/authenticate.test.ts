// Authentication against a real OIDC provider on loopback over HTTPS (oidc-provider, real RS256 JWTs) and real API
// tokens in a real redis-server: roles from app roles / groups and the fleet's principals; the refused-token list
// (alg none, wrong audience, wrong issuer, expired, key confusion HS256-with-the-RSA-public-key, tampered, unknown
// key); API tokens printed once, stored as a hash, listed, revoked, expired; failed authentications counted per
// address, refused past the limit (429) and recorded as evidence without the credential.
import { createPublicKey, generateKeyPairSync } from "node:crypto";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { identitySchema } from "../../src/config/identity-schema.ts";
import { EvidenceLog } from "../../src/evidence/log.ts";
import { Authenticator, authEvidenceJobId } from "../../src/identity/authenticate.ts";
import { createToken, listTokens, parseExpiry, revokeToken, TOKENS_KEY } from "../../src/identity/tokens.ts";
import { OTHER_AUDIENCE, startOidcProvider, type TestOidcProvider } from "../helpers/oidc-provider.ts";
import { withRedis } from "../helpers/redis.ts";
import { tempDir } from "../helpers/ssh-signing.ts";

const redis = await withRedis();
const dir = tempDir("lf-oidc-");
let idp: TestOidcProvider;
afterAll(async () => {
  await idp?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function identityFor(p: TestOidcProvider, over: Record<string, unknown> = {}) {
  return identitySchema.parse({
    oidc: {
      issuer: p.issuer,
      audience: p.audience,
      principalClaim: "preferred_username",
      caFile: p.caFile,
      clockToleranceSeconds: 0,
      ...over,
    },
    roles: { operator: { appRoles: ["LunaFleet.Operator"] }, viewer: { groups: ["g-viewers"] } },
    principals: [{ name: "alice", oidc: ["alice@example.test"], roles: ["approver"] }],
    authFailures: { max: 5, windowSeconds: 600 },
  });
}

beforeAll(async () => {
  idp = await startOidcProvider(dir, [
    { id: "alice", roles: ["LunaFleet.Operator"] },
    { id: "victor", groups: ["g-viewers"] },
    { id: "nobody" },
  ]);
});

let addr = 0;
const address = () => `127.9.9.${++addr}`;

describe("OIDC bearer tokens from a real provider", () => {
  it("maps the token to its principal: a listed person by name, roles from the fleet and the token", async () => {
    const auth = new Authenticator({
      redis: redis.client(),
      identity: identityFor(idp),
      dataDir: redis.dataDir,
    });
    const alice = await auth.authenticate(`Bearer ${await idp.token("alice")}`, address());
    expect(alice).toEqual({
      ok: true,
      principal: {
        name: "alice",
        method: "oidc",
        roles: ["operator", "approver"],
        subject: "alice@example.test",
      },
    });
    const victor = await auth.authenticate(`Bearer ${await idp.token("victor")}`, address());
    expect(victor).toMatchObject({
      ok: true,
      principal: { name: "oidc:victor@example.test", roles: ["viewer"] },
    });
    const nobody = await auth.authenticate(`Bearer ${await idp.token("nobody")}`, address());
    expect(nobody).toMatchObject({ ok: true, principal: { roles: [] } });
  });

  it("refuses each token of the refused list, saying why", async () => {
    const auth = new Authenticator({
      redis: redis.client(),
      identity: identityFor(idp),
      dataDir: redis.dataDir,
    });
    const good = await idp.token("alice");
    const [h, p] = good.split(".") as [string, string, string];
    const claims = JSON.parse(Buffer.from(p, "base64url").toString()) as Record<string, unknown>;
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");

    const none = `${b64({ alg: "none", typ: "JWT" })}.${p}.`;
    const wrongAudience = await idp.token("alice", OTHER_AUDIENCE);
    // Key confusion: HS256 "signed" with the provider's RSA public key (PEM) as the HMAC secret.
    const rsaPem = createPublicKey({ key: idp.publicJwk as never, format: "jwk" }).export({
      type: "spki",
      format: "pem",
    });
    const confused = await new SignJWT(claims)
      .setProtectedHeader({ alg: "HS256", kid: "test-rs256" })
      .sign(new TextEncoder().encode(rsaPem.toString()));
    const tampered = `${h}.${b64({ ...claims, roles: ["LunaFleet.Admin"] })}.${good.split(".")[2]}`;
    const stranger = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
    const unknownKey = await new SignJWT(claims)
      .setProtectedHeader({ alg: "RS256", kid: "test-rs256" })
      .sign(stranger);

    const cases: [string, string, RegExp][] = [
      ["alg none", none, /algorithm not allowed|malformed/],
      ["wrong audience", wrongAudience, /claim 'aud'/],
      ["key confusion (HS256 with the RSA public key)", confused, /algorithm not allowed/],
      ["tampered claims", tampered, /signature does not verify/],
      ["signed by a key not in the JWKS", unknownKey, /signature does not verify/],
      ["not a JWT", "abc.def", /malformed/],
    ];
    for (const [what, token, reason] of cases) {
      const r = await auth.authenticate(`Bearer ${token}`, address());
      expect(r, what).toMatchObject({ ok: false, status: 401, reason: expect.stringMatching(reason) });
    }
  });

  it("refuses an expired token (clock injected past exp) and a token of another issuer", async () => {
    const token = await idp.token("alice");
    const exp = (JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()) as { exp: number })
      .exp;
    const later = new Authenticator({
      redis: redis.client(),
      identity: identityFor(idp),
      dataDir: redis.dataDir,
      now: () => new Date(exp * 1000 + 1000),
    });
    expect(await later.authenticate(`Bearer ${token}`, address())).toMatchObject({
      ok: false,
      reason: "token expired",
    });
    // The same provider's keys, but the fleet trusts another issuer: the token's iss is refused.
    const otherIssuer = new Authenticator({
      redis: redis.client(),
      identity: identityFor(idp, {
        issuer: "https://login.example.test/tenant/v2.0",
        jwksUri: `${idp.issuer}/jwks`,
      }),
      dataDir: redis.dataDir,
    });
    expect(await otherIssuer.authenticate(`Bearer ${token}`, address())).toMatchObject({
      ok: false,
      reason: "token claim 'iss' refused (check_failed)",
    });
  });
});

describe("API tokens", () => {
  it("prints the token once, stores only its hash, lists, revokes; expired and revoked are refused", async () => {
    const r = redis.client();
    const auth = new Authenticator({ redis: r, identity: identityFor(idp), dataDir: redis.dataDir });
    const now = Date.now();
    const { token, record } = await createToken(
      r,
      { name: "ci", role: "operator", expiresAt: parseExpiry("30d", now), createdBy: "alice" },
      now,
    );
    expect(token).toMatch(/^lft_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    expect(record).toMatchObject({ name: "ci", role: "operator", status: "active", createdBy: "alice" });
    const stored = Object.values(await r.hgetall(TOKENS_KEY)).join("\n");
    expect(stored).not.toContain(token.slice(21));
    expect(await auth.authenticate(`Bearer ${token}`, address())).toMatchObject({
      ok: true,
      principal: { name: "token:ci", method: "token", roles: ["operator"] },
    });
    // A second active token of the same name is refused; a wrong secret for a real id too.
    await expect(
      createToken(r, { name: "ci", role: "viewer", expiresAt: now + 60_000, createdBy: "alice" }, now),
    ).rejects.toThrow(/active token named 'ci'/);
    const forged = `${token.slice(0, 21)}${"A".repeat(43)}`;
    expect(await auth.authenticate(`Bearer ${forged}`, address())).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/wrong secret/),
    });
    expect(await revokeToken(r, "ci", "alice")).toBe(1);
    expect(await auth.authenticate(`Bearer ${token}`, address())).toMatchObject({
      ok: false,
      reason: "API token 'ci' is revoked",
    });
    expect((await listTokens(r)).map((t) => [t.name, t.status, t.revokedBy])).toEqual([
      ["ci", "revoked", "alice"],
    ]);
    const short = await createToken(
      r,
      { name: "short", role: "viewer", expiresAt: now + 60_000, createdBy: "alice" },
      now,
    );
    const later = await listTokens(r, now + 120_000);
    expect(later.find((t) => t.name === "short")?.status).toBe("expired");
    expect(short.token).not.toBe(token);
    expect(() => parseExpiry("400d", now)).toThrow(/at most 366 days/);
  });
});

describe("failed authentication", () => {
  it("is counted per address, refused past the limit (429) and recorded without the credential", async () => {
    const r = redis.client();
    const auth = new Authenticator({ redis: r, identity: identityFor(idp), dataDir: redis.dataDir });
    const from = address();
    const secretish = "lft_0123456789abcdef_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZn";
    for (let i = 0; i < 5; i++)
      expect(await auth.authenticate(`Bearer ${secretish}`, from)).toMatchObject({ ok: false, status: 401 });
    // Over the limit: refused before the credential is looked at, even a good one.
    const good = await idp.token("alice");
    expect(await auth.authenticate(`Bearer ${good}`, from)).toMatchObject({ ok: false, status: 429 });
    // Another address is unaffected.
    expect(await auth.authenticate(`Bearer ${good}`, address())).toMatchObject({ ok: true });

    const log = await EvidenceLog.open(r, redis.dataDir, authEvidenceJobId());
    const records = (await log.records()).filter((x) => (x.data as { address?: string }).address === from);
    expect(records.map((x) => (x.data as { event: string }).event)).toEqual([
      ...Array(5).fill("auth-failed"),
      "auth-rate-limited",
    ]);
    const file = readFileSync(join(redis.dataDir, "evidence", `${authEvidenceJobId()}.jsonl`), "utf8");
    expect(file).not.toContain(secretish.slice(21));
    expect(file).not.toContain(good.split(".")[2]!);
  });
});
