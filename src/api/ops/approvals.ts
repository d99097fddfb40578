// Job approvals: what waits (with the exact statement an approver signs and the plan its digest names), approve
// (counted only as a signature by a key the fleet file registers, verified before it counts; anything else refused
// and recorded), reject (an approver's decision, final). Each decision is recorded in the job's evidence naming the
// authenticated principal who handed it in, then the log is sealed (final if the job has ended).
import { z } from "zod";
import { getRunbook } from "../../../runbooks/index.ts";
import {
  ApprovalError,
  type ApprovalProof,
  ApprovalRefused,
  type ApprovalState,
  approvalState,
  approvalStatement,
  approve,
  closeApproval,
  listWaitingApprovals,
  NoApprovalRequest,
  reject,
} from "../../coord/approvals.ts";
import {
  signableStatement,
  sshApprovalVerifier,
  type VerifierOptions,
} from "../../coord/signed-approvals.ts";
import { loadApproverKeys, recordCounter } from "../../coord/webauthn-credentials.ts";
import { admitJob } from "../../engine/admit.ts";
import { describeAdmitted, type JobPlan } from "../../engine/plan.ts";
import { EvidenceLog } from "../../evidence/log.ts";
import { isValidJobId } from "../../evidence/record.ts";
import { sealEvidence } from "../../evidence/signing.ts";
import { jobOutcome } from "../../queue/job-outcome.ts";
import type { ApproverKeys } from "../../signing/approval-check.ts";
import { credentialIdOf, webauthnKeyId } from "../../signing/webauthn.ts";
import { ApiError } from "../errors.ts";
import { authorize, type OpContext } from "./context.ts";

const base64url = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .regex(/^[A-Za-z0-9_-]+$/, "base64url");

/**
 * A decision handed in: the signed approval — an SSH signature (statement, `ssh-keygen -Y sign -n
 * lunafleet-approval` signature, key fingerprint) or a WebAuthn assertion over the statement (the console's security
 * key button) — the principal the key is registered to (default: looked up by the key), and the typed serial.
 * Without a signature it is still recorded — and refused as unsigned: a principal's word never counts.
 */
export const approvalBodySchema = z
  .object({
    principal: z.string().min(1).max(128).optional(),
    confirmation: z.string().min(1).max(64).optional(),
    keyFingerprint: z
      .string()
      .regex(/^SHA256:[A-Za-z0-9+/]{43}$/, "an SSH SHA256 fingerprint")
      .optional(),
    signature: z.string().min(1).max(20_000).optional(),
    statement: z.string().min(1).max(4_000).optional(),
    /** A WebAuthn assertion whose challenge is the SHA-256 of `statement` (src/signing/webauthn.ts). */
    webauthn: z
      .object({
        credentialId: base64url(1_400),
        authenticatorData: base64url(4_000),
        clientDataJSON: base64url(8_000),
        signature: base64url(2_000),
        userHandle: base64url(200).optional(),
      })
      .strict()
      .optional(),
  })
  .strict()
  .refine(
    (b) =>
      b.webauthn
        ? b.statement !== undefined && b.signature === undefined && b.keyFingerprint === undefined
        : (b.signature === undefined) === (b.keyFingerprint === undefined && b.statement === undefined),
    "a signed approval gives signature, keyFingerprint and statement together, or webauthn and statement",
  );
export type ApprovalBody = z.output<typeof approvalBodySchema>;

/** The proof a body carries, in the stored shape (method, key id, statement, signature, WebAuthn data), or none. */
export function proofOfBody(body: ApprovalBody): Omit<ApprovalProof, "submittedBy"> | undefined {
  if (body.webauthn && body.statement)
    return {
      method: "webauthn",
      keyFingerprint: webauthnKeyId(body.webauthn.credentialId),
      statement: body.statement,
      signature: body.webauthn.signature,
      webauthn: {
        authenticatorData: body.webauthn.authenticatorData,
        clientDataJSON: body.webauthn.clientDataJSON,
        ...(body.webauthn.userHandle ? { userHandle: body.webauthn.userHandle } : {}),
      },
    };
  if (body.signature && body.keyFingerprint && body.statement)
    return {
      method: "sshsig",
      keyFingerprint: body.keyFingerprint,
      statement: body.statement,
      signature: body.signature,
    };
  return undefined;
}

/** The registry an approval handed in now is checked against (counters checked), and the counter it moves. */
export async function submissionKeys(ctx: OpContext): Promise<VerifierOptions & { keys: ApproverKeys }> {
  const { redis, fleet } = ctx.services;
  return {
    keys: await loadApproverKeys(redis, fleet, { checkCounters: true }),
    onWebAuthnCounter: async (keyId, counter) => {
      const id = credentialIdOf(keyId);
      if (id) await recordCounter(redis, id, counter);
    },
  };
}

export const rejectBodySchema = z.object({ reason: z.string().trim().min(1).max(2000) }).strict();

function checkJobId(id: string): void {
  if (!isValidJobId(id)) throw new ApiError(400, `not a job id: ${JSON.stringify(id)}`);
}

/** An approval refusal as both transports carry it: 409 with the request's state; no request: 404. */
function refusal(err: unknown): never {
  if (err instanceof ApprovalRefused)
    throw new ApiError(409, err.message, { refused: err.reason, state: err.state });
  if (err instanceof NoApprovalRequest) throw new ApiError(404, err.message);
  if (err instanceof ApprovalError) throw new ApiError(400, err.message);
  throw err;
}

async function requestOf(ctx: OpContext, id: string): Promise<ApprovalState> {
  checkJobId(id);
  const state = await approvalState(ctx.services.redis, id);
  if (!state)
    throw new ApiError(
      404,
      `job ${id} has no approval request (wrong job id, or the job has not reached the step that asks yet)`,
    );
  return state;
}

export async function listApprovalsOp(ctx: OpContext): Promise<ApprovalState[]> {
  authorize(ctx.principal, "approvals.read");
  return listWaitingApprovals(ctx.services.redis);
}

export interface ApprovalView {
  state: ApprovalState;
  /** The exact text an approver signs; null for a request that cannot be signed (made without its facts). */
  statement: string | null;
  /** The plan the statement's digest names, recomputed from this daemon's fleet. */
  plan: JobPlan | null;
}

export async function getApprovalOp(ctx: OpContext, id: string): Promise<ApprovalView> {
  authorize(ctx.principal, "approvals.read");
  const state = await requestOf(ctx, id);
  let statement: string | null = null;
  try {
    statement = signableStatement(approvalStatement(state));
  } catch {
    statement = null;
  }
  let plan: JobPlan | null = null;
  const job = await ctx.services.queue.getJob(id);
  if (job)
    try {
      plan = describeAdmitted(admitJob(getRunbook(job.data.runbook), job.data.params, ctx.services.fleet));
    } catch {
      plan = null;
    }
  return { state, statement, plan };
}

/** Open the job's log for a decision; a job the queue no longer runs first gets its request closed with its state. */
async function decisionLog(ctx: OpContext, id: string, before: ApprovalState): Promise<EvidenceLog> {
  const { redis, queue, dataDir } = ctx.services;
  const evidence = await EvidenceLog.open(redis, dataDir, id);
  // An approval is never counted for a job that will not act on it: close its request with the job's state first,
  // so the decision below is refused by the store itself (and recorded there).
  if (before.status === "awaiting-approval" && !before.closed) {
    const view = await jobOutcome(queue, redis, id);
    if (!["running", "awaiting-approval", "queued", "delayed"].includes(view.outcome))
      await closeApproval(redis, id, view.outcome, { evidence });
  }
  return evidence;
}

export async function approveOp(ctx: OpContext, id: string, body: ApprovalBody): Promise<ApprovalState> {
  authorize(ctx.principal, "approvals.decide");
  const before = await requestOf(ctx, id);
  const { redis, fleet, evidenceSigner } = ctx.services;
  const evidence = await decisionLog(ctx, id, before);
  const submittedBy = ctx.principal.name;
  const proof = proofOfBody(body);
  const registry = await submissionKeys(ctx);
  const keyOwner = proof ? registry.keys.get(proof.keyFingerprint)?.principal : undefined;
  try {
    return await approve(
      redis,
      id,
      {
        principal: body.principal ?? keyOwner ?? submittedBy,
        // What was typed; a signed statement names the serial, so signing it is the confirmation.
        confirmation: body.confirmation ?? before.serial,
        submittedBy,
        ...(proof ? { proof: { ...proof, submittedBy } } : {}),
      },
      { evidence, verifier: sshApprovalVerifier(fleet, () => Date.now(), registry) },
    );
  } catch (err) {
    return refusal(err);
  } finally {
    await sealEvidence(evidence, evidenceSigner, redis).catch(() => {});
  }
}

export async function rejectOp(ctx: OpContext, id: string, body: { reason: string }): Promise<ApprovalState> {
  authorize(ctx.principal, "approvals.decide");
  const before = await requestOf(ctx, id);
  const { redis, evidenceSigner } = ctx.services;
  const evidence = await decisionLog(ctx, id, before);
  try {
    return await reject(redis, id, { principal: ctx.principal.name, reason: body.reason }, { evidence });
  } catch (err) {
    return refusal(err);
  } finally {
    await sealEvidence(evidence, evidenceSigner, redis).catch(() => {});
  }
}
