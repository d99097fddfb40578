// The daemon's signature over a job's evidence chain head. Whoever finishes writing to a log (the worker at the end
// of an attempt, the API after a late approval or cancel, a guard release) appends a `signature` record: an ed25519
// signature, by the daemon's key, over the job id and the seq and hash of the record it follows. Two kinds:
//   intermediate  "lunafleet-evidence-head v1": the log so far (an attempt that will be retried, an approval given
//                 while the job waits, a pending guard-release request, a day's authentication failures);
//   final         "lunafleet-evidence-seal v1" + `final: <outcome>`: the log's writer is done (a job that will not run
//                 again, with its outcome; a release carried out). Before sealing final, the writer marks the log
//                 finished in Redis (finalMarkKey); every later writer to a finished log (a late approval refused)
//                 seals final again, so a finished log always ENDS with a final seal.
// What a copy proves on its own (`evidence verify --file`, no Redis):
//   - ending with a final seal: every record, in order, as the daemon wrote them up to the end of the job; a copy
//     cut back to any earlier seal no longer ends with a final one and fails (unless --unfinished, see below);
//   - ending with an intermediate seal (a running job's copy, --unfinished): records 1..that seal, in order, as the
//     daemon wrote them — and nothing about what came after: it cannot tell "still running" from "cut back to this
//     seal", nor show records appended after it. A copy holding a final seal that does not end with one fails always.
// Removed last records or an emptied file fail whatever the flag.
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
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
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
  /** Present on a final seal: the log's writer is done, with this outcome (signed with the rest). */
  final?: { outcome: string };
  /** base64 ed25519 signature over headMessage(jobId, head, final). */
  signature: string;
}

/** What is signed. A final seal's message differs from its first line on, so an intermediate one never passes for it. */
function headMessage(
  jobId: string,
  head: { seq: number; hash: string },
  final?: { outcome: string },
): string {
  const body = `job: ${jobId}\nseq: ${head.seq}\nhash: ${head.hash}\n`;
  return final
    ? `lunafleet-evidence-seal v1\n${body}final: ${final.outcome}\n`
    : `lunafleet-evidence-head v1\n${body}`;
}

/** Set (to the outcome) once a log's writer is done: every later seal of that log is final too. */
export function finalMarkKey(jobId: string): string {
  return `lunafleet:evidence:{${jobId}}:final`;
}

const OUTCOME_RE = /^[a-z][a-z-]{0,39}$/;

/** Key id: the first 16 hex of SHA-256 over the public key's SPKI DER. */
function keyIdOf(publicKey: KeyObject): string {
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
  signHead(jobId: string, final?: { outcome: string }) {
    if (final && !OUTCOME_RE.test(final.outcome)) throw new Error(`not an outcome word: ${final.outcome}`);
    return (head: { seq: number; hash: string }): EvidenceSignatureData => ({
      event: "head-signed",
      alg: "ed25519",
      keyId: this.keyId,
      head,
      ...(final ? { final: { outcome: final.outcome } } : {}),
      signature: sign(null, Buffer.from(headMessage(jobId, head, final)), this.privateKey).toString("base64"),
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

/**
 * The daemon's signer: the given key file, else the data dir's (created 0600 on first use). A given key file that
 * group or others may read is refused, as ssh refuses such a private key: whoever can read it can forge seals. Either
 * way the public half is published beside the data dir's key, for verifiers on this host.
 */
export function loadOrCreateSigner(dataDir: string, keyFile?: string): EvidenceSigner {
  const paths = signingKeyPaths(dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  if (keyFile) {
    const mode = statSync(keyFile).mode & 0o777;
    if (mode & 0o077)
      throw new Error(
        `evidence signing key ${keyFile} is readable by others (mode ${mode.toString(8).padStart(4, "0")}): chmod 600 it`,
      );
    const signer = new EvidenceSigner(createPrivateKey(readFileSync(keyFile, "utf8")));
    writeFileSync(paths.pub, signer.publicKeyPem, { mode: 0o644 });
    return signer;
  }
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

/**
 * The data dir's signer for a CLI on the daemon host, read-only: undefined when there is no key or this OS account
 * may not read it (what it appends then stays unsealed until the daemon's next seal of that log).
 */
export function readSigner(dataDir: string): EvidenceSigner | undefined {
  try {
    return new EvidenceSigner(createPrivateKey(readFileSync(signingKeyPaths(dataDir).key, "utf8")));
  } catch {
    return undefined;
  }
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

/**
 * How a copy must end: `final` (a finished log: a final seal), `sealed` (any seal: a log that may still grow, whose
 * writers sealed what they wrote), `growing` (a running job: its last records may not be signed yet). Whatever is
 * asked, a copy that holds a final seal must end with one.
 */
export type SealRequirement = "final" | "sealed" | "growing";

export type SignatureCheck =
  | {
      ok: true;
      signatures: number;
      signedBy: string[];
      /** The last record's seal: final (with the outcome), intermediate, or none (a growing log's unsigned head). */
      end: { seal: "final"; outcome: string } | { seal: "intermediate" } | { seal: "none" };
    }
  | {
      ok: false;
      index: number;
      problem: "unsigned head" | "not final" | "bad signature" | "unknown key" | "empty";
      detail: string;
    };

/**
 * Check a copy's signatures (its hash chain must already verify): every `signature` record verifies with a trusted
 * key over the head it follows (and, for a final seal, the outcome it names), and the copy ends as `require` says.
 */
export function checkEvidenceSignatures(
  records: readonly EvidenceRecord[],
  keys: ReadonlyMap<string, KeyObject>,
  opts: { require?: SealRequirement } = {},
): SignatureCheck {
  if (records.length === 0)
    return { ok: false, index: 0, problem: "empty", detail: "record 0: empty: a log always has records" };
  const signedBy = new Set<string>();
  let signatures = 0;
  let finalSeen = false;
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
    if (d.final !== undefined && (typeof d.final?.outcome !== "string" || !OUTCOME_RE.test(d.final.outcome)))
      return fail("bad signature", "a final seal without an outcome word");
    const key = keys.get(d.keyId);
    if (!key) return fail("unknown key", `signed by key ${d.keyId}, not a trusted one`);
    const prev = records[i - 1];
    if (!prev || d.head.seq !== prev.seq || d.head.hash !== prev.hash || r.prevHash !== d.head.hash)
      return fail("bad signature", "it does not sign the record it follows");
    const good = verify(
      null,
      Buffer.from(headMessage(r.jobId, d.head, d.final)),
      key,
      Buffer.from(d.signature, "base64"),
    );
    if (!good) return fail("bad signature", `the signature does not verify with key ${d.keyId}`);
    signatures += 1;
    signedBy.add(d.keyId);
    if (d.final) finalSeen = true;
  }
  const lastIndex = records.length - 1;
  const last = records[lastIndex]!;
  const lastData = last.data as Partial<EvidenceSignatureData>;
  const end: Extract<SignatureCheck, { ok: true }>["end"] =
    last.kind !== "signature"
      ? { seal: "none" }
      : lastData.final
        ? { seal: "final", outcome: lastData.final.outcome }
        : { seal: "intermediate" };
  const require = opts.require ?? "final";
  if (end.seal === "none" && (require !== "growing" || finalSeen))
    return {
      ok: false,
      index: lastIndex,
      problem: "unsigned head",
      detail: `record ${lastIndex}: unsigned head: seq ${last.seq} is not followed by the daemon's signature (records removed from the end, or written after the last signature)`,
    };
  if (end.seal === "intermediate" && (require === "final" || finalSeen))
    return {
      ok: false,
      index: lastIndex,
      problem: "not final",
      detail: finalSeen
        ? `record ${lastIndex}: not final: the log was sealed final earlier but ends at an intermediate seal (seq ${last.seq}): records after it were removed`
        : `record ${lastIndex}: not final: the copy ends at an intermediate seal (seq ${last.seq}), not the final seal of a finished job: records after it were removed, or the log was still being written when copied (a running job: verify with --unfinished, which proves records 1-${last.seq} only)`,
    };
  return { ok: true, signatures, signedBy: [...signedBy], end };
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

type SealableLog = {
  jobId: string;
  append(kind: "signature", data: unknown, actor?: string): Promise<unknown>;
};

/**
 * Append the daemon's signature over `log`'s current head (after a writer's last record). With `redis`, the seal is
 * final when the log was already finished (its final mark is set); an intermediate seal is followed by a final one if
 * the log was finished meanwhile (the finishing writer marks before it seals, so one of the two seals comes last).
 */
export async function sealEvidence(
  log: SealableLog,
  signer: EvidenceSigner | undefined,
  redis?: Pick<RedisClient, "get">,
): Promise<void> {
  if (!signer) return;
  const marked = async () => (redis ? ((await redis.get(finalMarkKey(log.jobId))) ?? undefined) : undefined);
  const before = await marked();
  await log.append(
    "signature",
    signer.signHead(log.jobId, before ? { outcome: before } : undefined),
    "daemon",
  );
  if (before) return;
  const after = await marked();
  if (after) await log.append("signature", signer.signHead(log.jobId, { outcome: after }), "daemon");
}

/**
 * Mark a log finished with `outcome` (first mark wins) and return the outcome it is marked with. A worker marks its
 * job before it lets the device locks go, so whoever takes them next sees the job as ended (process-job.ts).
 */
export async function markFinal(
  redis: Pick<RedisClient, "set" | "get">,
  jobId: string,
  outcome: string,
): Promise<string> {
  if (!OUTCOME_RE.test(outcome)) throw new Error(`not an outcome word: ${outcome}`);
  // Sent together on one connection, so the GET reads after the SET: one round trip, on any Redis version (SET NX
  // GET needs 7.0).
  const [, stored] = await Promise.all([
    redis.set(finalMarkKey(jobId), outcome, "NX"),
    redis.get(finalMarkKey(jobId)),
  ]);
  return stored ?? outcome;
}

/** Append the daemon's final seal (the log's writer is done, with `outcome`) over `log`'s current head. */
export async function signFinal(
  log: SealableLog,
  signer: EvidenceSigner | undefined,
  outcome: string,
): Promise<void> {
  if (signer) await log.append("signature", signer.signHead(log.jobId, { outcome }), "daemon");
}

/** The log's writer is done: mark it finished with `outcome` (first mark wins), then seal it final. */
export async function sealFinal(
  log: SealableLog,
  signer: EvidenceSigner | undefined,
  redis: Pick<RedisClient, "set" | "get">,
  outcome: string,
): Promise<void> {
  await signFinal(log, signer, await markFinal(redis, log.jobId, outcome));
}
