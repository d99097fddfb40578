// One evidence record and its hash. The chain: record n carries prevHash = hash of record n-1 (record 1: the genesis
// hash, sha256 of the job id), and hash = sha256(canonical JSON of the record without its hash field). Changing,
// removing, inserting or reordering any record changes a hash that a later record has already committed to.
import { createHash } from "node:crypto";
import { canonicalJson, sha256Hex } from "./canonical.ts";

/** What a record says happened. Verification accepts any non-empty kind (older logs may use newer names). */
export const EVIDENCE_KINDS = [
  "requested", // who asked for which runbook on which target
  "param", // a resolved parameter (after redaction)
  "plan", // the steps and commands about to run
  "lock", // device locks taken / released, with fencing tokens
  "command", // a command sent to a device or host
  "reply", // the raw (redacted) reply
  "parse", // the structured result of parsing a reply
  "guard", // login guard decision, attempt, outcome
  "step", // a step started / finished / skipped (checkpoint)
  "approval", // an approval or a typed confirmation
  "azure", // an ARM request and its outcome
  "error", // a failure and where it happened
  "result", // the job's final result (the file copy is fsynced after this)
  "note", // anything an operator or runbook wants on the record
  "auth", // an authentication refused (who tried, from where, why; never the credential)
  "signature", // the daemon's signature over the chain head (src/evidence/signing.ts)
] as const;
export type EvidenceKind = (typeof EVIDENCE_KINDS)[number];

export interface EvidenceRecord {
  /** 1, 2, 3, ... without gaps. */
  seq: number;
  jobId: string;
  /** ISO 8601 time the record was made. */
  at: string;
  kind: string;
  /** Who did it: a principal (operator), "worker:<id>", "scheduler"... */
  actor?: string;
  /** Plain JSON, already redacted. */
  data: unknown;
  prevHash: string;
  hash: string;
}

const JOB_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

export function isValidJobId(jobId: string): boolean {
  return JOB_ID_RE.test(jobId);
}

/** prevHash of the first record of a job. */
export function genesisHash(jobId: string): string {
  return sha256Hex(jobId);
}

/** The hash a record must carry: over every field except `hash` itself. */
export function computeRecordHash(record: Omit<EvidenceRecord, "hash"> & { hash?: string }): string {
  const { hash: _ignored, ...body } = record;
  return sha256Hex(canonicalJson(body));
}

/** The exact line stored in Redis and in the JSONL file. */
export function serializeRecord(record: EvidenceRecord): string {
  return canonicalJson(record);
}

/**
 * Build a record's hash and its stored line together, serializing its data once (the record's own fields are few
 * and flat; `data` is most of the bytes). Equal to computeRecordHash + serializeRecord (a test holds them to it).
 */
export function buildRecord(body: Omit<EvidenceRecord, "hash">): { record: EvidenceRecord; line: string } {
  const { data, ...fields } = body;
  const { hash, line } = buildRecordLine(fields, canonicalJson(data));
  return { record: { ...body, hash }, line };
}

/** buildRecord for data already in canonical JSON (the evidence log makes it once, at append: sanitize.ts). */
export function buildRecordLine(
  fields: Omit<EvidenceRecord, "hash" | "data">,
  dataJson: string,
): { hash: string; line: string } {
  // canonicalJson sorts keys: actor, at, data, [hash], jobId, kind, prevHash, seq.
  const head = `{${fields.actor !== undefined ? `"actor":${JSON.stringify(fields.actor)},` : ""}"at":${JSON.stringify(fields.at)},"data":`;
  const tail = `"jobId":${JSON.stringify(fields.jobId)},"kind":${JSON.stringify(fields.kind)},"prevHash":${JSON.stringify(fields.prevHash)},"seq":${canonicalJson(fields.seq)}}`;
  // Hashed piece by piece: the same bytes as the whole text without the hash, never made as one more string.
  const hash = createHash("sha256").update(head).update(dataJson).update(",").update(tail).digest("hex");
  return { hash, line: `${head}${dataJson},"hash":"${hash}",${tail}` };
}
