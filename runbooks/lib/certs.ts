// Certificates as the NTLS runbooks compare them: node's X509Certificate over PEM text fetched from devices and
// client hosts. Pure functions: no I/O. A text that is not a certificate is an error here, never "no certificate".
import { createHash, X509Certificate } from "node:crypto";
import { EngineError } from "../../src/engine/errors.ts";

const DAY_MS = 86_400_000;
const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

export interface CertFacts {
  subject: string;
  /** SHA-256 over the DER, colon-separated upper-case hex. */
  fingerprint256: string;
  /** MD5 over the DER in the colon form `client fingerprint` / `vtl fingerprint` print. */
  fingerprintMd5: string;
  validTo: string;
  /** Whole days until validTo, truncated toward zero (negative = days since it expired). */
  daysLeft: number;
  expired: boolean;
}

class CertificateUnreadable extends EngineError {
  override name = "CertificateUnreadable";
}

/** The certificate blocks of a PEM text (CAFile.pem holds several), each as its own PEM string. */
function splitPem(text: string): string[] {
  return [...text.matchAll(PEM_BLOCK)].map((m) => `${m[0]}\n`);
}

/** Facts of one PEM certificate; `where` names the file for the error. */
export function certFacts(pem: string, where: string, now: Date = new Date()): CertFacts {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pem);
  } catch (err) {
    throw new CertificateUnreadable(`${where}: not a readable X.509 certificate (${(err as Error).message})`);
  }
  const validTo = new Date(cert.validTo);
  return {
    subject: cert.subject.split("\n").filter(Boolean).join(", "),
    fingerprint256: cert.fingerprint256,
    fingerprintMd5: md5Colon(cert.raw),
    validTo: validTo.toISOString(),
    daysLeft: Math.trunc((validTo.getTime() - now.getTime()) / DAY_MS) || 0,
    expired: validTo.getTime() <= now.getTime(),
  };
}

/** Facts of every certificate in a PEM text (a bundle); an empty or unreadable bundle is an error. */
export function bundleFacts(text: string, where: string, now?: Date): CertFacts[] {
  const blocks = splitPem(text);
  if (blocks.length === 0 && text.trim() !== "")
    throw new CertificateUnreadable(`${where}: holds text but no PEM certificate`);
  return blocks.map((b, i) => certFacts(b, `${where} (certificate ${i + 1})`, now));
}

function md5Colon(der: Buffer): string {
  return createHash("md5").update(der).digest("hex").toUpperCase().match(/../g)!.join(":");
}
