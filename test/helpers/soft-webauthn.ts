// A software WebAuthn authenticator for tests below the browser: it makes what a security key makes — a P-256
// credential with a "none" attestation, and assertions (authenticator data || SHA-256(client data), ECDSA) with a
// signature counter — byte for byte in the formats of the WebAuthn spec, so the server side is verified by
// @simplewebauthn/server exactly as a browser's would be. The console's end-to-end test uses Chromium's virtual
// authenticator instead; this one lets tests forge what a browser never would (another origin, an old counter).
import { createHash, generateKeyPairSync, type KeyObject, randomBytes, sign } from "node:crypto";

/** Minimal CBOR (RFC 8949) encoder for what attestation objects and COSE keys hold: ints, bytes, text, maps. */
function cbor(value: unknown): Buffer {
  const head = (major: number, n: number): Buffer => {
    if (n < 24) return Buffer.from([(major << 5) | n]);
    if (n < 256) return Buffer.from([(major << 5) | 24, n]);
    if (n < 65536) return Buffer.from([(major << 5) | 25, n >> 8, n & 255]);
    const b = Buffer.alloc(5);
    b[0] = (major << 5) | 26;
    b.writeUInt32BE(n, 1);
    return b;
  };
  if (typeof value === "number") return value >= 0 ? head(0, value) : head(1, -1 - value);
  if (typeof value === "string") {
    const bytes = Buffer.from(value, "utf8");
    return Buffer.concat([head(3, bytes.length), bytes]);
  }
  if (value instanceof Uint8Array) return Buffer.concat([head(2, value.length), Buffer.from(value)]);
  if (value instanceof Map) {
    const parts: Buffer[] = [head(5, value.size)];
    for (const [k, v] of value) parts.push(cbor(k), cbor(v));
    return Buffer.concat(parts);
  }
  throw new Error(`cbor: cannot encode ${typeof value}`);
}

const sha256 = (data: Buffer | string) => createHash("sha256").update(data).digest();

export interface SoftCredential {
  id: Buffer;
  key: KeyObject;
  counter: number;
  rpId: string;
}

export class SoftWebAuthn {
  readonly credential: SoftCredential;
  readonly #publicKey: KeyObject;

  constructor(rpId = "localhost") {
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    this.credential = { id: randomBytes(32), key: privateKey, counter: 0, rpId };
    this.#publicKey = publicKey;
  }

  get credentialId(): string {
    return this.credential.id.toString("base64url");
  }

  /** The credential's COSE public key, base64url (what a server stores from the attestation). */
  get publicKey(): string {
    return this.#coseKey().toString("base64url");
  }

  #coseKey(): Buffer {
    const jwk = this.#publicKey.export({ format: "jwk" }) as { x: string; y: string };
    return cbor(
      new Map<number, unknown>([
        [1, 2], // kty: EC2
        [3, -7], // alg: ES256
        [-1, 1], // crv: P-256
        [-2, Buffer.from(jwk.x, "base64url")],
        [-3, Buffer.from(jwk.y, "base64url")],
      ]),
    );
  }

  #authData(flags: number, attested: boolean): Buffer {
    const counter = Buffer.alloc(4);
    counter.writeUInt32BE(this.credential.counter);
    const parts: Buffer[] = [sha256(this.credential.rpId), Buffer.from([flags]), counter];
    if (attested) {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(this.credential.id.length);
      parts.push(Buffer.alloc(16), len, this.credential.id, this.#coseKey());
    }
    return Buffer.concat(parts);
  }

  /** navigator.credentials.create(): the RegistrationResponseJSON a browser posts (attestation "none"). */
  create(challenge: string, origin: string) {
    const clientDataJSON = Buffer.from(
      JSON.stringify({ type: "webauthn.create", challenge, origin, crossOrigin: false }),
    );
    // UP (0x01) | UV (0x04) | AT (0x40)
    const authData = this.#authData(0x45, true);
    const attestationObject = cbor(
      new Map<string, unknown>([
        ["fmt", "none"],
        ["attStmt", new Map()],
        ["authData", authData],
      ]),
    );
    return {
      id: this.credentialId,
      rawId: this.credentialId,
      type: "public-key" as const,
      response: {
        clientDataJSON: clientDataJSON.toString("base64url"),
        attestationObject: attestationObject.toString("base64url"),
        transports: ["usb"],
      },
      clientExtensionResults: {},
    };
  }

  /** navigator.credentials.get() over `statement` (challenge = its SHA-256), as the console's approve button does. */
  assert(statement: string, origin: string, opts: { userVerified?: boolean; counter?: number } = {}) {
    this.credential.counter = opts.counter ?? this.credential.counter + 1;
    const clientDataJSON = Buffer.from(
      JSON.stringify({
        type: "webauthn.get",
        challenge: sha256(statement).toString("base64url"),
        origin,
        crossOrigin: false,
      }),
    );
    const authData = this.#authData(opts.userVerified === false ? 0x01 : 0x05, false);
    const signature = sign("sha256", Buffer.concat([authData, sha256(clientDataJSON)]), {
      key: this.credential.key,
      dsaEncoding: "der",
    });
    return {
      credentialId: this.credentialId,
      authenticatorData: authData.toString("base64url"),
      clientDataJSON: clientDataJSON.toString("base64url"),
      signature: signature.toString("base64url"),
    };
  }
}
