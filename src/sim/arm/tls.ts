// The ARM twin's TLS material: a throw-away certificate authority and a server certificate it signs for
// 127.0.0.1 / ::1 / localhost. The Azure SDK refuses bearer tokens over plain http (see reference/azure.md §5.2),
// so the twin must speak real HTTPS; clients trust it by being handed `caPem` (never by disabling verification).
//
// A real CA + leaf (rather than one self-signed leaf) mirrors what a private ARM endpoint (Azure Stack, a proxy)
// presents, and lets a test prove that a client without the CA is refused.
import "reflect-metadata";
import { randomBytes, webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

// P-256: key generation is sub-millisecond, so every twin gets fresh keys without slowing the tests.
const ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const HOUR_MS = 60 * 60 * 1000;

export interface ArmTwinTls {
  /** PEM of the CA that signed the server certificate: what a client must trust. */
  caPem: string;
  /** Server certificate chain (leaf, then CA) as PEM. */
  certPem: string;
  /** PKCS#8 PEM of the server key. */
  keyPem: string;
}

/** Names the server certificate covers; default: localhost, 127.0.0.1 and ::1 (the ARM twin). */
export interface TwinTlsNames {
  dns: string[];
  ip: string[];
}

const ARM_NAMES: TwinTlsNames = { dns: ["localhost"], ip: ["127.0.0.1", "::1"] };

export async function generateArmTwinTls(names: TwinTlsNames = ARM_NAMES): Promise<ArmTwinTls> {
  const now = Date.now();
  // An hour of slack on either side of "now" absorbs clock differences between test processes.
  const notBefore = new Date(now - HOUR_MS);
  const notAfter = new Date(now + 48 * HOUR_MS);

  const caKeys = (await webcrypto.subtle.generateKey(ALGORITHM, true, [
    "sign",
    "verify",
  ])) as webcrypto.CryptoKeyPair;
  const caName = `CN=lunafleet ARM twin CA ${randomBytes(4).toString("hex")}`;
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: caName,
    notBefore,
    notAfter,
    signingAlgorithm: ALGORITHM,
    keys: caKeys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });

  const serverKeys = (await webcrypto.subtle.generateKey(ALGORITHM, true, [
    "sign",
    "verify",
  ])) as webcrypto.CryptoKeyPair;
  const server = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: "CN=localhost",
    issuer: ca.subject,
    notBefore,
    notAfter,
    signingAlgorithm: ALGORITHM,
    publicKey: serverKeys.publicKey,
    signingKey: caKeys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement,
        true,
      ),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        ...names.dns.map((value) => ({ type: "dns" as const, value })),
        ...names.ip.map((value) => ({ type: "ip" as const, value })),
      ]),
      await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });

  const pkcs8 = (await webcrypto.subtle.exportKey("pkcs8", serverKeys.privateKey)) as ArrayBuffer;
  const caPem = withNewline(ca.toString("pem"));
  return {
    caPem,
    certPem: withNewline(server.toString("pem")) + caPem,
    keyPem: pem("PRIVATE KEY", Buffer.from(pkcs8)),
  };
}

/** Positive 64-bit serial: the high bit is cleared so DER never needs a sign byte. */
function serial(): string {
  const bytes = randomBytes(8);
  bytes[0] = bytes[0]! & 0x7f;
  return bytes.toString("hex");
}

function pem(label: string, der: Buffer): string {
  const lines = der.toString("base64").match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

function withNewline(s: string): string {
  return s.endsWith("\n") ? s : s + "\n";
}
