// The approval statement: the exact text an approver signs, saying what will happen. One field per line, in a fixed
// order per kind, so the same facts always give the same bytes (the worker rebuilds the statement from its own
// knowledge at the moment it acts and compares byte for byte) and a person reading it before signing sees plainly
// what they approve:
//
//   lunafleet-approval v1
//   kind: job
//   decision: approve
//   job: deprovision-mk3x9a-4f2c
//   runbook: deprovision
//   device: hsm-c1
//   serial: 700301
//   plan: sha256:<hex of the canonical plan>
//   requester: alice
//   deadline: 2026-12-04T12:30:00.000Z
//
// The same bytes are what a WebAuthn assertion will sign (issue 16): its challenge is statementDigest(), so a browser
// approval is checked against the same statement and counted by the same rules (approval-check.ts).
import { createHash } from "node:crypto";

const STATEMENT_HEADER = "lunafleet-approval v1";
/** The SSH signature namespace of approvals (`ssh-keygen -Y sign -n lunafleet-approval`). */
export const APPROVAL_NAMESPACE = "lunafleet-approval";

export interface JobStatement {
  kind: "job";
  decision: "approve" | "reject";
  job: string;
  runbook: string;
  device: string;
  serial: string;
  /** `sha256:<hex>` of the job's canonical plan (planDigest). */
  plan: string;
  requester: string;
  /** ISO 8601: after it the approval no longer counts. */
  deadline: string;
}

export interface GuardReleaseStatement {
  kind: "guard-release";
  decision: "release";
  /** The release request's id (also the approval's subject). */
  request: string;
  device: string;
  serial: string;
  /** `<role>` or `<role>@<partition>`. */
  credential: string;
  /** The job whose failure quarantined the credential, or "-". */
  quarantinedBy: string;
  reason: string;
  requester: string;
  deadline: string;
}

/**
 * A WebAuthn credential (security key, passkey) vouched for by its owner's registered SSH approval key: what makes a
 * browser credential count as that principal's (src/signing/webauthn.ts). No deadline: it stands until the credential
 * is revoked or the SSH key leaves the fleet file; it names one public key, so a copy of it registers nothing else.
 */
export interface WebAuthnCredentialStatement {
  kind: "webauthn-credential";
  decision: "register";
  principal: string;
  /** The credential id (base64url), as the authenticator made it. */
  credential: string;
  /** `sha256:<hex>` of the credential's COSE public key. */
  publicKey: string;
  /** The relying party id the credential is scoped to (the console's host name). */
  rp: string;
}

export type ApprovalStatement = JobStatement | GuardReleaseStatement | WebAuthnCredentialStatement;

const ORDER: {
  [K in ApprovalStatement["kind"]]: readonly (keyof Extract<ApprovalStatement, { kind: K }>)[];
} = {
  job: ["kind", "decision", "job", "runbook", "device", "serial", "plan", "requester", "deadline"],
  "guard-release": [
    "kind",
    "decision",
    "request",
    "device",
    "serial",
    "credential",
    "quarantinedBy",
    "reason",
    "requester",
    "deadline",
  ],
  "webauthn-credential": ["kind", "decision", "principal", "credential", "publicKey", "rp"],
};

class StatementError extends Error {
  override name = "StatementError";
}

const LABEL: Record<string, string> = { quarantinedBy: "quarantined-by", publicKey: "public-key" };
const FIELD_OF: Record<string, string> = { "quarantined-by": "quarantinedBy", "public-key": "publicKey" };

/** The statement's text (LF line ends, final newline). Values must be one printable line each. */
export function renderStatement(s: ApprovalStatement): string {
  const lines = [STATEMENT_HEADER];
  for (const field of ORDER[s.kind] as readonly string[]) {
    const value = (s as unknown as Record<string, unknown>)[field];
    if (typeof value !== "string" || value.length === 0)
      throw new StatementError(`statement field '${field}' is missing`);
    if (!/^[\x20-\x7e\u00a0-\uffff]+$/.test(value) || value !== value.trim())
      throw new StatementError(`statement field '${field}' must be one printable line without edge spaces`);
    lines.push(`${LABEL[field] ?? field}: ${value}`);
  }
  return `${lines.join("\n")}\n`;
}

/** Parse a statement's text back (for display and for auditors); refuses anything not in canonical form. */
export function parseStatement(text: string): ApprovalStatement {
  const lines = text.split("\n");
  if (lines.pop() !== "") throw new StatementError("a statement ends with a newline");
  if (lines[0] !== STATEMENT_HEADER)
    throw new StatementError(`a statement starts with '${STATEMENT_HEADER}'`);
  const out: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const m = /^([a-z-]+): (.+)$/.exec(line);
    if (!m)
      throw new StatementError(`statement line not 'field: value': ${JSON.stringify(line.slice(0, 80))}`);
    out[FIELD_OF[m[1]!] ?? m[1]!] = m[2]!;
  }
  const kind = out.kind;
  if (kind !== "job" && kind !== "guard-release" && kind !== "webauthn-credential")
    throw new StatementError(`unknown statement kind '${kind}'`);
  const statement = out as unknown as ApprovalStatement;
  if (renderStatement(statement) !== text) throw new StatementError("statement is not in canonical form");
  return statement;
}

/** `sha256:<hex>` of the statement text: what a WebAuthn challenge carries, and a short name for it in listings. */
export function statementDigest(text: string): string {
  return `sha256:${createHash("sha256").update(text, "utf8").digest("hex")}`;
}
