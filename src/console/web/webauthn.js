// The browser side of security keys and passkeys: making a credential (registration) and signing an approval
// statement with it (an assertion whose challenge is the statement's SHA-256, exactly what the server rebuilds).

export function toB64url(buffer) {
  let s = "";
  for (const b of new Uint8Array(buffer)) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function fromB64url(text) {
  const s = atob(
    text
      .replace(/-/g, "+")
      .replace(/_/g, "/")
      .padEnd(Math.ceil(text.length / 4) * 4, "="),
  );
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

export function available() {
  return typeof window.PublicKeyCredential === "function" && window.isSecureContext;
}

/** navigator.credentials.create() from the server's options (JSON); the attestation as JSON for the server. */
export async function createCredential(options) {
  const publicKey = {
    ...options,
    challenge: fromB64url(options.challenge),
    user: { ...options.user, id: fromB64url(options.user.id) },
    excludeCredentials: (options.excludeCredentials ?? []).map((c) => ({ ...c, id: fromB64url(c.id) })),
  };
  const cred = await navigator.credentials.create({ publicKey });
  const r = cred.response;
  return {
    id: cred.id,
    rawId: toB64url(cred.rawId),
    type: cred.type,
    response: {
      clientDataJSON: toB64url(r.clientDataJSON),
      attestationObject: toB64url(r.attestationObject),
      transports: typeof r.getTransports === "function" ? r.getTransports() : [],
    },
    clientExtensionResults: cred.getClientExtensionResults(),
    ...(cred.authenticatorAttachment ? { authenticatorAttachment: cred.authenticatorAttachment } : {}),
  };
}

/** Sign `statement` with one of `credentialIds` (the user's registered keys): the assertion the API verifies. */
export async function signStatement(statement, rpId, credentialIds) {
  const challenge = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(statement));
  const cred = await navigator.credentials.get({
    publicKey: {
      challenge,
      rpId,
      allowCredentials: credentialIds.map((id) => ({ type: "public-key", id: fromB64url(id) })),
      userVerification: "required",
      timeout: 120000,
    },
  });
  const r = cred.response;
  return {
    credentialId: toB64url(cred.rawId),
    authenticatorData: toB64url(r.authenticatorData),
    clientDataJSON: toB64url(r.clientDataJSON),
    signature: toB64url(r.signature),
    ...(r.userHandle && r.userHandle.byteLength > 0 ? { userHandle: toB64url(r.userHandle) } : {}),
  };
}
