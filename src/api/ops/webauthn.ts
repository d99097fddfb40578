// Security keys and passkeys (WebAuthn) of approvers: register (begin → finish → complete with the owner's SSH
// signature, see src/coord/webauthn-credentials.ts for why two proofs), list, revoke. Every registration, refusal and
// revocation is recorded in the `webauthn-credentials` evidence log (the statement and SSH signature included, so an
// auditor can check with ssh-keygen -Y verify that the owner's registered key vouched for the credential).
import type { RegistrationResponseJSON } from "@simplewebauthn/server";
import { z } from "zod";
import {
  CredentialError,
  getCredential,
  listCredentials,
  loadApproverKeys,
  type PendingCredential,
  readPending,
  rememberChallenge,
  removeCredential,
  savePending,
  storeCredential,
  takeChallenge,
} from "../../coord/webauthn-credentials.ts";
import { EvidenceLog } from "../../evidence/log.ts";
import { sealEvidence } from "../../evidence/signing.ts";
import { mayPerform } from "../../identity/roles.ts";
import { ApproverKeys } from "../../signing/approval-check.ts";
import { parseSshSignature } from "../../signing/sshsig.ts";
import {
  publicKeyDigest,
  registrationOptions,
  registrationStatement,
  relyingPartyOf,
  type VerifiedRegistration,
  verifyRegistration,
  type WebAuthnCredentialRecord,
  WebAuthnRegistrationError,
  type WebAuthnRelyingParty,
  webauthnKeyId,
} from "../../signing/webauthn.ts";
import { ApiError } from "../errors.ts";
import { authorize, type OpContext } from "./context.ts";

export const CREDENTIALS_LOG = "webauthn-credentials";

const b64u = z
  .string()
  .min(1)
  .max(8_000)
  .regex(/^[A-Za-z0-9_-]+$/, "base64url");

export const finishRegistrationBodySchema = z
  .object({
    /** What the owner calls it ("YubiKey 5C, desk"); shown in listings. */
    label: z.string().trim().min(1).max(80).default("security key"),
    /** The browser's PublicKeyCredential, as JSON (base64url fields). */
    response: z
      .object({
        id: b64u,
        rawId: b64u,
        type: z.literal("public-key"),
        response: z
          .object({
            clientDataJSON: b64u,
            attestationObject: b64u,
            transports: z.array(z.string().max(32)).max(8).optional(),
          })
          .passthrough(),
        clientExtensionResults: z.record(z.string(), z.unknown()).default({}),
        authenticatorAttachment: z.string().max(32).optional(),
      })
      .strict(),
  })
  .strict();

export const completeRegistrationBodySchema = z
  .object({
    /** `ssh-keygen -Y sign -n lunafleet-approval` over the pending statement (armored); it names its key. */
    signature: z.string().min(1).max(20_000),
  })
  .strict();

/** A credential as listed: where it stands (counts, or set aside and why). Never anything secret (there is none). */
export interface CredentialView {
  principal: string;
  credentialId: string;
  label: string;
  publicKey: string;
  rpId: string;
  registeredAt: string;
  vouchedBy: string;
  counts: boolean;
  setAsideBecause?: string;
}

function relyingParty(ctx: OpContext): WebAuthnRelyingParty {
  const rp = relyingPartyOf(ctx.services.fleet);
  if (!rp)
    throw new ApiError(
      409,
      "security keys need the console's origin: set console.url in the fleet file (the WebAuthn relying party)",
    );
  return rp;
}

/** The fleet principal a person is, with a registered SSH approval key to vouch for a credential; refused otherwise. */
function ownerOf(ctx: OpContext) {
  const who = ctx.principal.name;
  const listed = ctx.services.fleet.identity.principals.find(
    (p) => p.name.toLowerCase() === who.toLowerCase(),
  );
  if (!listed || listed.approvalKeys.length === 0)
    throw new ApiError(
      409,
      `${who} has no approval key in the fleet file (identity.principals[].approvalKeys): a security key is vouched for by one, so an administrator registers that first`,
    );
  return listed;
}

async function record(ctx: OpContext, data: Record<string, unknown>): Promise<void> {
  const { redis, dataDir, evidenceSigner } = ctx.services;
  const log = await EvidenceLog.open(redis, dataDir, CREDENTIALS_LOG);
  await log.append("note", data, ctx.principal.name);
  await sealEvidence(log, evidenceSigner, redis);
}

/** Step 1: the options for navigator.credentials.create(), with a challenge remembered for this principal. */
export async function registrationOptionsOp(ctx: OpContext) {
  authorize(ctx.principal, "credentials.register");
  const rp = relyingParty(ctx);
  const owner = ownerOf(ctx);
  const existing = (await listCredentials(ctx.services.redis)).filter(
    (c) => c.principal.toLowerCase() === owner.name.toLowerCase(),
  );
  const options = await registrationOptions(rp, owner.name, existing);
  await rememberChallenge(ctx.services.redis, owner.name, options.challenge);
  return { options };
}

/**
 * Step 2: the attested credential, checked against the challenge issued to this principal; held as pending with the
 * statement its owner now signs with their SSH approval key.
 */
export async function finishRegistrationOp(
  ctx: OpContext,
  body: z.output<typeof finishRegistrationBodySchema>,
): Promise<PendingCredential & { signWith: string[] }> {
  authorize(ctx.principal, "credentials.register");
  const rp = relyingParty(ctx);
  const owner = ownerOf(ctx);
  const { redis } = ctx.services;
  const challenge = await takeChallenge(redis, owner.name);
  if (!challenge)
    throw new ApiError(409, "no registration was begun for you in the last 5 minutes; begin again");
  let verified: VerifiedRegistration;
  try {
    verified = await verifyRegistration(body.response as unknown as RegistrationResponseJSON, challenge, rp);
  } catch (err) {
    if (!(err instanceof WebAuthnRegistrationError)) throw err;
    await record(ctx, { event: "credential-refused", principal: owner.name, reason: err.message });
    throw new ApiError(400, err.message);
  }
  if (await getCredential(redis, verified.credentialId))
    throw new ApiError(409, `credential ${verified.credentialId} is already registered`);
  const statement = registrationStatement({ ...verified, principal: owner.name, rpId: rp.id });
  const pending = await savePending(redis, {
    principal: owner.name,
    credentialId: verified.credentialId,
    publicKey: verified.publicKey,
    counter: verified.counter,
    rpId: rp.id,
    aaguid: verified.aaguid,
    transports: verified.transports,
    label: body.label,
    statement,
  });
  return {
    ...pending,
    // The keys that may vouch for it: the owner's registered approval keys (fingerprints).
    signWith: new ApproverKeys({ principals: [owner] }).allowedSigners().trim().split("\n"),
  };
}

/** Step 3: the owner's SSH signature over the pending statement; the credential counts from now on. */
export async function completeRegistrationOp(
  ctx: OpContext,
  id: string,
  body: z.output<typeof completeRegistrationBodySchema>,
): Promise<CredentialView> {
  authorize(ctx.principal, "credentials.register");
  const rp = relyingParty(ctx);
  const owner = ownerOf(ctx);
  const { redis, fleet } = ctx.services;
  let keyFingerprint: string;
  try {
    keyFingerprint = parseSshSignature(body.signature).fingerprint;
  } catch (err) {
    throw new ApiError(400, `not an SSH signature (ssh-keygen -Y sign output): ${(err as Error).message}`);
  }
  const pending = await readPending(redis, id);
  if (!pending) throw new ApiError(404, `no pending registration '${id}' (it expires after 30 minutes)`);
  if (pending.principal.toLowerCase() !== owner.name.toLowerCase())
    throw new ApiError(403, `registration ${id} is ${pending.principal}'s; only they complete it`);
  const candidate: WebAuthnCredentialRecord = {
    principal: pending.principal,
    credentialId: pending.credentialId,
    publicKey: pending.publicKey,
    rpId: pending.rpId,
    counter: pending.counter,
    statement: pending.statement,
    sshKeyFingerprint: keyFingerprint,
    sshSignature: body.signature,
    registeredAt: new Date().toISOString(),
    registeredBy: ctx.principal.name,
    label: pending.label,
    aaguid: pending.aaguid,
    transports: pending.transports,
  };
  // The very check approvals go through: does a registered key of this principal vouch for it?
  const keys = new ApproverKeys(fleet.identity, { credentials: [candidate], rp, checkCounters: true });
  const refused = keys.setAside[0];
  if (refused) {
    await record(ctx, {
      event: "credential-refused",
      principal: pending.principal,
      // Named as approvals name it (`webauthn:<id>`): evidence redacts fields named like "credential".
      key: webauthnKeyId(pending.credentialId),
      keyFingerprint,
      reason: refused.reason,
    });
    throw new ApiError(400, `not registered: ${refused.reason}`);
  }
  try {
    await storeCredential(redis, candidate, pending.id);
  } catch (err) {
    if (err instanceof CredentialError) throw new ApiError(err.status, err.message);
    throw err;
  }
  await record(ctx, {
    event: "credential-registered",
    principal: candidate.principal,
    key: webauthnKeyId(candidate.credentialId),
    publicKey: candidate.publicKey,
    publicKeyDigest: publicKeyDigest(candidate.publicKey),
    rpId: candidate.rpId,
    label: candidate.label,
    aaguid: candidate.aaguid,
    statement: candidate.statement,
    keyFingerprint: candidate.sshKeyFingerprint,
    signature: candidate.sshSignature,
  });
  return view(candidate, null);
}

function view(c: WebAuthnCredentialRecord, setAside: string | null): CredentialView {
  return {
    principal: c.principal,
    credentialId: c.credentialId,
    label: c.label,
    publicKey: c.publicKey,
    rpId: c.rpId,
    registeredAt: c.registeredAt,
    vouchedBy: c.sshKeyFingerprint,
    counts: setAside === null,
    ...(setAside ? { setAsideBecause: setAside } : {}),
  };
}

/** One's own credentials (an admin: everyone's, with `all`), each with whether it counts now. */
export async function listCredentialsOp(
  ctx: OpContext,
  opts: { all?: boolean } = {},
): Promise<CredentialView[]> {
  authorize(ctx.principal, opts.all ? "credentials.manage" : "credentials.register");
  const { redis, fleet } = ctx.services;
  const keys = await loadApproverKeys(redis, fleet, { checkCounters: false });
  const why = new Map(keys.setAside.map((s) => [s.credentialId, s.reason]));
  const me = ctx.principal.name.toLowerCase();
  return (await listCredentials(redis))
    .filter((c) => opts.all || c.principal.toLowerCase() === me)
    .sort((a, b) => a.registeredAt.localeCompare(b.registeredAt))
    .map((c) => view(c, why.get(c.credentialId) ?? null));
}

/** Revoke: the owner, or an admin. Approvals it made stop counting at the worker's next check. */
export async function revokeCredentialOp(
  ctx: OpContext,
  credentialId: string,
): Promise<{ credentialId: string; revoked: true }> {
  authorize(ctx.principal, "credentials.register");
  const { redis } = ctx.services;
  const c = await getCredential(redis, credentialId);
  if (!c) throw new ApiError(404, `no credential '${credentialId}'`);
  const own = c.principal.toLowerCase() === ctx.principal.name.toLowerCase();
  if (!own && !mayPerform(ctx.principal.roles, "credentials.manage"))
    throw new ApiError(403, `${ctx.principal.name} may not revoke ${c.principal}'s credential`);
  if (!(await removeCredential(redis, credentialId)))
    throw new ApiError(404, `no credential '${credentialId}'`);
  await record(ctx, {
    event: "credential-revoked",
    principal: c.principal,
    key: webauthnKeyId(credentialId),
    label: c.label,
  });
  return { credentialId, revoked: true };
}
