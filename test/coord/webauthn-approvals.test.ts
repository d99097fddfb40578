// WebAuthn approvals below the browser, against a real Redis and the demo fleet's registry: a credential counts only
// when its owner's registered SSH key vouches for it; an assertion counts only over exactly the statement, from the
// console's origin, user-verified, with a moving counter; it is counted by the same rules as SSH signatures (distinct
// principals and keys, never the requester) and re-verified by the worker's check at the moment of acting — where a
// revoked credential or one written into Redis by hand no longer counts.
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { loadFleet } from "../../src/config/load.ts";
import {
  ApprovalRefused,
  approvalState,
  approvalStatement,
  approve,
  requestApproval,
} from "../../src/coord/approvals.ts";
import {
  checkGrantedApprovals,
  signableStatement,
  sshApprovalVerifier,
} from "../../src/coord/signed-approvals.ts";
import {
  CREDENTIALS_KEY,
  listCredentials,
  loadApproverKeys,
  recordCounter,
  removeCredential,
  storeCredential,
} from "../../src/coord/webauthn-credentials.ts";
import { parseSshSignature } from "../../src/signing/sshsig.ts";
import {
  credentialIdOf,
  registrationStatement,
  type WebAuthnCredentialRecord,
  webauthnKeyId,
} from "../../src/signing/webauthn.ts";
import { withRedis } from "../helpers/redis.ts";
import { SoftWebAuthn } from "../helpers/soft-webauthn.ts";
import { demoKey, signedApprove, sshKeygenSign, tempDir } from "../helpers/ssh-signing.ts";

const fleet = loadFleet(join(import.meta.dirname, "../../config/demo.yaml"));
const ORIGIN = "https://localhost:9465";
const redisServer = await withRedis();
const redis = redisServer.client();
const keyDir = tempDir("lf-wa-");
const alice = new SoftWebAuthn();
const carol = new SoftWebAuthn();

function recordFor(
  who: "alice" | "bob" | "carol",
  cred: SoftWebAuthn,
  signer: "alice" | "bob" | "carol" = who,
): WebAuthnCredentialRecord {
  const publicKey = cred.publicKey;
  const base = { principal: who, credentialId: cred.credentialId, publicKey, rpId: "localhost" };
  const statement = registrationStatement(base);
  const signature = sshKeygenSign(demoKey(keyDir, signer).path, statement);
  return {
    ...base,
    counter: 0,
    statement,
    sshKeyFingerprint: parseSshSignature(signature).fingerprint,
    sshSignature: signature,
    registeredAt: new Date().toISOString(),
    registeredBy: who,
    label: `${who}'s key`,
  };
}

async function newRequest(jobId: string) {
  await requestApproval(redis, jobId, {
    runbook: "deprovision",
    requester: "olivia",
    planDigest: "a".repeat(64),
    device: "hsm-c1",
    serial: "700301",
    required: 2,
    expiresMinutes: 60,
  });
  const state = (await approvalState(redis, jobId))!;
  return { state, statement: signableStatement(approvalStatement(state)) };
}

async function verifier() {
  return sshApprovalVerifier(fleet, () => Date.now(), {
    keys: await loadApproverKeys(redis, fleet, { checkCounters: true }),
    onWebAuthnCounter: async (keyId, counter) => recordCounter(redis, credentialIdOf(keyId)!, counter),
  });
}

async function approveWith(
  jobId: string,
  who: string,
  assertion: ReturnType<SoftWebAuthn["assert"]>,
  statement: string,
) {
  return approve(
    redis,
    jobId,
    {
      principal: who,
      confirmation: "700301",
      proof: {
        method: "webauthn",
        keyFingerprint: webauthnKeyId(assertion.credentialId),
        statement,
        signature: assertion.signature,
        webauthn: {
          authenticatorData: assertion.authenticatorData,
          clientDataJSON: assertion.clientDataJSON,
        },
        submittedBy: who,
      },
    },
    { verifier: await verifier() },
  );
}

const facts = (jobId: string) => ({
  jobId,
  runbook: "deprovision",
  planDigest: "a".repeat(64),
  requester: "olivia",
});

beforeAll(async () => {
  await storeCredential(redis, recordFor("alice", alice), "none-pending-id0");
  await storeCredential(redis, recordFor("carol", carol), "none-pending-id1");
});

describe("which credentials count", () => {
  it("one vouched for by its owner's registered SSH key counts; the registry names its owner", async () => {
    const keys = await loadApproverKeys(redis, fleet, { checkCounters: true });
    expect(keys.get(webauthnKeyId(alice.credentialId))?.principal).toBe("alice");
    expect(keys.webauthnCredentials("carol").map((c) => c.credentialId)).toEqual([carol.credentialId]);
    expect(keys.setAside).toEqual([]);
  });

  it("one vouched for by another principal's key, or written into Redis with a made-up signature, counts for nobody", async () => {
    const mallory = new SoftWebAuthn();
    const byBob = recordFor("alice", mallory, "bob");
    const forged = { ...recordFor("alice", new SoftWebAuthn()), sshSignature: byBob.sshSignature };
    const other = new SoftWebAuthn("lunafleet.example.com");
    const elsewhere = { ...recordFor("alice", other), rpId: "lunafleet.example.com" };
    for (const r of [byBob, forged, elsewhere])
      await redis.hset(CREDENTIALS_KEY, r.credentialId, JSON.stringify(r));
    const keys = await loadApproverKeys(redis, fleet, { checkCounters: true });
    const why = new Map(keys.setAside.map((s) => [s.credentialId, s.reason]));
    expect(why.get(byBob.credentialId)).toMatch(/registered to 'bob', not 'alice'/);
    expect(why.get(forged.credentialId)).toMatch(/registration (statement|signature)/);
    expect(why.get(elsewhere.credentialId)).toMatch(/relying party 'lunafleet.example.com'/);
    for (const r of [byBob, forged, elsewhere])
      expect(keys.get(webauthnKeyId(r.credentialId))).toBeUndefined();

    const { statement } = await newRequest("deprovision-wa-forged");
    const err = await approveWith(
      "deprovision-wa-forged",
      "alice",
      mallory.assert(statement, ORIGIN),
      statement,
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApprovalRefused);
    expect((err as ApprovalRefused).reason).toBe("unregistered-key");
    for (const r of [byBob, forged, elsewhere]) await removeCredential(redis, r.credentialId);
  });
});

describe("approving with a security key", () => {
  it("a WebAuthn and an SSH approval by two principals grant the request; the worker's check verifies both again", async () => {
    const jobId = "deprovision-wa-1";
    const { statement } = await newRequest(jobId);
    const first = await approveWith(jobId, "alice", alice.assert(statement, ORIGIN), statement);
    expect(first.status).toBe("awaiting-approval");
    expect(first.approvals[0]!.proof).toMatchObject({
      method: "webauthn",
      keyFingerprint: webauthnKeyId(alice.credentialId),
    });
    const second = await signedApprove(redis, jobId, "bob", fleet);
    expect(second.status).toBe("approved");
    // The counter the authenticator reported was stored.
    expect((await listCredentials(redis)).find((c) => c.credentialId === alice.credentialId)?.counter).toBe(
      alice.credential.counter,
    );
    const atAct = await checkGrantedApprovals(
      second,
      facts(jobId),
      fleet,
      2,
      Date.now(),
      await loadApproverKeys(redis, fleet, { checkCounters: false }),
    );
    expect(atAct).toMatchObject({ ok: true, principals: ["alice", "bob"] });
    // With SSH keys only (no credential registry), alice's approval does not verify: nothing counts by itself.
    expect(await checkGrantedApprovals(second, facts(jobId), fleet, 2)).toMatchObject({ ok: false });
  });

  const refusals: [string, (statement: string) => ReturnType<SoftWebAuthn["assert"]>, string][] = [
    ["made on another origin", (s) => alice.assert(s, "https://evil.example"), "bad-signature"],
    [
      "without user verification (no PIN)",
      (s) => alice.assert(s, ORIGIN, { userVerified: false }),
      "bad-signature",
    ],
    [
      "over another job's statement",
      (s) => alice.assert(s.replace(/job: .*/, "job: deprovision-other"), ORIGIN),
      "bad-signature",
    ],
    [
      "with a counter that did not move (a cloned key, a replay)",
      (s) => alice.assert(s, ORIGIN, { counter: 1 }),
      "bad-signature",
    ],
  ];
  for (const [what, make, code] of refusals)
    it(`refuses an assertion ${what} (${code}), recorded on the request`, async () => {
      const jobId = `deprovision-wa-r${refusals.findIndex((r) => r[0] === what)}`;
      const { statement } = await newRequest(jobId);
      const err = await approveWith(jobId, "alice", make(statement), statement).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ApprovalRefused);
      expect((err as ApprovalRefused).reason).toBe(code);
      const state = (await approvalState(redis, jobId))!;
      expect(state.approvals).toEqual([]);
      expect(state.refusals.map((r) => r.reason)).toEqual([code]);
    });

  it("the requester's security key never counts; one principal with an SSH key and a security key counts once", async () => {
    const jobId = "deprovision-wa-self";
    await requestApproval(redis, jobId, {
      runbook: "deprovision",
      requester: "carol",
      planDigest: "a".repeat(64),
      device: "hsm-c1",
      serial: "700301",
      required: 2,
      expiresMinutes: 60,
    });
    const statement = signableStatement(approvalStatement((await approvalState(redis, jobId))!));
    const self = await approveWith(jobId, "carol", carol.assert(statement, ORIGIN), statement).catch(
      (e: unknown) => e,
    );
    expect((self as ApprovalRefused).reason).toBe("self-approval");

    const twice = "deprovision-wa-twice";
    const r = await newRequest(twice);
    await signedApprove(redis, twice, "alice", fleet);
    const again = await approveWith(twice, "alice", alice.assert(r.statement, ORIGIN), r.statement).catch(
      (e: unknown) => e,
    );
    expect((again as ApprovalRefused).reason).toBe("duplicate-principal");
  });

  it("a credential revoked after it approved stops counting at the moment of acting", async () => {
    const jobId = "deprovision-wa-revoked";
    const { statement } = await newRequest(jobId);
    await approveWith(jobId, "carol", carol.assert(statement, ORIGIN), statement);
    const granted = await signedApprove(redis, jobId, "bob", fleet);
    expect(granted.status).toBe("approved");
    await removeCredential(redis, carol.credentialId);
    const atAct = await checkGrantedApprovals(
      granted,
      facts(jobId),
      fleet,
      2,
      Date.now(),
      await loadApproverKeys(redis, fleet, { checkCounters: false }),
    );
    expect(atAct).toMatchObject({ ok: false });
    expect(atAct.ok ? [] : atAct.refused.map((x) => [x.principal, x.code])).toEqual([
      ["carol", "unregistered-key"],
    ]);
  });
});
