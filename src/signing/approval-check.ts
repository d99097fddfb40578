// Whether signed approvals count: the one place that decides, used when an approval is submitted (API, CLI) and
// again by the worker at the moment it acts (zeroize, certificate regeneration, guard release), against the key
// registry of the fleet file it runs (the reviewed root of trust), never against what Redis says about keys.
//
// An approval counts only if ALL hold:
//   - it is signed (an SSH signature today; a WebAuthn assertion later goes through the same countApprovals rules);
//   - the key is registered in the fleet file, to the principal the approval names;
//   - the signature verifies over exactly the statement this action expects (same job, runbook, device, serial, plan
//     digest, requester, deadline and decision: anything else was signed for something else);
//   - the statement's deadline has not passed;
//   - the signer is not the requester;
//   - no earlier counted approval has the same principal or the same key.
import type { IdentityConfig } from "../config/identity-schema.ts";
import { parseSshPublicKey, type SshPublicKey } from "./ssh-key.ts";
import { verifySshSignature } from "./sshsig.ts";
import { APPROVAL_NAMESPACE, parseStatement } from "./statement.ts";

export type SignatureMethod = "sshsig";

/** An approval as submitted and stored: what was signed, by which key, and who sent it. */
export interface SignedApproval {
  method: SignatureMethod;
  /** The principal the signer claims to be (must own the key). */
  principal: string;
  /** SHA256 fingerprint of the signing key. */
  keyFingerprint: string;
  /** The exact statement text that was signed. */
  statement: string;
  /** Armored SSH signature. */
  signature: string;
  /** The authenticated principal who submitted it (may differ from the signer: a workflow can relay it). */
  submittedBy?: string;
}

export type ApprovalRefusalCode =
  | "unsigned"
  | "unregistered-key"
  | "key-of-another-principal"
  | "bad-signature"
  | "statement-mismatch"
  | "expired"
  | "self-approval"
  | "duplicate-principal"
  | "duplicate-key"
  | "principal-not-allowed";

export interface RegisteredKey {
  principal: string;
  key: SshPublicKey;
}

export class KeyRegistryError extends Error {
  override name = "KeyRegistryError";
}

/** Approver keys by fingerprint, from the fleet's identity section. One key under two names is refused outright. */
export class ApproverKeys {
  readonly #byFingerprint = new Map<string, RegisteredKey>();

  constructor(identity: Pick<IdentityConfig, "principals">) {
    for (const p of identity.principals)
      for (const line of p.approvalKeys) {
        let key: SshPublicKey;
        try {
          key = parseSshPublicKey(line);
        } catch (err) {
          throw new KeyRegistryError(`identity.principals '${p.name}': ${(err as Error).message}`);
        }
        const other = this.#byFingerprint.get(key.fingerprint);
        if (other && other.principal !== p.name)
          throw new KeyRegistryError(
            `key ${key.fingerprint} is registered to both '${other.principal}' and '${p.name}': one key cannot approve under two names`,
          );
        this.#byFingerprint.set(key.fingerprint, { principal: p.name, key });
      }
  }

  get(fingerprint: string): RegisteredKey | undefined {
    return this.#byFingerprint.get(fingerprint);
  }

  /** Every registered key as an allowed_signers line (`<principal> namespaces="…" <key>`), for ssh-keygen -Y verify. */
  allowedSigners(): string {
    return [...this.#byFingerprint.values()]
      .map(
        (r) =>
          `${r.principal} namespaces="${APPROVAL_NAMESPACE}" ${r.key.type} ${r.key.blob.toString("base64")}`,
      )
      .join("\n")
      .concat(this.#byFingerprint.size > 0 ? "\n" : "");
  }

  get size(): number {
    return this.#byFingerprint.size;
  }
}

export interface ApprovalExpectation {
  /** The statement this action expects, rebuilt from the checker's own facts. */
  statement: string;
  /** Who asked for the action: their approval never counts. */
  requester: string;
  /** The fleet's allow-list (approvals.principals), if any. */
  allowed?: readonly string[] | undefined;
  now: number;
}

export type ApprovalVerdict =
  | { ok: true; principal: string; keyFingerprint: string }
  | { ok: false; code: ApprovalRefusalCode; reason: string };

const same = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

/** Check one approval on its own (signature, registry, statement, deadline, requester). */
export function checkApproval(
  approval: Partial<SignedApproval>,
  keys: ApproverKeys,
  expect: ApprovalExpectation,
): ApprovalVerdict {
  const refuse = (code: ApprovalRefusalCode, reason: string): ApprovalVerdict => ({
    ok: false,
    code,
    reason,
  });
  if (approval.method !== "sshsig" || !approval.signature || !approval.statement || !approval.keyFingerprint)
    return refuse(
      "unsigned",
      "an approval counts only as a signature by a registered key; this one is unsigned",
    );
  const registered = keys.get(approval.keyFingerprint);
  if (!registered)
    return refuse("unregistered-key", `key ${approval.keyFingerprint} is not registered in the fleet file`);
  if (!approval.principal || !same(registered.principal, approval.principal))
    return refuse(
      "key-of-another-principal",
      `key ${approval.keyFingerprint} is registered to '${registered.principal}', not '${approval.principal ?? "?"}'`,
    );
  const sig = verifySshSignature(
    approval.signature,
    approval.statement,
    APPROVAL_NAMESPACE,
    registered.key.blob,
  );
  if (!sig.ok) return refuse("bad-signature", sig.reason);
  if (approval.statement !== expect.statement)
    return refuse("statement-mismatch", describeMismatch(approval.statement, expect.statement));
  const deadline = Date.parse(parseStatement(expect.statement).deadline);
  if (!(expect.now < deadline)) return refuse("expired", `the statement's deadline passed`);
  if (same(registered.principal, expect.requester))
    return refuse(
      "self-approval",
      `${registered.principal} requested this action; the requester's approval never counts`,
    );
  if (expect.allowed && !expect.allowed.some((p) => same(p, registered.principal)))
    return refuse(
      "principal-not-allowed",
      `${registered.principal} is not on the fleet's approvals allow-list`,
    );
  return { ok: true, principal: registered.principal, keyFingerprint: registered.key.fingerprint };
}

export interface ApprovalCount {
  /** Counted approvals, in order: distinct principals, distinct keys. */
  counted: { principal: string; keyFingerprint: string; index: number }[];
  refused: { index: number; principal: string; code: ApprovalRefusalCode; reason: string }[];
}

/** Count approvals in order: each must pass checkApproval and add a new principal AND a new key. */
export function countApprovals(
  approvals: readonly Partial<SignedApproval>[],
  keys: ApproverKeys,
  expect: ApprovalExpectation,
): ApprovalCount {
  const out: ApprovalCount = { counted: [], refused: [] };
  approvals.forEach((a, index) => {
    const verdict = checkApproval(a, keys, expect);
    const who = a.principal ?? "?";
    if (!verdict.ok) {
      out.refused.push({ index, principal: who, code: verdict.code, reason: verdict.reason });
      return;
    }
    if (out.counted.some((c) => same(c.principal, verdict.principal))) {
      out.refused.push({
        index,
        principal: who,
        code: "duplicate-principal",
        reason: `${verdict.principal} has already approved; one principal counts once`,
      });
      return;
    }
    if (out.counted.some((c) => c.keyFingerprint === verdict.keyFingerprint)) {
      out.refused.push({
        index,
        principal: who,
        code: "duplicate-key",
        reason: `key ${verdict.keyFingerprint} has already approved; one key counts once`,
      });
      return;
    }
    out.counted.push({ principal: verdict.principal, keyFingerprint: verdict.keyFingerprint, index });
  });
  return out;
}

/** Which statement fields differ (never the whole texts: short and to the point in an error and in evidence). */
function describeMismatch(signed: string, expected: string): string {
  const fields = (t: string) =>
    new Map(
      t
        .split("\n")
        .map((l) => /^([a-z-]+): (.*)$/.exec(l))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => [m[1]!, m[2]!]),
    );
  const a = fields(signed);
  const b = fields(expected);
  const diff = [...new Set([...a.keys(), ...b.keys()])].filter((k) => a.get(k) !== b.get(k));
  return `the signed statement is for something else: ${diff.map((k) => `${k} '${a.get(k) ?? "-"}' (expected '${b.get(k) ?? "-"}')`).join(", ") || "different text"}`;
}
