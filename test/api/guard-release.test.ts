// The rules for releasing a quarantined credential (src/guard/release-rules.ts), through the HTTPS API with real OIDC
// tokens and through the real CLI (over the API, and on the daemon host as the OS account): HSM SO, Partition SO
// and a Crypto Officer whose lockout is permanent need a guard-admin, a reason of substance and a second principal's
// signature by a registered key (never the requester's); other releases one guard-admin; anyone else is refused.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { userInfo } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiCallError } from "../../src/cli/api-client.ts";
import { EvidenceLog } from "../../src/evidence/log.ts";
import { finalMarkKey } from "../../src/evidence/signing.ts";
import { LoginLedger, ledgerKeyFor } from "../../src/guard/ledger.ts";
import type { GuardReleaseRequest } from "../../src/guard/release-rules.ts";
import { parseSshSignature } from "../../src/signing/sshsig.ts";
import { type ApiHarness, startApiHarness } from "../helpers/api.ts";
import { DEMO_KEYS_DIR, demoKey, generateSshKey, sshKeygenSign, tempDir } from "../helpers/ssh-signing.ts";

const bin = fileURLToPath(new URL("../../bin/lunafleet.js", import.meta.url));
const keys = tempDir("lf-release-keys-");
let h: ApiHarness;
const token = new Map<string, string>();
const SUBSTANCE =
  "the vault entry held last year's SO password; rotated it and checked it by hand on the appliance";

const pub = (name: string) => readFileSync(join(DEMO_KEYS_DIR, `${name}.pub`), "utf8").trim();

beforeAll(async () => {
  h = await startApiHarness({
    clients: [
      { id: "dave", roles: ["LunaFleet.GuardAdmin"] },
      { id: "olga", roles: ["LunaFleet.Operator"] },
      { id: "carol" },
      { id: "bob" },
      { id: "alice" },
    ],
    identity: () => ({
      roles: {
        "guard-admin": { appRoles: ["LunaFleet.GuardAdmin"] },
        operator: { appRoles: ["LunaFleet.Operator"] },
      },
      principals: [
        { name: "dave", oidc: ["dave@example.test"] },
        { name: "olga", oidc: ["olga@example.test"] },
        {
          name: "carol",
          oidc: ["carol@example.test"],
          roles: ["approver", "guard-admin"],
          approvalKeys: [pub("carol")],
        },
        { name: "bob", oidc: ["bob@example.test"], roles: ["approver"], approvalKeys: [pub("bob")] },
        { name: "alice", oidc: ["alice@example.test"], roles: ["approver"], approvalKeys: [pub("alice")] },
        // The OS account running these tests is, on the daemon host, an operator and nothing more.
        { name: "host-operator", os: [userInfo().username], roles: ["operator"] },
      ],
    }),
  });
  for (const who of ["dave", "olga", "carol", "bob", "alice"]) token.set(who, await h.idp.token(who));
}, 120_000);
afterAll(async () => h?.stop());

const ledger = () => new LoginLedger(h.daemon.redis);
async function quarantine(device: string, role: string, partition?: string): Promise<void> {
  const r = await ledger().quarantine(
    ledgerKeyFor(h.fleet, device, role, partition),
    "wrong password",
    "job-q",
  );
  expect(r.ok).toBe(true);
}
async function quarantined(device: string, role: string, partition?: string): Promise<boolean> {
  return (await ledger().get(ledgerKeyFor(h.fleet, device, role, partition))).quarantined;
}
const as = (who: string) => h.client(token.get(who));
const status = (p: Promise<unknown>) =>
  p.then(
    () => 200,
    (e: unknown) => (e instanceof ApiCallError ? e.status : -1),
  );

/** A signed approval of a release request's statement, as `lunafleet approve <id> --key` builds it. */
function signed(statement: string, keyPath: string, principal?: string) {
  const signature = sshKeygenSign(keyPath, statement);
  return {
    ...(principal ? { principal } : {}),
    keyFingerprint: parseSshSignature(signature).fingerprint,
    signature,
    statement,
  };
}

describe("guard releases over the API", () => {
  it("a non-guard-admin is refused; an auditor lockout is released by one guard-admin at once", async () => {
    await quarantine("hsm-a1", "auditor");
    const body = { device: "hsm-a1", role: "auditor", reason: "auditor password rotated in the vault" };
    expect(await status(as("olga").call("POST", "/v1/guard/release", body))).toBe(403);
    expect(await status(as("bob").call("POST", "/v1/guard/release", body))).toBe(403);
    expect(await quarantined("hsm-a1", "auditor")).toBe(true);
    const done = await as("dave").call<{ kind: string; result: { evidenceJobId: string } }>(
      "POST",
      "/v1/guard/release",
      body,
    );
    expect(done.kind).toBe("released");
    expect(await quarantined("hsm-a1", "auditor")).toBe(false);
    const log = await EvidenceLog.open(h.daemon.redis, h.dataDir, done.result.evidenceJobId);
    const records = await log.records();
    expect(records[0]).toMatchObject({ actor: "dave", data: { event: "release-requested" } });
    expect(records.at(-1)).toMatchObject({ kind: "signature", data: { final: { outcome: "released" } } });
  });

  it("HSM SO: a reason of substance, then a second principal's signature; never the requester's, never a stranger key", async () => {
    await quarantine("hsm-a1", "hsmSo");
    const thin = await as("carol")
      .call("POST", "/v1/guard/release", { device: "hsm-a1", role: "hsmSo", reason: "fixed it" })
      .catch((e: ApiCallError) => e);
    expect(thin).toMatchObject({ status: 409 });
    expect((thin as ApiCallError).message).toMatch(/needs a reason of substance/);

    const asked = await as("carol").call<{ kind: string; request: GuardReleaseRequest }>(
      "POST",
      "/v1/guard/release",
      { device: "hsm-a1", role: "hsmSo", reason: SUBSTANCE },
    );
    expect(asked.kind).toBe("awaiting-approval");
    const req = asked.request;
    expect(req).toMatchObject({
      requester: "carol",
      device: "hsm-a1",
      serial: "700101",
      status: "awaiting-approval",
    });
    expect(req.statement).toContain("credential: hsmSo");
    expect(await quarantined("hsm-a1", "hsmSo")).toBe(true);

    const approve = (who: string, body: unknown) =>
      as(who)
        .call("POST", `/v1/guard/releases/${req.id}/approve`, body)
        .catch((e: ApiCallError) => e);
    // The requester's own key: refused (and recorded).
    expect(await approve("carol", signed(req.statement, demoKey(keys, "carol").path))).toMatchObject({
      status: 409,
      message: expect.stringMatching(/self-approval|requested this action/),
    });
    // A key nobody registered.
    const stranger = generateSshKey(keys, "stranger");
    expect(await approve("bob", signed(req.statement, stranger.path, "bob"))).toMatchObject({
      status: 409,
      message: expect.stringMatching(/not registered/),
    });
    // Alice's key handed in as bob's.
    expect(await approve("bob", signed(req.statement, demoKey(keys, "alice").path, "bob"))).toMatchObject({
      status: 409,
      message: expect.stringMatching(/registered to 'alice', not 'bob'/),
    });
    // Unsigned.
    expect(await approve("bob", { principal: "bob" })).toMatchObject({ status: 409 });
    // Another statement (another credential) signed by a registered key.
    expect(
      await approve("bob", signed(req.statement.replace("hsmSo", "auditor"), demoKey(keys, "bob").path)),
    ).toMatchObject({ status: 409 });
    expect(await quarantined("hsm-a1", "hsmSo")).toBe(true);

    const ok = await as("bob").call<{ status: string; evidenceJobId: string }>(
      "POST",
      `/v1/guard/releases/${req.id}/approve`,
      signed(req.statement, demoKey(keys, "bob").path),
    );
    expect(ok.status).toBe("released");
    expect(await quarantined("hsm-a1", "hsmSo")).toBe(false);
    expect(
      (await as("dave").call<GuardReleaseRequest>("GET", `/v1/guard/releases/${req.id}`)).approval,
    ).toMatchObject({ principal: "bob", submittedBy: "bob" });
    // The request's log: asked, five refusals, approved with the signed statement, released; ends with a final seal.
    const records = await (await EvidenceLog.open(h.daemon.redis, h.dataDir, req.id)).records();
    const events = records
      .filter((r) => r.kind !== "signature")
      .map((r) => (r.data as { event: string }).event);
    expect(events).toEqual([
      "release-requested",
      "refused",
      "refused",
      "refused",
      "refused",
      "refused",
      "approved",
      "released",
    ]);
    const approved = records.find((r) => (r.data as { event?: string }).event === "approved")!;
    expect(approved.data).toMatchObject({ principal: "bob", statement: req.statement });
    expect(await h.daemon.redis.get(finalMarkKey(req.id))).toBe("released");
    expect(records.at(-1)).toMatchObject({ kind: "signature", data: { final: { outcome: "released" } } });
    // Approving again: the request is no longer waiting.
    expect(await approve("alice", signed(req.statement, demoKey(keys, "alice").path))).toMatchObject({
      status: 409,
    });
  }, 120_000);

  it("Partition SO and a Crypto Officer (permanent lockout unless the device says otherwise) wait for a second approval too", async () => {
    await quarantine("hsm-a2", "partitionSo", "par-pay");
    await quarantine("hsm-a2", "co", "par-pay");
    for (const role of ["partitionSo", "co"]) {
      const r = await as("dave").call<{ kind: string; request: GuardReleaseRequest }>(
        "POST",
        "/v1/guard/release",
        {
          device: "hsm-a2",
          role,
          partition: "par-pay",
          reason: SUBSTANCE,
        },
      );
      expect(r.kind, role).toBe("awaiting-approval");
      expect(r.request.statement).toContain(`credential: ${role}@par-pay`);
      expect(await quarantined("hsm-a2", role, "par-pay")).toBe(true);
    }
  });
});

function lunafleet(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith("REDIS_") && !k.startsWith("LUNAFLEET_")),
  );
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [bin, ...args, "--data-dir", h.dataDir],
      { env: { ...base, ...env } },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}
const api = (who: string) => ({ LUNAFLEET_URL: h.daemon.api!.url, LUNAFLEET_TOKEN: token.get(who)! });

describe("guard releases from the CLI", () => {
  it("over the API: an operator is refused; a guard-admin asks, a second approver signs with `approve --key`", async () => {
    await quarantine("hsm-b1", "hsmSo");
    const refused = await lunafleet(
      ["guard", "release", "hsm-b1", "hsmSo", "--reason", SUBSTANCE],
      api("olga"),
    );
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("lunafleet guard release: olga (roles: operator) may not guard.release");

    const asked = await lunafleet(
      ["guard", "release", "hsm-b1", "hsmSo", "--reason", SUBSTANCE],
      api("dave"),
    );
    expect(asked.code, asked.stderr).toBe(0);
    const id = /(guard-release-[a-z0-9]+-[0-9a-f]{6}) awaits a second principal's signed approval/.exec(
      asked.stdout,
    )?.[1];
    expect(id, asked.stdout).toBeDefined();
    expect(asked.stdout).toContain("requested by dave");
    expect(await quarantined("hsm-b1", "hsmSo")).toBe(true);

    const bobKey = demoKey(keys, "bob").path;
    const approved = await lunafleet(["approve", id!, "--key", bobKey], api("bob"));
    expect(approved.code, approved.stderr).toBe(0);
    expect(approved.stderr).toMatch(/signing this statement with .*:\n {2}lunafleet-approval v1\n/);
    expect(approved.stdout).toMatch(new RegExp(`${id}: released \\(evidence guard:hsm-b1:`));
    expect(await quarantined("hsm-b1", "hsmSo")).toBe(false);
  }, 120_000);

  it("on the daemon host the OS account's principal decides: an operator may not release", async () => {
    await quarantine("hsm-b2", "auditor");
    const r = await lunafleet(
      ["guard", "release", "hsm-b2", "auditor", "--reason", "auditor password rotated"],
      {},
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      "lunafleet guard release: host-operator (roles: operator) may not guard.release",
    );
    expect(await quarantined("hsm-b2", "auditor")).toBe(true);
  }, 60_000);
});
