// Registering a security key over the API, against the daemon and a real OIDC provider: only the signed-in approver,
// only with a challenge the daemon issued them, only completed by their own signature with an approval key the
// fleet file registers to them; everything recorded in the webauthn-credentials log, where an auditor checks the
// registration with ssh-keygen -Y verify. Revoking: the owner or an admin. The authenticator is a software one
// (test/helpers/soft-webauthn.ts): the console's Chromium test uses a browser's.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiCallError } from "../../src/cli/api-client.ts";
import { evidenceKeys } from "../../src/evidence/log.ts";
import { type ApiHarness, startApiHarness } from "../helpers/api.ts";
import { SoftWebAuthn } from "../helpers/soft-webauthn.ts";
import { demoKey, sshKeygenSign, sshKeygenVerify, tempDir } from "../helpers/ssh-signing.ts";

let h: ApiHarness;
const tokens = new Map<string, string>();
const keyDir = tempDir("lf-api-wa-");
const line = (who: "alice" | "bob") => demoKey(keyDir, who).publicLine;

beforeAll(async () => {
  const people = ["alice", "bob", "erin", "victor", "dana"];
  h = await startApiHarness({
    clients: people.map((id) => ({ id })),
    identity: () => ({
      principals: [
        { name: "alice", roles: ["approver"], oidc: ["alice@example.test"], approvalKeys: [line("alice")] },
        { name: "bob", roles: ["approver"], oidc: ["bob@example.test"], approvalKeys: [line("bob")] },
        { name: "erin", roles: ["approver"], oidc: ["erin@example.test"] },
        { name: "victor", roles: ["viewer"], oidc: ["victor@example.test"] },
        { name: "dana", roles: ["admin"], oidc: ["dana@example.test"] },
      ],
    }),
  });
  for (const p of people) tokens.set(p, await h.idp.token(p));
});
afterAll(async () => h?.stop());

const as = (who: string) => h.client(tokens.get(who));
const origin = () => `https://localhost:${h.daemon.api!.port}`;
const failure = (p: Promise<unknown>) =>
  p.then(
    () => ({ status: 200, message: "" }),
    (e: unknown) => ({ status: (e as ApiCallError).status, message: (e as Error).message }),
  );

interface Pending {
  id: string;
  statement: string;
  signWith: string[];
}

async function begin(who: string, key: SoftWebAuthn, at = origin()): Promise<Pending> {
  const { options } = await as(who).call<{ options: { challenge: string; rp: { id: string } } }>(
    "POST",
    "/v1/webauthn/registrations/options",
  );
  expect(options.rp.id).toBe("localhost");
  return as(who).call<Pending>("POST", "/v1/webauthn/registrations", {
    label: `${who}'s key`,
    response: key.create(options.challenge, at),
  });
}

const records = async () =>
  (await h.daemon.redis.lrange(evidenceKeys("webauthn-credentials").records, 0, -1)).map(
    (l) => JSON.parse(l) as { actor: string; data: Record<string, unknown> },
  );

describe("registering a security key", () => {
  it("is for approvers with an approval key: a viewer is refused (403), an approver without a key is told why (409)", async () => {
    expect(await failure(as("victor").call("POST", "/v1/webauthn/registrations/options"))).toMatchObject({
      status: 403,
    });
    const erin = await failure(as("erin").call("POST", "/v1/webauthn/registrations/options"));
    expect(erin.status).toBe(409);
    expect(erin.message).toMatch(/erin has no approval key in the fleet file/);
  });

  it("counts only once its owner's approval key signed the statement: not bob's key, not completed by bob", async () => {
    const key = new SoftWebAuthn();
    const pending = await begin("alice", key);
    expect(pending.statement).toBe(
      `lunafleet-approval v1\nkind: webauthn-credential\ndecision: register\nprincipal: alice\ncredential: ${key.credentialId}\npublic-key: ${pending.statement.match(/public-key: (sha256:[0-9a-f]{64})/)![1]}\nrp: localhost\n`,
    );
    expect(pending.signWith).toEqual([
      expect.stringMatching(/^alice namespaces="lunafleet-approval" ssh-ed25519 /),
    ]);

    const byBob = await failure(
      as("alice").call("POST", `/v1/webauthn/registrations/${pending.id}/complete`, {
        signature: sshKeygenSign(demoKey(keyDir, "bob").path, pending.statement),
      }),
    );
    expect(byBob).toMatchObject({
      status: 400,
      message: expect.stringMatching(/registered to 'bob', not 'alice'/),
    });
    const bobCompletes = await failure(
      as("bob").call("POST", `/v1/webauthn/registrations/${pending.id}/complete`, {
        signature: sshKeygenSign(demoKey(keyDir, "bob").path, pending.statement),
      }),
    );
    expect(bobCompletes).toMatchObject({ status: 403, message: expect.stringMatching(/alice's; only they/) });
    expect(await as("alice").call("GET", "/v1/webauthn/credentials")).toEqual([]);

    const signature = sshKeygenSign(demoKey(keyDir, "alice").path, pending.statement);
    const done = await as("alice").call<{ counts: boolean; principal: string }>(
      "POST",
      `/v1/webauthn/registrations/${pending.id}/complete`,
      { signature },
    );
    expect(done).toMatchObject({ principal: "alice", counts: true, credentialId: key.credentialId });
    expect(await as("alice").call("GET", "/v1/webauthn/credentials")).toMatchObject([
      { credentialId: key.credentialId, counts: true },
    ]);
    // The record an auditor checks offline: alice's registered key signed exactly this statement.
    const registered = (await records()).find((r) => r.data.event === "credential-registered")!;
    expect(registered.actor).toBe("alice");
    expect(registered.data).toMatchObject({ principal: "alice", key: `webauthn:${key.credentialId}` });
    expect(
      sshKeygenVerify(
        `alice namespaces="lunafleet-approval" ${line("alice")}\n`,
        "alice",
        registered.data.signature as string,
        registered.data.statement as string,
      ),
    ).toBe(true);
    expect((await records()).filter((r) => r.data.event === "credential-refused")).toHaveLength(1);
  });

  it("needs a challenge the daemon issued to this principal, used once, on the console's origin", async () => {
    const key = new SoftWebAuthn();
    // Nothing begun: a made-up challenge is not one.
    const unbegun = await failure(
      as("bob").call("POST", "/v1/webauthn/registrations", {
        response: key.create("bm90LWlzc3VlZC1ieS10aGUtZGFlbW9u", origin()),
      }),
    );
    expect(unbegun).toMatchObject({
      status: 409,
      message: expect.stringMatching(/no registration was begun/),
    });
    const elsewhere = await failure(begin("bob", key, "https://evil.example"));
    expect(elsewhere).toMatchObject({ status: 400, message: expect.stringMatching(/not the console/) });
    // The challenge was consumed by that attempt: the same answer again finds none.
    const { options } = await as("bob").call<{ options: { challenge: string } }>(
      "POST",
      "/v1/webauthn/registrations/options",
    );
    const response = key.create(options.challenge, origin());
    await as("bob").call("POST", "/v1/webauthn/registrations", { response });
    expect(await failure(as("bob").call("POST", "/v1/webauthn/registrations", { response }))).toMatchObject({
      status: 409,
    });
  });

  it("is revoked by its owner or an admin, never by another approver", async () => {
    const [mine] = await as("alice").call<{ credentialId: string }[]>("GET", "/v1/webauthn/credentials");
    const path = `/v1/webauthn/credentials/${mine!.credentialId}`;
    expect(await failure(as("bob").call("DELETE", path))).toMatchObject({ status: 403 });
    expect(await failure(as("alice").call("GET", "/v1/webauthn/credentials/all"))).toMatchObject({
      status: 403,
    });
    expect(await as("dana").call("GET", "/v1/webauthn/credentials/all")).toHaveLength(1);
    expect(await as("dana").call("DELETE", path)).toEqual({
      credentialId: mine!.credentialId,
      revoked: true,
    });
    expect(await as("alice").call("GET", "/v1/webauthn/credentials")).toEqual([]);
    expect((await records()).at(-2)?.data).toMatchObject({ event: "credential-revoked", principal: "alice" });
  });
});
