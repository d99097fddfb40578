// The API's TLS certificate: one given (`--api-cert`/`--api-key`, e.g. from the organisation's CA), or by default the
// daemon's own, generated once into the data dir (api-cert.pem, api-key.pem 0600) and reused, so clients can pin it:
// the CLI on the daemon host trusts the data dir's copy; elsewhere LUNAFLEET_CA names the PEM to trust.
// ECDSA P-256, valid two years, for 127.0.0.1, ::1, localhost and this host's name.
import "reflect-metadata";
import { X509Certificate as NodeX509, randomBytes, webcrypto } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

export interface ApiTls {
  cert: string;
  key: string;
  /** Where the certificate came from (for the start-up line). */
  source: string;
  /** SHA-256 fingerprint (colon hex), printed so a remote user can check what they trust. */
  fingerprint256: string;
}

export function apiCertPaths(dataDir: string): { cert: string; key: string } {
  return { cert: join(dataDir, "api-cert.pem"), key: join(dataDir, "api-key.pem") };
}

export async function loadOrCreateApiTls(
  dataDir: string,
  given?: { certFile: string; keyFile: string },
  extraNames: string[] = [],
): Promise<ApiTls> {
  if (given) {
    const cert = readFileSync(given.certFile, "utf8");
    return {
      cert,
      key: readFileSync(given.keyFile, "utf8"),
      source: given.certFile,
      fingerprint256: new NodeX509(cert).fingerprint256,
    };
  }
  const paths = apiCertPaths(dataDir);
  if (existsSync(paths.cert) && existsSync(paths.key)) {
    const cert = readFileSync(paths.cert, "utf8");
    const parsed = new NodeX509(cert);
    // Reuse it while it has a month left; else make a new one (clients pinned to the old one must re-read it).
    if (Date.parse(parsed.validTo) - Date.now() > 30 * 86_400_000)
      return {
        cert,
        key: readFileSync(paths.key, "utf8"),
        source: paths.cert,
        fingerprint256: parsed.fingerprint256,
      };
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, [
    "sign",
    "verify",
  ])) as webcrypto.CryptoKeyPair;
  const names = [...new Set(["localhost", hostname(), ...extraNames])];
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: (randomBytes(8)[0]! & 0x7f).toString(16).padStart(2, "0") + randomBytes(7).toString("hex"),
    name: "CN=lunafleet daemon API",
    notBefore: new Date(now - 3_600_000),
    notAfter: new Date(now + 730 * 86_400_000),
    signingAlgorithm: ALGORITHM,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        { type: "ip", value: "127.0.0.1" },
        { type: "ip", value: "::1" },
        ...names.map((n) => ({ type: "dns" as const, value: n })),
      ]),
    ],
  });
  const pkcs8 = Buffer.from((await webcrypto.subtle.exportKey("pkcs8", keys.privateKey)) as ArrayBuffer);
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8
    .toString("base64")
    .match(/.{1,64}/g)!
    .join("\n")}\n-----END PRIVATE KEY-----\n`;
  const certPem = `${cert.toString("pem").trim()}\n`;
  writeFileSync(paths.key, keyPem, { mode: 0o600 });
  chmodSync(paths.key, 0o600);
  writeFileSync(paths.cert, certPem, { mode: 0o644 });
  return {
    cert: certPem,
    key: keyPem,
    source: `${paths.cert} (generated)`,
    fingerprint256: new NodeX509(certPem).fingerprint256,
  };
}
