// Real X.509 certificates for the twin: the NTLS server certificate of each simulated appliance (and anything else
// the twin must present over TLS). They are genuine certificates with real validity windows, so an expired one is
// refused by node's `tls` exactly as a real client refuses an expired server.pem.
//
// Keys are ECDSA P-256, not RSA 2048 as a real Luna appliance uses: the scale benchmark starts 1,000 appliances and
// each needs a certificate at start-up (and again on every `sysconf regenCert`). P-256 key generation takes well under
// a millisecond; RSA 2048 takes tens of milliseconds of CPU each, which would dominate the twin's start time.
import "reflect-metadata";
import { createHash, X509Certificate as NodeX509Certificate, randomBytes, webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const DAY_MS = 24 * 60 * 60 * 1000;

export interface GeneratedCert {
  certPem: string;
  /** PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), what node's `tls.createSecureContext({ key })` takes. */
  keyPem: string;
  /** Upper-case colon-separated SHA-256 of the DER, as node's `X509Certificate.fingerprint256` prints it. */
  fingerprintSha256: string;
  notBefore: Date;
  notAfter: Date;
}

export interface CertRequest {
  commonName: string;
  /** Validity in days from `notBefore` (or from now); may be negative: the certificate is then already expired. */
  validDays: number;
  /** Start of validity; default: one hour before now (a little slack for clock differences between processes). */
  notBefore?: Date;
  /** The clock to count from (tests and the factory's `now`); default: the real time. */
  now?: Date;
  /** Extra DNS names / IP addresses for the subjectAltName (the common name is always included). */
  altNames?: string[];
}

/** A self-signed certificate with a fresh P-256 key. */
export async function generateSelfSignedCert(req: CertRequest): Promise<GeneratedCert> {
  const now = req.now?.getTime() ?? Date.now();
  let notBefore = req.notBefore ?? new Date(now - 60 * 60 * 1000);
  // "Valid for N days" counts from the given start, or from now (not from the back-dated default start).
  let notAfter = new Date((req.notBefore?.getTime() ?? now) + req.validDays * DAY_MS);
  if (req.validDays <= 0) {
    // An expired certificate must still be well formed (notBefore < notAfter): place the whole window in the past,
    // ending `-validDays` days ago (at least one second ago), lasting a year as a real one would have.
    notAfter = new Date(Math.min(now - 1000, now + req.validDays * DAY_MS));
    notBefore = new Date(notAfter.getTime() - 365 * DAY_MS);
  }
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, [
    "sign",
    "verify",
  ])) as webcrypto.CryptoKeyPair;
  const names = [req.commonName, ...(req.altNames ?? [])];
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    // Positive 64-bit serial: the high bit is cleared so DER never needs a sign byte.
    serialNumber: (randomBytes(8)[0]! & 0x7f).toString(16).padStart(2, "0") + randomBytes(7).toString("hex"),
    name: `CN=${escapeDn(req.commonName)}`,
    notBefore,
    notAfter,
    signingAlgorithm: ALGORITHM,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement,
        true,
      ),
      new x509.ExtendedKeyUsageExtension([
        x509.ExtendedKeyUsage.serverAuth,
        x509.ExtendedKeyUsage.clientAuth,
      ]),
      new x509.SubjectAlternativeNameExtension(
        names.map((n) => (isIpAddress(n) ? { type: "ip", value: n } : { type: "dns", value: n })),
      ),
    ],
  });
  const certPem = cert.toString("pem");
  const pkcs8 = (await webcrypto.subtle.exportKey("pkcs8", keys.privateKey)) as ArrayBuffer;
  const keyPem = toPem("PRIVATE KEY", Buffer.from(pkcs8));
  const parsed = new NodeX509Certificate(certPem);
  return {
    certPem: ensureTrailingNewline(certPem),
    keyPem,
    fingerprintSha256: parsed.fingerprint256,
    notBefore: new Date(parsed.validFrom),
    notAfter: new Date(parsed.validTo),
  };
}

/** `client fingerprint` prints an MD5 over the DER, as 16 upper-case colon-separated hex pairs. */
export function md5ColonFingerprint(certPem: string): string {
  const der = new NodeX509Certificate(certPem).raw;
  return colonHex(createHash("md5").update(der).digest());
}

function colonHex(buf: Buffer): string {
  return [...buf].map((b) => b.toString(16).toUpperCase().padStart(2, "0")).join(":");
}

function toPem(label: string, der: Buffer): string {
  const b64 = der.toString("base64").replace(/(.{64})/g, "$1\n");
  return `-----BEGIN ${label}-----\n${b64.replace(/\n$/, "")}\n-----END ${label}-----\n`;
}

function ensureTrailingNewline(s: string): string {
  return s.endsWith("\n") ? s : `${s}\n`;
}

function escapeDn(value: string): string {
  return value.replace(/([,+"\\<>;=])/g, "\\$1");
}

function isIpAddress(s: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(s) || (s.includes(":") && /^[0-9a-fA-F:]+$/.test(s));
}
