// The login guard for operators: its ledger, and releasing a quarantined credential by the rules of
// src/guard/release-rules.ts — a guard-admin asks; HSM SO, Partition SO and permanent-lockout Crypto Officer releases
// also need a reason of substance and a second principal's signed approval (`approve <request id> --key …`), other
// releases are done at once. The requester is the authenticated principal; every step is recorded and sealed.
import { z } from "zod";
import { loadApproverKeys } from "../../coord/webauthn-credentials.ts";
import type { LedgerEntry } from "../../guard/ledger.ts";
import { guardStatus, ReleaseRefused } from "../../guard/release.ts";
import {
  approveGuardRelease,
  type GuardReleaseRequest,
  getGuardReleaseRequest,
  type ReleaseDecision,
  requestGuardRelease,
} from "../../guard/release-rules.ts";
import { GUARD_ROLES, type GuardRole } from "../../guard/roles.ts";
import { ApiError } from "../errors.ts";
import { type ApprovalBody, proofOfBody } from "./approvals.ts";
import { authorize, type OpContext } from "./context.ts";

export const guardReleaseBodySchema = z
  .object({
    device: z.string().min(1),
    role: z.enum(GUARD_ROLES as unknown as [GuardRole, ...GuardRole[]]),
    partition: z.string().min(1).optional(),
    reason: z.string().trim().min(1).max(2000),
  })
  .strict();
export type GuardReleaseBody = z.output<typeof guardReleaseBodySchema>;

export const RELEASE_REQUEST_ID = /^guard-release-[a-z0-9]+-[0-9a-f]{6}$/;

export async function guardStatusOp(ctx: OpContext): Promise<LedgerEntry[]> {
  authorize(ctx.principal, "guard.read");
  return guardStatus(ctx.services.redis);
}

export async function guardReleaseOp(ctx: OpContext, body: GuardReleaseBody): Promise<ReleaseDecision> {
  authorize(ctx.principal, "guard.release");
  const { redis, dataDir, fleet, evidenceSigner } = ctx.services;
  if (!fleet.devices.some((d) => d.name === body.device))
    throw new ApiError(400, `no device '${body.device}' in the fleet`);
  try {
    return await requestGuardRelease(
      redis,
      dataDir,
      fleet,
      { ...body, principal: ctx.principal.name },
      evidenceSigner,
    );
  } catch (err) {
    if (err instanceof ReleaseRefused) throw new ApiError(409, err.message);
    throw err;
  }
}

export async function getGuardReleaseOp(ctx: OpContext, id: string): Promise<GuardReleaseRequest> {
  authorize(ctx.principal, "guard.read");
  if (!RELEASE_REQUEST_ID.test(id))
    throw new ApiError(400, `not a release request id: ${JSON.stringify(id)}`);
  const r = await getGuardReleaseRequest(ctx.services.redis, id);
  if (!r) throw new ApiError(404, `no guard release request '${id}'`);
  return r;
}

/** The second, signed approval of a release request (never the requester's); on success the ledger is reset. */
export async function approveGuardReleaseOp(
  ctx: OpContext,
  id: string,
  body: ApprovalBody,
): Promise<{ id: string; status: "released"; evidenceJobId: string }> {
  authorize(ctx.principal, "approvals.decide");
  if (!RELEASE_REQUEST_ID.test(id))
    throw new ApiError(400, `not a release request id: ${JSON.stringify(id)}`);
  const { redis, dataDir, fleet, evidenceSigner } = ctx.services;
  const proof = proofOfBody(body);
  const owner = proof
    ? (await loadApproverKeys(redis, fleet, { checkCounters: false })).get(proof.keyFingerprint)?.principal
    : undefined;
  try {
    const result = await approveGuardRelease(
      redis,
      dataDir,
      fleet,
      id,
      {
        method: proof?.method ?? "sshsig",
        principal: body.principal ?? owner ?? ctx.principal.name,
        keyFingerprint: proof?.keyFingerprint ?? "",
        signature: proof?.signature ?? "",
        statement: proof?.statement ?? "",
        ...(proof?.webauthn ? { webauthn: proof.webauthn } : {}),
        submittedBy: ctx.principal.name,
      },
      evidenceSigner,
    );
    return { id, status: "released", evidenceJobId: result.evidenceJobId };
  } catch (err) {
    if (err instanceof ReleaseRefused)
      throw new ApiError(/no guard release request/.test(err.message) ? 404 : 409, err.message, {
        refused: true,
      });
    throw err;
  }
}
