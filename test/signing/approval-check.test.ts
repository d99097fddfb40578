// Counting signed approvals (src/signing/approval-check.ts), with signatures made by real ssh-keygen -Y sign: each
// rule on its own — unsigned, unregistered key, a key claimed under another name, a statement for another job,
// serial or plan, an expired statement, the requester, the same principal twice, the same key twice, the allow-list.
import { rmSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { identitySchema } from "../../src/config/identity-schema.ts";
import {
  type ApprovalExpectation,
  ApproverKeys,
  checkApproval,
  countApprovals,
  KeyRegistryError,
  type SignedApproval,
} from "../../src/signing/approval-check.ts";
import { parseSshPublicKey } from "../../src/signing/ssh-key.ts";
import {
  type JobStatement,
  parseStatement,
  renderStatement,
  statementDigest,
} from "../../src/signing/statement.ts";
import { generateSshKey, SoftwareSecurityKey, sshKeygenSign, tempDir } from "../helpers/ssh-signing.ts";

const dir = tempDir();
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const alice = generateSshKey(dir, "alice");
const bob = generateSshKey(dir, "bob");
const mallory = generateSshKey(dir, "mallory");
const carolSk = new SoftwareSecurityKey("ed25519");
const identity = identitySchema.parse({
  principals: [
    { name: "alice", roles: ["approver"], approvalKeys: [alice.publicLine] },
    { name: "bob", roles: ["approver"], approvalKeys: [bob.publicLine] },
    { name: "carol", roles: ["approver"], approvalKeys: [carolSk.publicLine()] },
    { name: "ops", roles: ["operator"] },
  ],
});
const keys = new ApproverKeys(identity);
const NOW = Date.parse("2026-12-04T12:00:00Z");
const base: JobStatement = {
  kind: "job",
  decision: "approve",
  job: "deprovision-abc-1",
  runbook: "deprovision",
  device: "hsm-c1",
  serial: "700301",
  plan: `sha256:${"a".repeat(64)}`,
  requester: "ops",
  deadline: "2026-12-04T13:00:00.000Z",
};
const statement = renderStatement(base);
const expectation: ApprovalExpectation = { statement, requester: "ops", now: NOW };

function signed(who: "alice" | "bob" | "mallory", text = statement, claim: string = who): SignedApproval {
  const k = { alice, bob, mallory }[who];
  return {
    method: "sshsig",
    principal: claim,
    keyFingerprint: parseSshPublicKey(k.publicLine).fingerprint,
    statement: text,
    signature: sshKeygenSign(k.path, text),
  };
}

describe("approval statements", () => {
  it("renders one field per line in a fixed order and parses back only its canonical form", () => {
    expect(statement).toBe(
      [
        "lunafleet-approval v1",
        "kind: job",
        "decision: approve",
        "job: deprovision-abc-1",
        "runbook: deprovision",
        "device: hsm-c1",
        "serial: 700301",
        `plan: sha256:${"a".repeat(64)}`,
        "requester: ops",
        "deadline: 2026-12-04T13:00:00.000Z",
        "",
      ].join("\n"),
    );
    expect(parseStatement(statement)).toEqual(base);
    expect(() => parseStatement(statement.replace("job: ", "job:  "))).toThrow(/canonical|printable/);
    expect(() => renderStatement({ ...base, device: "hsm-c1\nserial: 1" })).toThrow(/one printable line/);
    expect(statementDigest(statement)).toMatch(/^sha256:[0-9a-f]{64}$/);
  });
});

describe("counting signed approvals", () => {
  it("two registered principals with distinct keys count; the order is kept", async () => {
    const c = await countApprovals([signed("alice"), signed("bob")], keys, expectation);
    expect(c.refused).toEqual([]);
    expect(c.counted.map((x) => x.principal)).toEqual(["alice", "bob"]);
  });

  it("a FIDO security-key signature counts like any other", async () => {
    const a: SignedApproval = {
      method: "sshsig",
      principal: "carol",
      keyFingerprint: parseSshPublicKey(carolSk.publicLine()).fingerprint,
      statement,
      signature: carolSk.signSshsig(statement),
    };
    expect(await checkApproval(a, keys, expectation)).toMatchObject({ ok: true, principal: "carol" });
  });

  const cases: [string, () => Partial<SignedApproval>, string, Partial<typeof expectation>?][] = [
    ["unsigned (--as alice --confirm)", () => ({ principal: "alice" }), "unsigned"],
    ["an unregistered key", () => signed("mallory"), "unregistered-key"],
    ["alice's key under bob's name", () => signed("alice", statement, "bob"), "key-of-another-principal"],
    [
      "a statement for another job",
      () => signed("alice", renderStatement({ ...base, job: "deprovision-x" })),
      "statement-mismatch",
    ],
    [
      "a statement for another serial",
      () => signed("alice", renderStatement({ ...base, serial: "700101" })),
      "statement-mismatch",
    ],
    [
      "a statement for another plan",
      () => signed("alice", renderStatement({ ...base, plan: `sha256:${"b".repeat(64)}` })),
      "statement-mismatch",
    ],
    [
      "a statement signed, then the text changed",
      () => ({ ...signed("alice"), statement: statement.replace("700301", "700302") }),
      "bad-signature",
    ],
    ["an expired statement", () => signed("alice"), "expired", { now: Date.parse(base.deadline) }],
    ["the requester's own approval", () => signed("alice"), "self-approval", { requester: "Alice" }],
    [
      "a principal not on the allow-list",
      () => signed("alice"),
      "principal-not-allowed",
      { allowed: ["bob"] },
    ],
  ];
  for (const [what, make, code, override] of cases)
    it(`refuses ${what} (${code})`, async () => {
      const verdict = await checkApproval(make(), keys, { ...expectation, ...override });
      expect(verdict).toMatchObject({ ok: false, code });
    });

  it("the same principal twice, or the same key twice, counts once", async () => {
    const first = signed("alice");
    const c = await countApprovals([first, signed("alice"), first], keys, expectation);
    expect(c.counted.map((x) => x.principal)).toEqual(["alice"]);
    expect(c.refused.map((r) => r.code)).toEqual(["duplicate-principal", "duplicate-principal"]);
  });

  it("the statement-mismatch reason names the fields that differ", async () => {
    const v = await checkApproval(
      signed("alice", renderStatement({ ...base, serial: "700101" })),
      keys,
      expectation,
    );
    expect(v).toMatchObject({
      ok: false,
      reason: expect.stringContaining("serial '700101' (expected '700301')"),
    });
  });
});

describe("the key registry", () => {
  it("refuses one key registered under two names (fleet file check and registry)", () => {
    const twice = {
      principals: [
        { name: "alice", approvalKeys: [alice.publicLine] },
        { name: "alice2", approvalKeys: [alice.publicLine] },
      ],
    };
    const parsed = identitySchema.parse(twice);
    expect(() => new ApproverKeys(parsed)).toThrow(KeyRegistryError);
    expect(keys.allowedSigners()).toContain(`alice namespaces="lunafleet-approval" ssh-ed25519 `);
  });
});
