// Whether signed approvals count: the one place that decides, used when an approval is submitted (API, CLI) and
// again by the worker at the moment it acts (zeroize, certificate regeneration, guard release), against the key
// registry of the fleet file it runs (the reviewed root of trust), never against what Redis says about keys.
//
// An approval counts only if ALL hold:
//   - it is signed: an SSH signature, or a WebAuthn assertion whose challenge is the statement's digest (webauthn.ts);
//   - the key is registered in the fleet file, to the principal the approval names (a WebAuthn credential: vouched
//     for by a signature of one of that principal's registered SSH keys);
//   - the signature verifies over exactly the statement this action expects (same job, runbook, device, serial, plan
//     digest, requester, deadline and decision: anything else was signed for something else);
//   - the statement's deadline has not passed;
//   - the signer is not the requester;
//   - no earlier counted approval has the same principal or the same key.
import type { IdentityConfig } from "../config/identity-schema.ts";
import { parseSshPublicKey, type SshPublicKey } from "./ssh-key.ts";
import { verifySshSignature } from "./sshsig.ts";
import { APPROVAL_NAMESPACE, parseStatement } from "./statement.ts";
import {
  registrationStatement,
  verifyAssertion,
  type WebAuthnAssertion,
  type WebAuthnCredentialRecord,
  type WebAuthnRelyingParty,
  webauthnKeyId,
} from "./webauthn.ts";

export type SignatureMethod = "sshsig" | "webauthn";

/** An approval as submitted and stored: what was signed, by which key, and who sent it. */
export interface SignedApproval {
  method: SignatureMethod;
  /** The principal the signer claims to be (must own the key). */
  principal: string;
  /** SHA256 fingerprint of the signing key; a WebAuthn credential's is `webauthn:<credential id>`. */
  keyFingerprint: string;
  /** The exact statement text that was signed. */
  statement: string;
  /** Armored SSH signature, or the WebAuthn assertion's signature (base64url). */
  signature: string;
  /** A WebAuthn assertion's authenticator data and client data (method webauthn). */
  webauthn?: WebAuthnAssertion;
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

export type RegisteredKey =
  | { principal: string; key: SshPublicKey; webauthn?: undefined }
  | { principal: string; webauthn: WebAuthnCredentialRecord; key?: undefined };

/** WebAuthn credentials offered to the registry (from Redis: claims until their SSH signature is checked). */
export interface WebAuthnRegistry {
  credentials: readonly WebAuthnCredentialRecord[];
  /** Null: WebAuthn is not configured (a real fleet without console.url); every credential is set aside. */
  rp: WebAuthnRelyingParty | null;
  /**
   * Refuse an assertion whose signature counter did not move past the stored one. True when an approval is handed
   * in; false when the worker re-verifies assertions already counted (their counter is the stored one by then).
   */
  checkCounters: boolean;
}

export class KeyRegistryError extends Error {
  override name = "KeyRegistryError";
}

/**
 * Approver keys by fingerprint, from the fleet's identity section, and the WebAuthn credentials those keys vouch for.
 * One key under two names is refused outright; a credential whose registration does not verify is set aside (with
 * the reason, for the console) and counts for nobody.
 */
export class ApproverKeys {
  readonly #byFingerprint = new Map<string, RegisteredKey>();
  /** Credentials offered but not counted, and why. */
  readonly setAside: { credentialId: string; principal: string; reason: string }[] = [];
  readonly relyingParty: WebAuthnRelyingParty | null;
  readonly checkCounters: boolean;

  constructor(identity: Pick<IdentityConfig, "principals">, webauthn?: WebAuthnRegistry) {
    this.relyingParty = webauthn?.rp ?? null;
    this.checkCounters = webauthn?.checkCounters ?? true;
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
    for (const c of webauthn?.credentials ?? []) {
      const reason = this.#vouch(c);
      if (reason) this.setAside.push({ credentialId: c.credentialId, principal: c.principal, reason });
      else this.#byFingerprint.set(webauthnKeyId(c.credentialId), { principal: c.principal, webauthn: c });
    }
  }

  /** Why a credential does not count, or null when one of its owner's registered SSH keys vouches for it. */
  #vouch(c: WebAuthnCredentialRecord): string | null {
    if (!this.relyingParty) return "WebAuthn is not configured for this fleet (console.url)";
    if (c.rpId !== this.relyingParty.id)
      return `registered for relying party '${c.rpId}', the console's is '${this.relyingParty.id}'`;
    const voucher = this.#byFingerprint.get(c.sshKeyFingerprint);
    if (!voucher?.key)
      return `the key that vouched for it (${c.sshKeyFingerprint}) is not registered in the fleet file`;
    if (!same(voucher.principal, c.principal))
      return `the key that vouched for it is registered to '${voucher.principal}', not '${c.principal}'`;
    const expected = registrationStatement(c);
    if (c.statement !== expected) return "its registration statement does not name this credential";
    const sig = verifySshSignature(c.sshSignature, c.statement, APPROVAL_NAMESPACE, voucher.key.blob);
    if (!sig.ok) return `its registration signature does not verify: ${sig.reason}`;
    if (this.#byFingerprint.has(webauthnKeyId(c.credentialId))) return "listed twice";
    return null;
  }

  get(fingerprint: string): RegisteredKey | undefined {
    return this.#byFingerprint.get(fingerprint);
  }

  /** The WebAuthn credentials that count, by principal (for the console's security-key prompt). */
  webauthnCredentials(principal?: string): WebAuthnCredentialRecord[] {
    return [...this.#byFingerprint.values()].flatMap((r) =>
      r.webauthn && (!principal || same(r.principal, principal)) ? [r.webauthn] : [],
    );
  }

  /** Every registered key as an allowed_signers line (`<principal> namespaces="…" <key>`), for ssh-keygen -Y verify. */
  allowedSigners(): string {
    return [...this.#byFingerprint.values()]
      .flatMap((r) => (r.key ? [{ principal: r.principal, key: r.key }] : []))
      .map(
        (r) =>
          `${r.principal} namespaces="${APPROVAL_NAMESPACE}" ${r.key.type} ${r.key.blob.toString("base64")}`,
      )
      .join("\n")
      .concat([...this.#byFingerprint.values()].some((r) => r.key) ? "\n" : "");
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
  | { ok: true; principal: string; keyFingerprint: string; webauthnCounter?: number }
  | { ok: false; code: ApprovalRefusalCode; reason: string };

const same = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

/** Check one approval on its own (signature, registry, statement, deadline, requester). */
export async function checkApproval(
  approval: Partial<SignedApproval>,
  keys: ApproverKeys,
  expect: ApprovalExpectation,
): Promise<ApprovalVerdict> {
  const refuse = (code: ApprovalRefusalCode, reason: string): ApprovalVerdict => ({
    ok: false,
    code,
    reason,
  });
  if (
    (approval.method !== "sshsig" && approval.method !== "webauthn") ||
    !approval.signature ||
    !approval.statement ||
    !approval.keyFingerprint ||
    (approval.method === "webauthn" && !approval.webauthn)
  )
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
  let webauthnCounter: number | undefined;
  if (approval.method === "webauthn") {
    if (!registered.webauthn || !keys.relyingParty)
      return refuse("bad-signature", `${approval.keyFingerprint} is not a WebAuthn credential`);
    const check = await verifyAssertion(
      approval.webauthn!,
      approval.signature,
      registered.webauthn,
      keys.relyingParty,
      approval.statement,
      keys.checkCounters,
    );
    if (!check.ok) return refuse("bad-signature", check.reason);
    webauthnCounter = check.newCounter;
  } else {
    if (!registered.key) return refuse("bad-signature", `${approval.keyFingerprint} is not an SSH key`);
    const sig = verifySshSignature(
      approval.signature,
      approval.statement,
      APPROVAL_NAMESPACE,
      registered.key.blob,
    );
    if (!sig.ok) return refuse("bad-signature", sig.reason);
  }
  if (approval.statement !== expect.statement)
    return refuse("statement-mismatch", describeMismatch(approval.statement, expect.statement));
  const expected = parseStatement(expect.statement);
  if (expected.kind === "webauthn-credential")
    return refuse("statement-mismatch", "a credential registration is not an approval");
  const deadline = Date.parse(expected.deadline);
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
  return {
    ok: true,
    principal: registered.principal,
    keyFingerprint: approval.keyFingerprint,
    ...(webauthnCounter !== undefined ? { webauthnCounter } : {}),
  };
}

export interface ApprovalCount {
  /** Counted approvals, in order: distinct principals, distinct keys. */
  counted: { principal: string; keyFingerprint: string; index: number; webauthnCounter?: number }[];
  refused: { index: number; principal: string; code: ApprovalRefusalCode; reason: string }[];
}

/** Count approvals in order: each must pass checkApproval and add a new principal AND a new key. */
export async function countApprovals(
  approvals: readonly Partial<SignedApproval>[],
  keys: ApproverKeys,
  expect: ApprovalExpectation,
): Promise<ApprovalCount> {
  const out: ApprovalCount = { counted: [], refused: [] };
  for (const [index, a] of approvals.entries()) {
    const verdict = await checkApproval(a, keys, expect);
    const who = a.principal ?? "?";
    if (!verdict.ok) {
      out.refused.push({ index, principal: who, code: verdict.code, reason: verdict.reason });
      continue;
    }
    if (out.counted.some((c) => same(c.principal, verdict.principal))) {
      out.refused.push({
        index,
        principal: who,
        code: "duplicate-principal",
        reason: `${verdict.principal} has already approved; one principal counts once`,
      });
      continue;
    }
    if (out.counted.some((c) => c.keyFingerprint === verdict.keyFingerprint)) {
      out.refused.push({
        index,
        principal: who,
        code: "duplicate-key",
        reason: `key ${verdict.keyFingerprint} has already approved; one key counts once`,
      });
      continue;
    }
    out.counted.push({
      principal: verdict.principal,
      keyFingerprint: verdict.keyFingerprint,
      index,
      ...(verdict.webauthnCounter !== undefined ? { webauthnCounter: verdict.webauthnCounter } : {}),
    });
  }
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
