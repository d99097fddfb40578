// SSH signatures as `ssh-keygen -Y sign` writes them (OpenSSH PROTOCOL.sshsig), verified in-process with Node's
// crypto: the worker re-verifies every approval at the moment it acts, and must not depend on a subprocess there.
// Real `ssh-keygen -Y sign` / `-Y verify` are the tests' oracle (test/signing), in both directions.
//
//   armored blob:  "SSHSIG" uint32(1) string(publickey) string(namespace) string(reserved) string(hash) string(sig)
//   signed data:   "SSHSIG" string(namespace) string(reserved) string(hash) string(H(message))
//
// FIDO (`sk-`) signatures wrap the authenticator's: the device signs
//   SHA256(application) || flags || uint32 counter || SHA256(signed data)
// and the blob carries flags and counter after the signature. The user-presence flag is required (a key that signed
// without a touch does not count), as `ssh-keygen -Y verify` requires it unless told otherwise.
import { createHash, verify as cryptoVerify } from "node:crypto";
import { keyFromBlob, type SshKeyType, sshFingerprint } from "./ssh-key.ts";
import { mpintToFixed, SshFormatError, SshReader, sshString, sshUint32 } from "./ssh-wire.ts";

const MAGIC = Buffer.from("SSHSIG", "ascii");
const BEGIN = "-----BEGIN SSH SIGNATURE-----";
const END = "-----END SSH SIGNATURE-----";
/** FIDO flags (PROTOCOL.u2f): user present; extension data follows (refused: OpenSSH signs none). */
const SK_USER_PRESENT = 0x01;
const SK_EXTENSION_DATA = 0x80;

export interface ParsedSshSignature {
  /** The signer's public key blob, as carried in the signature. */
  publicKey: Buffer;
  fingerprint: string;
  keyType: SshKeyType;
  namespace: string;
  hashAlgorithm: "sha256" | "sha512";
  /** The inner signature: algorithm name, raw bytes, and for FIDO keys the flags and counter. */
  signatureType: string;
  signature: Buffer;
  sk?: { flags: number; counter: number };
}

class SshSignatureError extends Error {
  override name = "SshSignatureError";
}

/** Parse an armored SSH signature. Throws SshSignatureError naming what is wrong. */
export function parseSshSignature(armored: string): ParsedSshSignature {
  const text = armored.trim();
  if (!text.startsWith(BEGIN) || !text.endsWith(END))
    throw new SshSignatureError(`not an armored SSH signature (${BEGIN} … ${END})`);
  const b64 = text.slice(BEGIN.length, text.length - END.length).replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) throw new SshSignatureError("the signature's base64 is malformed");
  try {
    const r = new SshReader(Buffer.from(b64, "base64"));
    if (!r.bytes(6).equals(MAGIC)) throw new SshSignatureError("missing SSHSIG preamble");
    const version = r.uint32();
    if (version !== 1) throw new SshSignatureError(`SSHSIG version ${version} (only 1 exists)`);
    const publicKey = Buffer.from(r.string());
    const namespace = r.text();
    r.string(); // reserved
    const hashAlgorithm = r.text();
    if (hashAlgorithm !== "sha256" && hashAlgorithm !== "sha512")
      throw new SshSignatureError(`hash algorithm '${hashAlgorithm}' (sha256 or sha512)`);
    const inner = new SshReader(r.string());
    r.end("SSHSIG");
    const signatureType = inner.text();
    const signature = Buffer.from(inner.string());
    const keyType = keyFromBlob(publicKey).type;
    const parsed: ParsedSshSignature = {
      publicKey,
      fingerprint: sshFingerprint(publicKey),
      keyType,
      namespace,
      hashAlgorithm,
      signatureType,
      signature,
    };
    if (keyType.startsWith("sk-")) parsed.sk = { flags: inner.byte(), counter: inner.uint32() };
    inner.end("signature");
    return parsed;
  } catch (err) {
    if (err instanceof SshFormatError) throw new SshSignatureError(`malformed SSH signature: ${err.message}`);
    throw err;
  }
}

/** The bytes an SSH signature is computed over, for a message and namespace. */
export function sshsigSignedData(
  message: Buffer,
  namespace: string,
  hashAlgorithm: "sha256" | "sha512",
): Buffer {
  return Buffer.concat([
    MAGIC,
    sshString(namespace),
    sshString(""),
    sshString(hashAlgorithm),
    sshString(createHash(hashAlgorithm).update(message).digest()),
  ]);
}

export type SshVerifyResult =
  | { ok: true; fingerprint: string; keyType: SshKeyType; counter?: number }
  | { ok: false; reason: string };

/**
 * Verify `armored` over `message` in `namespace`, by exactly the key whose blob is `expectedKey` (the registered
 * key; the key inside the signature is only a claim). Never throws for a bad signature: says why it failed.
 */
export function verifySshSignature(
  armored: string,
  message: Buffer | string,
  namespace: string,
  expectedKey: Buffer,
): SshVerifyResult {
  let sig: ParsedSshSignature;
  try {
    sig = parseSshSignature(armored);
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  }
  if (!sig.publicKey.equals(expectedKey))
    return {
      ok: false,
      reason: `signed by key ${sig.fingerprint}, not the registered ${sshFingerprint(expectedKey)}`,
    };
  if (sig.namespace !== namespace)
    return { ok: false, reason: `signature namespace '${sig.namespace}', expected '${namespace}'` };
  const { key, application } = keyFromBlob(expectedKey);
  const data = sshsigSignedData(
    typeof message === "string" ? Buffer.from(message, "utf8") : message,
    namespace,
    sig.hashAlgorithm,
  );
  let good: boolean;
  try {
    switch (sig.keyType) {
      case "ssh-ed25519":
        if (sig.signatureType !== "ssh-ed25519") return wrongAlgorithm(sig);
        good = cryptoVerify(null, data, key, sig.signature);
        break;
      case "ecdsa-sha2-nistp256":
        if (sig.signatureType !== "ecdsa-sha2-nistp256") return wrongAlgorithm(sig);
        good = cryptoVerify("sha256", data, { key, dsaEncoding: "ieee-p1363" }, ecdsaRaw(sig.signature));
        break;
      case "ssh-rsa": {
        const hash = { "rsa-sha2-256": "sha256", "rsa-sha2-512": "sha512" }[sig.signatureType];
        if (!hash)
          return { ok: false, reason: `RSA signature type '${sig.signatureType}' (SHA-1 is refused)` };
        good = cryptoVerify(hash, data, key, sig.signature);
        break;
      }
      case "sk-ssh-ed25519@openssh.com":
      case "sk-ecdsa-sha2-nistp256@openssh.com": {
        if (sig.signatureType !== sig.keyType) return wrongAlgorithm(sig);
        const { flags, counter } = sig.sk!;
        if ((flags & SK_USER_PRESENT) === 0)
          return { ok: false, reason: "the security key signed without user presence (no touch)" };
        if ((flags & SK_EXTENSION_DATA) !== 0)
          return {
            ok: false,
            reason: "security key signature with extension data (not produced by OpenSSH)",
          };
        const signed = Buffer.concat([
          createHash("sha256")
            .update(application ?? "")
            .digest(),
          Buffer.from([flags]),
          sshUint32(counter),
          createHash("sha256").update(data).digest(),
        ]);
        good =
          sig.keyType === "sk-ssh-ed25519@openssh.com"
            ? cryptoVerify(null, signed, key, sig.signature)
            : cryptoVerify("sha256", signed, { key, dsaEncoding: "ieee-p1363" }, ecdsaRaw(sig.signature));
        if (good) return { ok: true, fingerprint: sig.fingerprint, keyType: sig.keyType, counter };
        break;
      }
    }
  } catch (err) {
    return { ok: false, reason: `signature does not verify (${(err as Error).message})` };
  }
  return good
    ? { ok: true, fingerprint: sig.fingerprint, keyType: sig.keyType }
    : { ok: false, reason: "signature does not verify over this statement with the registered key" };
}

function wrongAlgorithm(sig: ParsedSshSignature): SshVerifyResult {
  return {
    ok: false,
    reason: `signature algorithm '${sig.signatureType}' does not match key type '${sig.keyType}'`,
  };
}

/** ECDSA's SSH signature blob (mpint r, mpint s) as the 64-byte r||s Node verifies with ieee-p1363. */
function ecdsaRaw(blob: Buffer): Buffer {
  const r = new SshReader(blob);
  const rr = mpintToFixed(r.string(), 32);
  const ss = mpintToFixed(r.string(), 32);
  r.end("ecdsa signature");
  return Buffer.concat([rr, ss]);
}

/** Armor a raw SSHSIG blob the way ssh-keygen does (70 columns); used by tests that build FIDO signatures. */
export function armorSshSignature(blob: Buffer): string {
  const b64 = blob.toString("base64");
  const lines = b64.match(/.{1,70}/g) ?? [];
  return `${BEGIN}\n${lines.join("\n")}\n${END}\n`;
}
