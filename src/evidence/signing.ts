// The daemon's signature over a job's evidence chain head. Whoever finishes writing to a log (the worker at the end
// of a job, the API after a late approval or cancel, a guard release) appends a `signature` record: an ed25519
// signature, by the daemon's key, over the job id and the seq and hash of the record it follows. A copy of the log is
// then complete only if its LAST record is such a signature that verifies with a trusted public key, so a file whose
// last records were removed, or that was emptied, fails on its own (`evidence verify --file`, no Redis needed).
// Limit, said plainly: a file cut back exactly to an earlier signature (a log signed, then appended to and signed
// again) verifies on its own; its Redis copy (`evidence verify <job>`) still shows the longer chain.
//
// The key: <dataDir>/evidence-signing-key.pem (PKCS#8, 0600), generated on first use, or one given
// (`--evidence-key`); its public half is published beside it (evidence-signing-key.pub.pem) and in Redis.
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { RedisClient } from "../redis/client.ts";
import type { EvidenceRecord } from "./record.ts";

export const SIGNING_KEYS_KEY = "lunafleet:evidence:signing-keys";

export interface EvidenceSignatureData {
  event: "head-signed";
  alg: "ed25519";
  keyId: string;
  /** The record this signature follows: its seq and hash (= this record's prevHash). */
  head: { seq: number; hash: string };
  /** base64 ed25519 signature over headMessage(jobId, head). */
  signature: string;
}

export function headMessage(jobId: string, head: { seq: number; hash: string }): string {
  return `lunafleet-evidence-head v1\njob: ${jobId}\nseq: ${head.seq}\nhash: ${head.hash}\n`;
}

/** Key id: the first 16 hex of SHA-256 over the public key's SPKI DER. */
export function keyIdOf(publicKey: KeyObject): string {
  return createHash("sha256")
    .update(publicKey.export({ type: "spki", format: "der" }))
    .digest("hex")
    .slice(0, 16);
}

export class EvidenceSigner {
  readonly keyId: string;
  readonly publicKeyPem: string;

  constructor(private readonly privateKey: KeyObject) {
    if (privateKey.asymmetricKeyType !== "ed25519")
      throw new Error("the evidence signing key must be ed25519");
    const pub = createPublicKey(privateKey);
    this.keyId = keyIdOf(pub);
    this.publicKeyPem = pub.export({ type: "spki", format: "pem" }).toString();
  }

  /** The signature record's data for the head it will follow (an EvidenceLog.append head-bound callback). */
  signHead(jobId: string) {
    return (head: { seq: number; hash: string }): EvidenceSignatureData => ({
      event: "head-signed",
      alg: "ed25519",
      keyId: this.keyId,
      head,
      signature: sign(null, Buffer.from(headMessage(jobId, head)), this.privateKey).toString("base64"),
    });
  }

  /** Publish the public key in Redis (keyId -> PEM), so any verifier on it knows the daemon's keys. */
  async publish(redis: RedisClient): Promise<void> {
    await redis.hset(SIGNING_KEYS_KEY, this.keyId, this.publicKeyPem);
  }
}

export function signingKeyPaths(dataDir: string): { key: string; pub: string } {
  return {
    key: join(dataDir, "evidence-signing-key.pem"),
    pub: join(dataDir, "evidence-signing-key.pub.pem"),
  };
}

/** The daemon's signer: the given key file, else the data dir's (created 0600 on first use). */
export function loadOrCreateSigner(dataDir: string, keyFile?: string): EvidenceSigner {
  const paths = signingKeyPaths(dataDir);
  if (keyFile) return new EvidenceSigner(createPrivateKey(readFileSync(keyFile, "utf8")));
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  if (!existsSync(paths.key)) {
    const { privateKey } = generateKeyPairSync("ed25519");
    writeFileSync(paths.key, privateKey.export({ type: "pkcs8", format: "pem" }).toString(), {
      mode: 0o600,
      flag: "wx",
    });
  }
  chmodSync(paths.key, 0o600);
  const signer = new EvidenceSigner(createPrivateKey(readFileSync(paths.key, "utf8")));
  writeFileSync(paths.pub, signer.publicKeyPem, { mode: 0o644 });
  return signer;
}

/** Trusted public keys by key id, from PEM texts (files, or Redis's published set). */
export function trustedKeys(pems: Iterable<string>): Map<string, KeyObject> {
  const out = new Map<string, KeyObject>();
  for (const pem of pems) {
    const key = createPublicKey(pem);
    out.set(keyIdOf(key), key);
  }
  return out;
}

export type SignatureCheck =
  | { ok: true; signatures: number; signedBy: string[] }
  | {
      ok: false;
      index: number;
      problem: "unsigned head" | "bad signature" | "unknown key" | "empty";
      detail: string;
    };

/**
 * Check a copy's signatures (its hash chain must already verify): every `signature` record verifies with a trusted
 * key over the head it follows, and the copy ends with one. `requireSealed: false` accepts a log still being written
 * (its last records not yet signed) as long as every signature in it verifies.
 */
export function checkEvidenceSignatures(
  records: readonly EvidenceRecord[],
  keys: ReadonlyMap<string, KeyObject>,
  opts: { requireSealed?: boolean } = {},
): SignatureCheck {
  if (records.length === 0)
    return { ok: false, index: 0, problem: "empty", detail: "record 0: empty: a log always has records" };
  const signedBy = new Set<string>();
  let signatures = 0;
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    if (r.kind !== "signature") continue;
    const d = r.data as Partial<EvidenceSignatureData>;
    const fail = (problem: "bad signature" | "unknown key", why: string): SignatureCheck => ({
      ok: false,
      index: i,
      problem,
      detail: `record ${i}: ${problem}: seq ${r.seq}: ${why}`,
    });
    if (d.alg !== "ed25519" || typeof d.signature !== "string" || !d.head || typeof d.keyId !== "string")
      return fail("bad signature", "not a head signature");
    const key = keys.get(d.keyId);
    if (!key) return fail("unknown key", `signed by key ${d.keyId}, not a trusted one`);
    const prev = records[i - 1];
    if (!prev || d.head.seq !== prev.seq || d.head.hash !== prev.hash || r.prevHash !== d.head.hash)
      return fail("bad signature", "it does not sign the record it follows");
    const good = verify(
      null,
      Buffer.from(headMessage(r.jobId, d.head)),
      key,
      Buffer.from(d.signature, "base64"),
    );
    if (!good) return fail("bad signature", `the signature does not verify with key ${d.keyId}`);
    signatures += 1;
    signedBy.add(d.keyId);
  }
  const last = records[records.length - 1]!;
  if ((opts.requireSealed ?? true) && last.kind !== "signature")
    return {
      ok: false,
      index: records.length - 1,
      problem: "unsigned head",
      detail: `record ${records.length - 1}: unsigned head: seq ${last.seq} is not followed by the daemon's signature (records removed from the end, or written after the last signature)`,
    };
  return { ok: true, signatures, signedBy: [...signedBy] };
}

/** The public keys a verifier on this host trusts: the data dir's published one and Redis's set, if reachable. */
export async function localTrustedKeys(
  dataDir: string,
  redis?: RedisClient,
): Promise<Map<string, KeyObject>> {
  const pems: string[] = [];
  const pub = signingKeyPaths(dataDir).pub;
  if (existsSync(pub)) pems.push(readFileSync(pub, "utf8"));
  if (redis) pems.push(...Object.values(await redis.hgetall(SIGNING_KEYS_KEY)));
  return trustedKeys(pems);
}

/** Append the daemon's signature over `log`'s current head (after a writer's last record). */
export async function sealEvidence(
  log: { jobId: string; append(kind: "signature", data: unknown, actor?: string): Promise<unknown> },
  signer: EvidenceSigner | undefined,
): Promise<void> {
  if (signer) await log.append("signature", signer.signHead(log.jobId), "daemon");
}
