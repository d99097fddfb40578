// Each role can do exactly its set of operations: one test per (role, operation) cell, over HTTPS against the daemon,
// with real tokens from a real OIDC provider (app roles mapped to lunafleet roles in the fleet file). "Allowed" means
// the API got past authorization (any answer but 401/403: a 404 or 409 for a missing object still proves it); refused
// means 403 naming the principal and operation. The expected table is written out here, not derived from the code.
import { createPublicKey, generateKeyPairSync } from "node:crypto";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiCallError } from "../../src/cli/api-client.ts";
import { evidenceKeys } from "../../src/evidence/log.ts";
import { authEvidenceJobId } from "../../src/identity/authenticate.ts";
import type { ApiHarness } from "../helpers/api.ts";
import { startApiHarness } from "../helpers/api.ts";
import { OTHER_AUDIENCE } from "../helpers/oidc-provider.ts";

const ROLE_NAMES = ["viewer", "operator", "approver", "guard-admin", "admin", "none"] as const;
type RoleName = (typeof ROLE_NAMES)[number];

let h: ApiHarness;
const tokens = new Map<RoleName, string>();
let jobToCancel = "";

beforeAll(async () => {
  h = await startApiHarness({
    clients: ROLE_NAMES.map((r) => ({
      id: `user-${r}`,
      ...(r === "none" ? {} : { roles: [`LunaFleet.${r}`] }),
    })),
    identity: () => ({
      roles: Object.fromEntries(
        ROLE_NAMES.filter((r) => r !== "none").map((r) => [r, { appRoles: [`LunaFleet.${r}`] }]),
      ),
    }),
  });
  for (const r of ROLE_NAMES) tokens.set(r, await h.idp.token(`user-${r}`));
  const admin = h.client(tokens.get("admin"));
  // A delayed job (never started) to cancel: every cancel cell acts on something real.
  jobToCancel = (
    await admin.call<{ jobId: string }>("POST", "/v1/jobs", { runbook: "tcp-check", target: "hsm-a1" })
  ).jobId;
});
afterAll(async () => h?.stop());

type Call = [method: string, path: () => string, body?: () => unknown];
const OPERATIONS: Record<string, Call> = {
  "fleet.read": ["GET", () => "/v1/fleet"],
  "report.read": ["GET", () => "/v1/report"],
  "jobs.read": ["GET", () => "/v1/jobs"],
  "approvals.read": ["GET", () => "/v1/approvals"],
  "guard.read": ["GET", () => "/v1/guard"],
  "ha.read": ["GET", () => "/v1/ha/breakers"],
  "schedules.read": ["GET", () => "/v1/schedules"],
  "evidence.read": ["GET", () => "/v1/evidence/keys"],
  plan: ["POST", () => "/v1/plan", () => ({ runbook: "patch-verify", target: "hsm-a1" })],
  "jobs.submit": ["POST", () => "/v1/jobs", () => ({ runbook: "patch-verify", target: "hsm-a2" })],
  "jobs.cancel": ["POST", () => `/v1/jobs/${jobToCancel}/cancel`],
  "ha.release-breaker": [
    "POST",
    () => "/v1/ha/breakers/release",
    () => ({ group: "ha-tokens", member: "hsm-b2/par-tok" }),
  ],
  "approvals.decide": [
    "POST",
    () => "/v1/approvals/deprovision-none-1/reject",
    () => ({ reason: "not today, wrong device" }),
  ],
  "guard.release": [
    "POST",
    () => "/v1/guard/release",
    () => ({ device: "hsm-a1", role: "auditor", reason: "auditor password rotated in vault" }),
  ],
  "tokens.manage": ["GET", () => "/v1/tokens"],
};

const READS = [
  "fleet.read",
  "report.read",
  "jobs.read",
  "approvals.read",
  "guard.read",
  "ha.read",
  "schedules.read",
  "evidence.read",
];
const ALLOWED: Record<RoleName, string[]> = {
  viewer: READS,
  operator: [...READS, "plan", "jobs.submit", "jobs.cancel", "ha.release-breaker"],
  approver: [...READS, "approvals.decide"],
  "guard-admin": [...READS, "guard.release"],
  admin: Object.keys(OPERATIONS),
  none: [],
};

describe("role x operation", () => {
  for (const role of ROLE_NAMES)
    for (const [op, [method, path, body]] of Object.entries(OPERATIONS)) {
      const allowed = ALLOWED[role].includes(op);
      it(`${role} ${allowed ? "may" : "may not"} ${op}`, async () => {
        const client = h.client(tokens.get(role));
        const outcome = await client.call(method, path(), body?.()).then(
          () => 200,
          (err: unknown) => (err instanceof ApiCallError ? err.status : -1),
        );
        if (allowed) expect([401, 403, -1]).not.toContain(outcome);
        else expect(outcome).toBe(403);
      });
    }
});

describe("authentication", () => {
  it("refuses a request without a token (401) and serves the OpenAPI document to anyone", async () => {
    await expect(h.client().call("GET", "/v1/jobs")).rejects.toMatchObject({ status: 401 });
    const doc = await h
      .client()
      .call<{ openapi: string; paths: Record<string, unknown> }>("GET", "/openapi.json");
    expect(doc.openapi).toMatch(/^3\./);
    for (const p of [
      "/v1/jobs",
      "/v1/jobs/{id}/cancel",
      "/v1/approvals/{id}/approve",
      "/v1/guard/release",
      "/v1/evidence/export",
    ])
      expect(Object.keys(doc.paths)).toContain(p);
  });

  it("refuses each token of the refused list over HTTPS (401), records why, never the token", async () => {
    const good = await h.idp.token("user-viewer");
    const [header, payload, signature] = good.split(".") as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString()) as Record<string, unknown>;
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");
    // Key confusion: HS256 "signed" with the provider's RSA public key (PEM) as the HMAC secret.
    const rsaPem = createPublicKey({ key: h.idp.publicJwk as never, format: "jwk" })
      .export({ type: "spki", format: "pem" })
      .toString();
    const stranger = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
    const refused: [string, string, RegExp][] = [
      ["alg none", `${b64({ alg: "none", typ: "JWT" })}.${payload}.`, /algorithm not allowed|malformed/],
      ["wrong audience", await h.idp.token("user-viewer", OTHER_AUDIENCE), /claim 'aud'/],
      [
        "key confusion (HS256 with the RSA public key)",
        await new SignJWT(claims)
          .setProtectedHeader({ alg: "HS256", kid: "test-rs256" })
          .sign(new TextEncoder().encode(rsaPem)),
        /algorithm not allowed/,
      ],
      [
        "a viewer's claims raised to admin",
        `${header}.${b64({ ...claims, roles: ["LunaFleet.admin"] })}.${signature}`,
        /signature does not verify/,
      ],
      [
        "expired an hour ago (the provider's own key, issuer and audience)",
        await h.idp.sign({
          ...claims,
          iat: Math.floor(Date.now() / 1000) - 7200,
          exp: Math.floor(Date.now() / 1000) - 3600,
        }),
        /token expired/,
      ],
      [
        "signed by a key not in the JWKS",
        await new SignJWT(claims).setProtectedHeader({ alg: "RS256", kid: "test-rs256" }).sign(stranger),
        /signature does not verify/,
      ],
    ];
    const day = authEvidenceJobId();
    const before = await h.daemon.redis.llen(evidenceKeys(day).records);
    for (const [what, token] of refused) {
      const err = await h
        .client(token)
        .call("GET", "/v1/jobs")
        .catch((e: unknown) => e);
      expect(err, what).toBeInstanceOf(ApiCallError);
      expect((err as ApiCallError).status, what).toBe(401);
      expect((err as ApiCallError).message, what).not.toContain(token);
    }
    const recorded = (await h.daemon.redis.lrange(evidenceKeys(day).records, before, -1)).filter((l) =>
      l.includes('"auth-failed"'),
    );
    expect(recorded).toHaveLength(refused.length);
    refused.forEach(([what, token, why], i) => {
      expect(JSON.parse(recorded[i]!).data.reason, what).toMatch(why);
      for (const part of token.split(".").filter((x) => x.length > 16))
        expect(recorded[i], what).not.toContain(part);
    });
    // The good token still works: nothing here was a lockout.
    await expect(h.client(good).call("GET", "/v1/jobs")).resolves.toBeDefined();
  });

  it("names the principal who cancelled in the job's evidence", async () => {
    const op = h.client(tokens.get("operator"));
    const { jobId } = await op.call<{ jobId: string }>("POST", "/v1/jobs", {
      runbook: "tcp-check",
      target: "hsm-a3",
    });
    const res = await op.call<{ by: string }>("POST", `/v1/jobs/${jobId}/cancel`);
    expect(res.by).toBe("oidc:user-operator@example.test");
    const records = (await h.daemon.redis.lrange(evidenceKeys(jobId).records, 0, -1)).map(
      (l) => JSON.parse(l) as { actor?: string; data: { event?: string } },
    );
    expect(records.find((r) => r.data.event === "cancel-requested")?.actor).toBe(
      "oidc:user-operator@example.test",
    );
  });
});
