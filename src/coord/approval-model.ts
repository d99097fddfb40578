// What an approval is, as data: its states, the request a job makes, the statement an approver signs, the proof and
// the verifier that checks it, and the errors of the approvals store. The store's transitions are approvals.ts; its
// Lua scripts approval-scripts.ts.
import { NonRetryable } from "../errors/non-retryable.ts";

export type ApprovalStatus = "awaiting-approval" | "approved" | "rejected" | "expired" | "withdrawn";

export interface ApprovalEntry {
  principal: string;
  /** ISO time (Redis server clock). */
  at: string;
  /** What the principal typed; an approval is only counted when it equals the device serial. */
  confirmation: string;
  /** The signature that made it count (src/coord/signed-approvals.ts), kept so the worker re-verifies it. */
  proof?: ApprovalProof;
}

/**
 * A signed approval as stored: the statement, the signature (armored SSH, or a WebAuthn assertion's with its
 * authenticator and client data), the key (`webauthn:<credential id>` for a security key), who submitted it.
 */
export interface ApprovalProof {
  method: "sshsig" | "webauthn";
  keyFingerprint: string;
  statement: string;
  signature: string;
  webauthn?: { authenticatorData: string; clientDataJSON: string; userHandle?: string | undefined };
  submittedBy: string;
}

export interface ApprovalRefusal {
  principal: string;
  at: string;
  reason: ApprovalRefusalReason;
}

export type ApprovalRefusalReason =
  | "wrong-confirmation"
  | "duplicate-principal"
  | "principal-not-allowed"
  | "not-awaiting-approval"
  // Signed approvals (src/signing/approval-check.ts codes):
  | "duplicate-key"
  | "self-approval"
  | "unsigned"
  | "unregistered-key"
  | "key-of-another-principal"
  | "bad-signature"
  | "statement-mismatch"
  | "expired";

export interface ApprovalState {
  jobId: string;
  /** The runbook of the job ("deprovision", "ntls-cert-sync"); null for requests made before it was recorded. */
  runbook: string | null;
  /** What the job will do once approved, in an operator's words (shown by `lunafleet approvals`). */
  action: string | null;
  /** SHA-256 of the job's admitted plan (engine/admit.ts): part of what an approver signs. */
  planDigest: string | null;
  /** Who asked for the job: their approval never counts. */
  requester: string | null;
  device: string;
  /** The device serial the typed confirmation must equal (not a secret: it is printed by `hsm show`). */
  serial: string;
  required: number;
  /** The allow-list in force when the request was made; null = any principal. */
  principals: string[] | null;
  status: ApprovalStatus;
  requestedAt: string;
  expiresAt: string;
  /** Valid approvals, by distinct principals, in the order they were given. */
  approvals: ApprovalEntry[];
  approvedAt?: string;
  rejection?: { principal: string; at: string; reason: string };
  /** Attempts that did not count, and why (wrong serial, same principal again, not on the allow-list…). */
  refusals: ApprovalRefusal[];
  /** Set when the job ended: its outcome (src/engine/outcome.ts words) and when. */
  closed?: { outcome: string; at: string };
}

export interface ApprovalRequest {
  runbook?: string;
  /** The job's requester (its authenticated principal): never counted as an approver. */
  requester?: string;
  /** What the job will do once approved ("zeroize hsm-c1 (serial 700301), delete its Azure resource …"). */
  action?: string;
  planDigest?: string;
  device: string;
  serial: string;
  required: number;
  /** Minutes from the request to its deadline; fractions are accepted (tests). */
  expiresMinutes: number;
  principals?: string[] | undefined;
}

/** Where approval events are recorded: the job's evidence log (src/evidence EvidenceLog satisfies it). */
export interface ApprovalEvidence {
  append(kind: "approval", data: unknown, actor?: string): Promise<unknown>;
}

export class ApprovalError extends NonRetryable {
  override name = "ApprovalError";
}

/** There is no approval request for this job (it has not reached preflight, or the id is wrong). */
export class NoApprovalRequest extends ApprovalError {
  override name = "NoApprovalRequest";
}

/** An approve/reject that did not count; the refusal is recorded on the request. */
export class ApprovalRefused extends ApprovalError {
  override name = "ApprovalRefused";
  constructor(
    readonly jobId: string,
    readonly reason: ApprovalRefusalReason,
    readonly state: ApprovalState,
    message: string,
  ) {
    super(message);
  }
}

/** The job asked again with a different device or serial than its standing request. */
export class ApprovalRequestConflict extends ApprovalError {
  override name = "ApprovalRequestConflict";
}

export interface ApprovalOptions {
  /** The job's evidence log: every approval event is appended there as an `approval` record. */
  evidence?: ApprovalEvidence;
  /**
   * Checks the approver's proof (a signature over the statement, src/coord/signed-approvals.ts) before anything is
   * counted. Required: without one every approval is refused as unsigned (a principal's word never counts).
   */
  verifier?: ApprovalVerifier;
}

/** Exactly what an approver approves: the job, what it will do, to which device, under which plan, until when. */
export interface ApprovalStatement {
  jobId: string;
  runbook: string | null;
  action: string | null;
  device: string;
  serial: string;
  planDigest: string | null;
  requester: string | null;
  expiresAt: string;
}

/** What an approver hands in: who, the typed confirmation, and (for a verifier) the proof over the statement. */
export interface ApprovalInput {
  principal: string;
  confirmation: string;
  /** The authenticated principal who handed it in (the record's actor; a signed one names the key's owner too). */
  submittedBy?: string;
  /** The signed approval: statement, armored SSH signature, key fingerprint (checked by the verifier). */
  proof?: Omit<ApprovalProof, "submittedBy"> & { submittedBy?: string };
}

/** A verifier's refusal: the code is recorded on the request and in the evidence. */
export class ApprovalProofRefused extends ApprovalError {
  override name = "ApprovalProofRefused";
  constructor(
    readonly code: ApprovalRefusalReason,
    message: string,
  ) {
    super(message);
  }
}

export interface ApprovalVerifier {
  /**
   * Resolve with the principal the proof counts for when `input.proof` proves it approved exactly `statement`;
   * throw ApprovalProofRefused otherwise.
   */
  verify(
    statement: ApprovalStatement,
    input: ApprovalInput,
  ): Promise<{ principal: string; keyFingerprint: string }>;
}

export function approvalStatement(state: ApprovalState): ApprovalStatement {
  return {
    jobId: state.jobId,
    runbook: state.runbook,
    action: state.action,
    device: state.device,
    serial: state.serial,
    planDigest: state.planDigest,
    requester: state.requester,
    expiresAt: state.expiresAt,
  };
}

interface RawDoc {
  jobId: string;
  runbook?: string;
  action?: string;
  planDigest?: string;
  requester?: string;
  closedOutcome?: string;
  closedAt?: number;
  device: string;
  serial: string;
  required: number;
  principals: unknown;
  status: ApprovalStatus;
  requestedAt: number;
  expiresAt: number;
  approvedAt?: number;
  approvals: unknown;
  refusals: unknown;
  rejection?: { principal: string; at: number; reason: string };
}

/** cjson encodes an empty Lua table as `{}`: lists are normalized here. */
export function toState(json: string): ApprovalState {
  const d = JSON.parse(json) as RawDoc;
  const list = <T>(v: unknown): T[] => (Array.isArray(v) ? (v as T[]) : []);
  const iso = (ms: number) => new Date(ms).toISOString();
  const text = (v: string | undefined) => (typeof v === "string" && v !== "" ? v : null);
  const state: ApprovalState = {
    jobId: d.jobId,
    runbook: text(d.runbook),
    action: text(d.action),
    planDigest: text(d.planDigest),
    requester: text(d.requester),
    device: d.device,
    serial: d.serial,
    required: d.required,
    principals: Array.isArray(d.principals) ? (d.principals as string[]) : null,
    status: d.status,
    requestedAt: iso(d.requestedAt),
    expiresAt: iso(d.expiresAt),
    approvals: list<{ principal: string; at: number; confirmation: string; proof?: ApprovalProof }>(
      d.approvals,
    ).map((a) => ({
      principal: a.principal,
      at: iso(a.at),
      confirmation: a.confirmation,
      ...(a.proof ? { proof: a.proof } : {}),
    })),
    refusals: list<{ principal: string; at: number; reason: ApprovalRefusalReason }>(d.refusals).map((r) => ({
      principal: r.principal,
      at: iso(r.at),
      reason: r.reason,
    })),
  };
  if (d.approvedAt !== undefined) state.approvedAt = iso(d.approvedAt);
  if (d.closedOutcome !== undefined)
    state.closed = { outcome: d.closedOutcome, at: iso(d.closedAt ?? d.requestedAt) };
  if (d.rejection)
    state.rejection = {
      principal: d.rejection.principal,
      at: iso(d.rejection.at),
      reason: d.rejection.reason,
    };
  return state;
}
