// OpenSSH public keys ("<type> <base64 blob> [comment]", as in authorized_keys / allowed_signers): parsed into the
// key material Node's crypto verifies with, and fingerprinted the way `ssh-keygen -l` prints it (SHA256:<base64>).
//
// Accepted types are the ones an approver's key may be: ed25519 and ECDSA P-256, each also as a FIDO security key
// (`sk-` types, `ssh-keygen -t ed25519-sk`), and RSA (signatures rsa-sha2-256/512 only). ECDSA P-384/P-521 and DSA
// are refused: nobody issues them for this, and every accepted type is one more verification path to trust.
import { createHash, createPublicKey, type KeyObject } from "node:crypto";
import { SshFormatError, SshReader } from "./ssh-wire.ts";

export type SshKeyType =
  | "ssh-ed25519"
  | "sk-ssh-ed25519@openssh.com"
  | "ecdsa-sha2-nistp256"
  | "sk-ecdsa-sha2-nistp256@openssh.com"
  | "ssh-rsa";

const SSH_KEY_TYPES: readonly SshKeyType[] = [
  "ssh-ed25519",
  "sk-ssh-ed25519@openssh.com",
  "ecdsa-sha2-nistp256",
  "sk-ecdsa-sha2-nistp256@openssh.com",
  "ssh-rsa",
];

export interface SshPublicKey {
  type: SshKeyType;
  /** The wire blob (what the base64 encodes); two keys are the same key iff their blobs are equal. */
  blob: Buffer;
  /** `SHA256:<unpadded base64>` of the blob, as `ssh-keygen -l` prints it. */
  fingerprint: string;
  comment: string;
  /** For verification. */
  key: KeyObject;
  /** FIDO keys: the application string the authenticator signs for (normally "ssh:"). */
  application?: string;
  /** True for `sk-` (security key) types. */
  securityKey: boolean;
}

class SshKeyError extends Error {
  override name = "SshKeyError";
}

export function sshFingerprint(blob: Buffer): string {
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

/** Parse one public key line. Throws SshKeyError saying what is wrong (never echoing the line). */
export function parseSshPublicKey(line: string): SshPublicKey {
  const parts = line.trim().split(/\s+/);
  if (parts.length < 2) throw new SshKeyError("not an OpenSSH public key line (<type> <base64> [comment])");
  const [typeName, b64, ...rest] = parts as [string, string, ...string[]];
  if (!(SSH_KEY_TYPES as readonly string[]).includes(typeName))
    throw new SshKeyError(`key type '${typeName}' is not accepted (${SSH_KEY_TYPES.join(", ")})`);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) throw new SshKeyError("the key's base64 is malformed");
  const blob = Buffer.from(b64, "base64");
  try {
    const parsed = keyFromBlob(blob);
    if (parsed.type !== typeName)
      throw new SshKeyError(`the line says '${typeName}' but the key inside is '${parsed.type}'`);
    return { ...parsed, blob, fingerprint: sshFingerprint(blob), comment: rest.join(" ") };
  } catch (err) {
    if (err instanceof SshFormatError) throw new SshKeyError(`malformed ${typeName} key: ${err.message}`);
    throw err;
  }
}

/** The key inside a wire blob (an SSH signature carries its signer's key this way). */
export function keyFromBlob(
  blob: Buffer,
): Pick<SshPublicKey, "type" | "key" | "application" | "securityKey"> {
  const r = new SshReader(blob);
  const type = r.text();
  switch (type) {
    case "ssh-ed25519":
    case "sk-ssh-ed25519@openssh.com": {
      const pk = r.string();
      if (pk.length !== 32) throw new SshFormatError(`ed25519 key of ${pk.length} bytes`);
      const application = type === "ssh-ed25519" ? undefined : r.text();
      r.end(type);
      const key = createPublicKey({
        key: { kty: "OKP", crv: "Ed25519", x: pk.toString("base64url") },
        format: "jwk",
      });
      return { type, key, securityKey: application !== undefined, ...(application ? { application } : {}) };
    }
    case "ecdsa-sha2-nistp256":
    case "sk-ecdsa-sha2-nistp256@openssh.com": {
      const curve = r.text();
      if (curve !== "nistp256") throw new SshFormatError(`curve '${curve}' in a ${type} key`);
      const q = r.string();
      if (q.length !== 65 || q[0] !== 0x04)
        throw new SshFormatError("P-256 point is not uncompressed (65 bytes)");
      const application = type === "ecdsa-sha2-nistp256" ? undefined : r.text();
      r.end(type);
      const key = createPublicKey({
        key: {
          kty: "EC",
          crv: "P-256",
          x: q.subarray(1, 33).toString("base64url"),
          y: q.subarray(33).toString("base64url"),
        },
        format: "jwk",
      });
      return { type, key, securityKey: application !== undefined, ...(application ? { application } : {}) };
    }
    case "ssh-rsa": {
      const e = r.string();
      const n = r.string();
      r.end(type);
      const modulus = n[0] === 0 ? n.subarray(1) : n;
      if (modulus.length * 8 < 2048) throw new SshFormatError("RSA keys under 2048 bits are refused");
      const key = createPublicKey({
        key: { kty: "RSA", n: modulus.toString("base64url"), e: stripZero(e).toString("base64url") },
        format: "jwk",
      });
      return { type, key, securityKey: false };
    }
    default:
      throw new SshKeyError(`key type '${type}' is not accepted`);
  }
}

function stripZero(b: Buffer): Buffer {
  let v = b;
  while (v.length > 1 && v[0] === 0) v = v.subarray(1);
  return v;
}
