// WebAuthn (security keys, passkeys): the browser counterpart of SSH-signed approvals, verified with
// @simplewebauthn/server (13.x: the last line that runs on Node 20).
//
// An approval by WebAuthn is an assertion whose challenge is statementDigest(statement) — the SHA-256 of the very
// statement an SSH approver signs — so it is checked against the same statement, by approval-check.ts, counted by
// the same countApprovals rules, and re-verified by the worker at the moment it acts.
//
// A credential counts for a principal only through the fleet file, the reviewed root of trust: its registration is a
// `webauthn-credential` statement (principal, credential id, public key digest, relying party) signed by one of that
// principal's registered SSH approval keys. The record in Redis is only a claim; ApproverKeys checks that signature
// every time it is built, so a credential written there by hand, or vouched for by a key the fleet file no longer
// lists, counts for nobody.
import { createHash } from "node:crypto";
import {
  type AuthenticationResponseJSON,
  generateRegistrationOptions,
  type PublicKeyCredentialCreationOptionsJSON,
  type RegistrationResponseJSON,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
} from "@simplewebauthn/server";
import { renderStatement } from "./statement.ts";

/** Where assertions may come from: the relying party id and the origins (the console's). */
export interface WebAuthnRelyingParty {
  /** The RP id: the console's host name. */
  id: string;
  /** Exact origins an assertion may carry (`https://host[:port]`). */
  origins: readonly string[];
  /**
   * Twin fleets without `console.url` only: any `https://localhost:<port>` origin (the demo's and the tests' API port
   * is chosen at start). RP id `localhost` keeps such credentials usable on this machine's loopback only.
   */
  anyLocalhostPort: boolean;
}

/** The relying party of a fleet's console, or null when WebAuthn cannot be used (a real fleet without console.url). */
export function relyingPartyOf(fleet: {
  twin: boolean;
  console?: { url?: string | undefined } | undefined;
}): WebAuthnRelyingParty | null {
  const url = fleet.console?.url;
  if (url) {
    const u = new URL(url);
    return { id: u.hostname, origins: [u.origin], anyLocalhostPort: false };
  }
  return fleet.twin ? { id: "localhost", origins: [], anyLocalhostPort: true } : null;
}

export function originAllowed(rp: WebAuthnRelyingParty, origin: string): boolean {
  if (rp.origins.includes(origin)) return true;
  return rp.anyLocalhostPort && /^https:\/\/localhost:\d{1,5}$/.test(origin);
}

/** A registered credential as stored (src/coord/webauthn-credentials.ts), with the SSH signature that vouches for it. */
export interface WebAuthnCredentialRecord {
  principal: string;
  /** base64url, as the authenticator made it. */
  credentialId: string;
  /** base64url of the COSE public key. */
  publicKey: string;
  rpId: string;
  /** The signature counter last seen (0 for authenticators that keep none). */
  counter: number;
  /** The `webauthn-credential` statement and the SSH signature over it by one of the principal's registered keys. */
  statement: string;
  sshKeyFingerprint: string;
  sshSignature: string;
  registeredAt: string;
  /** Who completed the registration (the authenticated principal: the credential's owner). */
  registeredBy: string;
  /** What the owner called it ("YubiKey 5C, desk"); display only. */
  label: string;
  aaguid?: string | undefined;
  transports?: string[] | undefined;
}

/** The key id a WebAuthn credential counts under (an SSH key counts under its SHA256 fingerprint). */
export function webauthnKeyId(credentialId: string): string {
  return `webauthn:${credentialId}`;
}

export function credentialIdOf(keyId: string): string | null {
  return keyId.startsWith("webauthn:") ? keyId.slice("webauthn:".length) : null;
}

/** `sha256:<hex>` of a COSE public key (base64url), as the registration statement names it. */
export function publicKeyDigest(publicKeyB64u: string): string {
  return `sha256:${createHash("sha256").update(Buffer.from(publicKeyB64u, "base64url")).digest("hex")}`;
}

/** The statement an owner signs with their SSH approval key to register a credential. */
export function registrationStatement(r: {
  principal: string;
  credentialId: string;
  publicKey: string;
  rpId: string;
}): string {
  return renderStatement({
    kind: "webauthn-credential",
    decision: "register",
    principal: r.principal,
    credential: r.credentialId,
    publicKey: publicKeyDigest(r.publicKey),
    rp: r.rpId,
  });
}

/** The challenge of an assertion over `statement`: base64url of its SHA-256 (statementDigest's bytes). */
export function assertionChallenge(statement: string): string {
  return createHash("sha256").update(statement, "utf8").digest("base64url");
}

/** What the browser hands in for an approval (the fields of an AuthenticatorAssertionResponse, base64url). */
export interface WebAuthnAssertion {
  authenticatorData: string;
  clientDataJSON: string;
  userHandle?: string | undefined;
}

export type WebAuthnCheck = { ok: true; newCounter: number } | { ok: false; reason: string };

function clientOrigin(clientDataJSON: string): string | null {
  try {
    const data = JSON.parse(Buffer.from(clientDataJSON, "base64url").toString("utf8")) as {
      origin?: unknown;
    };
    return typeof data.origin === "string" ? data.origin : null;
  } catch {
    return null;
  }
}

/**
 * Verify an assertion over `statement` by `credential`: its challenge is the statement's digest, its origin the
 * console's, its RP id the fleet's, the user verified (PIN or biometric), the signature by the registered public key.
 * `checkCounter`: refuse a signature counter that did not move past the stored one (a cloned authenticator, or the
 * same assertion handed in twice); the worker's re-verification of an assertion already counted passes false.
 */
export async function verifyAssertion(
  assertion: WebAuthnAssertion,
  signature: string,
  credential: WebAuthnCredentialRecord,
  rp: WebAuthnRelyingParty,
  statement: string,
  checkCounter: boolean,
): Promise<WebAuthnCheck> {
  if (credential.rpId !== rp.id)
    return { ok: false, reason: `credential registered for '${credential.rpId}', not '${rp.id}'` };
  const origin = clientOrigin(assertion.clientDataJSON);
  if (!origin) return { ok: false, reason: "the assertion's client data is not readable" };
  if (!originAllowed(rp, origin))
    return { ok: false, reason: `assertion made on ${origin}, not the console` };
  const response: AuthenticationResponseJSON = {
    id: credential.credentialId,
    rawId: credential.credentialId,
    type: "public-key",
    clientExtensionResults: {},
    response: {
      authenticatorData: assertion.authenticatorData,
      clientDataJSON: assertion.clientDataJSON,
      signature,
      ...(assertion.userHandle ? { userHandle: assertion.userHandle } : {}),
    },
  };
  try {
    const result = await verifyAuthenticationResponse({
      response,
      expectedChallenge: assertionChallenge(statement),
      expectedOrigin: origin,
      expectedRPID: rp.id,
      credential: {
        id: credential.credentialId,
        publicKey: new Uint8Array(Buffer.from(credential.publicKey, "base64url")),
        counter: checkCounter ? credential.counter : 0,
      },
      requireUserVerification: true,
    });
    if (!result.verified) return { ok: false, reason: "the WebAuthn signature does not verify" };
    return { ok: true, newCounter: result.authenticationInfo.newCounter };
  } catch (err) {
    return { ok: false, reason: `WebAuthn assertion refused: ${(err as Error).message}` };
  }
}

export interface VerifiedRegistration {
  credentialId: string;
  publicKey: string;
  counter: number;
  aaguid: string;
  transports: string[];
}

/** Verify an attestation (registration) response against the challenge this daemon issued. */
export async function verifyRegistration(
  response: RegistrationResponseJSON,
  expectedChallenge: string,
  rp: WebAuthnRelyingParty,
): Promise<VerifiedRegistration> {
  const origin = clientOrigin(response.response.clientDataJSON);
  if (!origin || !originAllowed(rp, origin))
    throw new WebAuthnRegistrationError(
      `credential made on ${origin ?? "an unreadable origin"}, not the console`,
    );
  let result: Awaited<ReturnType<typeof verifyRegistrationResponse>>;
  try {
    result = await verifyRegistrationResponse({
      response,
      expectedChallenge,
      expectedOrigin: origin,
      expectedRPID: rp.id,
      requireUserVerification: true,
      // ES256 (security keys, passkeys), EdDSA, RS256 (Windows Hello).
      supportedAlgorithmIDs: [-7, -8, -257],
    });
  } catch (err) {
    throw new WebAuthnRegistrationError(`WebAuthn registration refused: ${(err as Error).message}`);
  }
  if (!result.verified || !result.registrationInfo)
    throw new WebAuthnRegistrationError("WebAuthn registration does not verify");
  const info = result.registrationInfo;
  return {
    credentialId: info.credential.id,
    publicKey: Buffer.from(info.credential.publicKey).toString("base64url"),
    counter: info.credential.counter,
    aaguid: info.aaguid,
    transports: info.credential.transports ?? response.response.transports ?? [],
  };
}

/** What the browser's navigator.credentials.create() needs for a new credential of `principal` (JSON, base64url). */
export async function registrationOptions(
  rp: WebAuthnRelyingParty,
  principal: string,
  existing: readonly { credentialId: string }[],
): Promise<PublicKeyCredentialCreationOptionsJSON> {
  return generateRegistrationOptions({
    rpName: "lunafleet",
    rpID: rp.id,
    userName: principal,
    // A stable handle per principal (not secret, not personal data beyond the name the fleet file already holds).
    userID: new Uint8Array(
      createHash("sha256").update(`lunafleet-principal:${principal.toLowerCase()}`).digest(),
    ),
    attestationType: "none",
    excludeCredentials: existing.map((c) => ({ id: c.credentialId })),
    authenticatorSelection: { residentKey: "discouraged", userVerification: "required" },
    supportedAlgorithmIDs: [-7, -8, -257],
    timeout: 120_000,
  });
}

export class WebAuthnRegistrationError extends Error {
  override name = "WebAuthnRegistrationError";
}
