// OpenSSH-style host key fingerprints: "SHA256:" + unpadded base64 of the SHA-256 of the key blob, exactly what
// `ssh-keygen -lf` and `ssh` print, so an operator can compare what lunafleet shows with what the device shows.
import { createHash, timingSafeEqual } from "node:crypto";

export function sshFingerprint(keyBlob: Buffer): string {
  return `SHA256:${createHash("sha256").update(keyBlob).digest("base64").replace(/=+$/, "")}`;
}

/** Compare two fingerprints; tolerant of a trailing '=' pad, constant time over equal lengths. */
export function fingerprintsEqual(a: string, b: string): boolean {
  const x = Buffer.from(a.replace(/=+$/, ""));
  const y = Buffer.from(b.replace(/=+$/, ""));
  return x.length === y.length && timingSafeEqual(x, y);
}
