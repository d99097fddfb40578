// Signed approvals in the approval store: the statement of a request (src/signing/statement.ts), the verifier that
// approve() requires (a signature by a key the fleet file registers, over exactly that statement, never the
// requester's), and the check the worker makes again at the moment it acts — against its OWN facts (job id, runbook,
// device and serial from its fleet file, the plan digest it admitted, the requester of the job it runs) and the key
// registry of its fleet file. What Redis says is only a claim: an approval written there by hand, or signed for
// another plan, job or serial, does not count, and nothing is sent.
import type { Fleet } from "../config/schema.ts";
import { ApproverKeys, countApprovals, type SignedApproval } from "../signing/approval-check.ts";
import { renderStatement } from "../signing/statement.ts";
import {
  ApprovalError,
  type ApprovalEvidence,
  type ApprovalProof,
  ApprovalProofRefused,
  type ApprovalRequest,
  type ApprovalState,
  type ApprovalStatement,
  type ApprovalVerifier,
} from "./approvals.ts";

/** The text an approver signs for a request (decision approve). Requests made without the facts cannot be signed. */
export function signableStatement(s: ApprovalStatement): string {
  if (!s.runbook || !s.planDigest || !s.requester)
    throw new ApprovalProofRefused(
      "statement-mismatch",
      `job ${s.jobId}'s approval request lacks its runbook, plan digest or requester: it cannot be signed; submit a new job`,
    );
  return renderStatement({
    kind: "job",
    decision: "approve",
    job: s.jobId,
    runbook: s.runbook,
    device: s.device,
    serial: s.serial,
    plan: `sha256:${s.planDigest}`,
    requester: s.requester,
    deadline: s.expiresAt,
  });
}

export interface VerifierOptions {
  /** The registry (SSH keys and the WebAuthn credentials they vouch for); default the fleet's SSH keys only. */
  keys?: ApproverKeys;
  /** A WebAuthn approval verified: its authenticator's new signature counter, to be stored (webauthn-credentials). */
  onWebAuthnCounter?: (keyFingerprint: string, counter: number) => Promise<void>;
}

/**
 * approve()'s verifier: signatures by the fleet's registered keys — SSH signatures, or WebAuthn assertions by
 * credentials those keys vouch for (the allow-list, if any, applies too).
 */
export function sshApprovalVerifier(
  fleet: Pick<Fleet, "identity" | "approvals">,
  now = () => Date.now(),
  opts: VerifierOptions = {},
): ApprovalVerifier {
  const keys = opts.keys ?? new ApproverKeys(fleet.identity);
  return {
    async verify(statement, input) {
      const expected = signableStatement(statement);
      const verdict = await countApprovals([proofAsApproval(input.principal, input.proof)], keys, {
        statement: expected,
        requester: statement.requester ?? "",
        allowed: fleet.approvals.principals,
        now: now(),
      });
      const refused = verdict.refused[0];
      if (refused) throw new ApprovalProofRefused(refused.code, refused.reason);
      const counted = verdict.counted[0]!;
      if (counted.webauthnCounter !== undefined)
        await opts.onWebAuthnCounter?.(counted.keyFingerprint, counted.webauthnCounter);
      return { principal: counted.principal, keyFingerprint: counted.keyFingerprint };
    },
  };
}

/** An approval as handed in or stored, in the shape the checker reads. */
function proofAsApproval(
  principal: string,
  proof: Partial<ApprovalProof> | undefined,
): Partial<SignedApproval> {
  return {
    method: proof?.method,
    principal,
    keyFingerprint: proof?.keyFingerprint,
    statement: proof?.statement,
    signature: proof?.signature,
    ...(proof?.webauthn ? { webauthn: proof.webauthn } : {}),
  } as Partial<SignedApproval>;
}

/** What the worker knows of the job it runs, from its own fleet file and admitted plan (never from Redis). */
export interface JobFacts {
  jobId: string;
  runbook: string;
  /** Hex SHA-256 of the admitted plan (engine/admit.ts). */
  planDigest: string;
  requester: string;
}

/** Approvals were granted in Redis, but their signatures do not hold at the moment of acting: nothing is sent. */
class ApprovalSignaturesRefused extends ApprovalError {
  override name = "ApprovalSignaturesRefused";
  constructor(
    message: string,
    readonly refused: { principal: string; code: string; reason: string }[],
  ) {
    super(message);
  }
}

export type GrantCheck =
  | { ok: true; principals: string[]; keys: string[] }
  | { ok: false; reason: string; refused: { principal: string; code: string; reason: string }[] };

/**
 * Re-verify a granted request against the worker's facts: every stored approval's signature, over the statement the
 * worker expects (its device and serial from the fleet), by distinct registered principals and keys, none the
 * requester, enough of them (`required`, never fewer than the fleet's policy).
 */
export async function checkGrantedApprovals(
  state: ApprovalState,
  facts: JobFacts,
  fleet: Pick<Fleet, "identity" | "approvals" | "devices" | "managedHsms">,
  required: number,
  now = Date.now(),
  keys: ApproverKeys = new ApproverKeys(fleet.identity),
): Promise<GrantCheck> {
  // What the statement names, from this worker's fleet file: an appliance and its serial, or a Managed HSM pool
  // (approved by its name: mhsm-retire types the pool's name as its confirmation).
  const appliance = fleet.devices.find((d) => d.name === state.device);
  const pool = fleet.managedHsms?.find((m) => m.name === state.device);
  const device = appliance ?? (pool ? { name: pool.name, serial: pool.name } : undefined);
  if (!device)
    return { ok: false, reason: `device ${state.device} is not in this worker's fleet file`, refused: [] };
  const expected = signableStatement({
    jobId: facts.jobId,
    runbook: facts.runbook,
    action: null,
    device: device.name,
    serial: device.serial,
    planDigest: facts.planDigest,
    requester: facts.requester,
    expiresAt: state.expiresAt,
  });
  const count = await countApprovals(
    state.approvals.map((a) => proofAsApproval(a.principal, a.proof)),
    keys,
    { statement: expected, requester: facts.requester, allowed: fleet.approvals.principals, now },
  );
  const need = Math.max(required, fleet.approvals.required);
  if (count.counted.length >= need)
    return {
      ok: true,
      principals: count.counted.map((c) => c.principal),
      keys: count.counted.map((c) => c.keyFingerprint),
    };
  return {
    ok: false,
    reason: `needs ${need} signed approvals by distinct registered principals and keys, ${count.counted.length} verify now${count.refused.length ? ` (${count.refused.map((r) => `${r.principal}: ${r.code}`).join("; ")})` : ""}`,
    refused: count.refused,
  };
}

/** The store a worker hands one job: requests carry its requester; a granted request is re-verified when read. */
export function signedApprovalsStore(
  store: {
    request(jobId: string, req: ApprovalRequest): Promise<ApprovalState>;
    state(jobId: string): Promise<ApprovalState | null>;
  },
  facts: JobFacts,
  fleet: Pick<Fleet, "identity" | "approvals" | "devices" | "managedHsms">,
  evidence: ApprovalEvidence,
  /** The registry at the moment of acting (with WebAuthn credentials: loadApproverKeys); default SSH keys only. */
  loadKeys?: () => Promise<ApproverKeys>,
) {
  return {
    request: (jobId: string, req: ApprovalRequest) =>
      store.request(jobId, { ...req, requester: facts.requester }),
    async state(jobId: string): Promise<ApprovalState | null> {
      const state = await store.state(jobId);
      if (state?.status !== "approved") return state;
      const keys = loadKeys ? await loadKeys() : undefined;
      const check = await checkGrantedApprovals(state, facts, fleet, state.required, Date.now(), keys);
      if (check.ok) return state;
      await evidence.append(
        "approval",
        {
          event: "refused-at-act",
          device: state.device,
          reason: check.reason,
          refused: check.refused,
          sent: "nothing",
        },
        facts.requester,
      );
      throw new ApprovalSignaturesRefused(
        `job ${jobId}: approvals of ${state.device} do not verify at the moment of acting: ${check.reason}; nothing was sent`,
        check.refused,
      );
    },
  };
}
