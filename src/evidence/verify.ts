// Verifying a job's evidence: recompute every hash, walk the chain from the genesis hash, check the sequence.
// The first problem found is reported with the index (0-based position in the copy being checked) and why.
import { readFile } from "node:fs/promises";
import { computeRecordHash, type EvidenceRecord, genesisHash, serializeRecord } from "./record.ts";

export type EvidenceProblem =
  | "unparseable" // a line of the file is not JSON (a torn write, or an edit)
  | "malformed record" // JSON, but not a record (missing or mistyped fields, unknown fields)
  | "job mismatch" // a record of another job
  | "hash mismatch" // the record's content does not match its own hash: it was changed
  | "sequence gap" // a record is missing here
  | "reordered" // records are out of order
  | "duplicate" // the same sequence number twice
  | "broken chain" // prevHash does not match the previous record's hash (or the genesis hash)
  | "copies differ" // Redis and file copies hold different records at this index
  | "missing records" // one copy stops here, the other goes on
  | "redis unavailable"; // (CLI) the Redis copy could not be read

export type EvidenceVerification =
  | { ok: true; count: number; headHash: string; jobId?: string }
  | { ok: false; index: number; problem: EvidenceProblem; detail: string };

const HEX64 = /^[0-9a-f]{64}$/;
const FIELDS = new Set(["seq", "jobId", "at", "kind", "actor", "data", "prevHash", "hash"]);

/** Is `x` shaped like an EvidenceRecord? Returns what is wrong, or undefined. */
function shapeProblem(x: unknown): string | undefined {
  if (typeof x !== "object" || x === null || Array.isArray(x)) return "not an object";
  const r = x as Record<string, unknown>;
  for (const k of Object.keys(r)) if (!FIELDS.has(k)) return `unknown field "${k}"`;
  if (!Number.isSafeInteger(r.seq) || (r.seq as number) < 1) return "seq is not a positive integer";
  if (typeof r.jobId !== "string" || r.jobId === "") return "jobId missing";
  if (typeof r.at !== "string" || Number.isNaN(Date.parse(r.at))) return "at is not a timestamp";
  if (typeof r.kind !== "string" || r.kind === "") return "kind missing";
  if (r.actor !== undefined && typeof r.actor !== "string") return "actor is not a string";
  if (!("data" in r)) return "data missing";
  if (typeof r.prevHash !== "string" || !HEX64.test(r.prevHash)) return "prevHash is not a sha256 hex";
  if (typeof r.hash !== "string" || !HEX64.test(r.hash)) return "hash is not a sha256 hex";
  return undefined;
}

/**
 * Verify one copy of a job's records. `jobId`, when given, must be the job of every record (an empty copy of a
 * known job verifies with headHash = genesis). Without it, the first record's job is taken.
 */
export function verifyEvidence(records: readonly unknown[], jobId?: string): EvidenceVerification {
  const fail = (index: number, problem: EvidenceProblem, detail: string): EvidenceVerification => ({
    ok: false,
    index,
    problem,
    detail: `record ${index}: ${problem}: ${detail}`,
  });
  const job = jobId ?? (records[0] as { jobId?: unknown } | undefined)?.jobId;
  if (records.length > 0 && typeof job !== "string") return fail(0, "malformed record", "jobId missing");
  let prevHash = typeof job === "string" ? genesisHash(job) : "";
  const seqs = records.map((r) => (r as { seq?: unknown } | null)?.seq);
  for (let i = 0; i < records.length; i++) {
    const shape = shapeProblem(records[i]);
    if (shape) return fail(i, "malformed record", shape);
    const rec = records[i] as EvidenceRecord;
    if (rec.jobId !== job)
      return fail(i, "job mismatch", `record of job ${rec.jobId} in the log of job ${job}`);
    const computed = computeRecordHash(rec);
    if (computed !== rec.hash) {
      return fail(
        i,
        "hash mismatch",
        `seq ${rec.seq}: stored ${short(rec.hash)}, content hashes to ${short(computed)}`,
      );
    }
    const expected = i + 1;
    if (rec.seq !== expected) {
      if (i > 0 && rec.seq === seqs[i - 1]) return fail(i, "duplicate", `seq ${rec.seq} appears twice`);
      const laterHasExpected = seqs.slice(i + 1).includes(expected);
      if (laterHasExpected || rec.seq < expected) {
        return fail(i, "reordered", `expected seq ${expected} here, found seq ${rec.seq}`);
      }
      return fail(
        i,
        "sequence gap",
        `expected seq ${expected}, found seq ${rec.seq}: ${rec.seq - expected} missing`,
      );
    }
    if (rec.prevHash !== prevHash) {
      return fail(
        i,
        "broken chain",
        `seq ${rec.seq}: prevHash ${short(rec.prevHash)} but the previous ${i === 0 ? "(genesis) " : ""}hash is ${short(prevHash)}`,
      );
    }
    prevHash = rec.hash;
  }
  return {
    ok: true,
    count: records.length,
    headHash: prevHash,
    ...(typeof job === "string" ? { jobId: job } : {}),
  };
}

export type ParsedEvidenceFile =
  | { ok: true; records: unknown[]; lines: string[] }
  | { ok: false; index: number; detail: string };

/** Parse a JSONL evidence file (one record per line; a final newline is expected, blank lines are not allowed). */
export function parseEvidenceJsonl(text: string): ParsedEvidenceFile {
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  const records: unknown[] = [];
  for (let i = 0; i < lines.length; i++) {
    try {
      records.push(JSON.parse(lines[i]!));
    } catch (err) {
      return { ok: false, index: i, detail: `line ${i + 1}: ${(err as Error).message}` };
    }
  }
  return { ok: true, records, lines };
}

/** Verify the JSONL copy at `path`. A file that cannot be read throws (that is not "tampered", it is missing). */
export async function verifyEvidenceFile(path: string, jobId?: string): Promise<EvidenceVerification> {
  const parsed = parseEvidenceJsonl(await readFile(path, "utf8"));
  if (!parsed.ok) {
    return {
      ok: false,
      index: parsed.index,
      problem: "unparseable",
      detail: `record ${parsed.index}: unparseable: ${parsed.detail}`,
    };
  }
  const result = verifyEvidence(parsed.records, jobId);
  if (!result.ok) return result;
  // Hashes cover content, not bytes: also insist each line is exactly the canonical form that was written, so
  // a copy with reformatted (but equivalent) JSON is noticed instead of silently accepted.
  for (let i = 0; i < parsed.lines.length; i++) {
    if (parsed.lines[i] !== serializeRecord(parsed.records[i] as EvidenceRecord)) {
      return {
        ok: false,
        index: i,
        problem: "malformed record",
        detail: `record ${i}: malformed record: line is not in canonical form`,
      };
    }
  }
  return result;
}

/**
 * Compare two copies (Redis and file) that each verified on their own: they must hold the same records.
 * A copy that merely stops early is "missing records" at the first index it lacks.
 */
export function compareEvidenceCopies(
  a: readonly EvidenceRecord[],
  b: readonly EvidenceRecord[],
  names: [string, string] = ["redis", "file"],
): { ok: true; count: number } | { ok: false; index: number; problem: EvidenceProblem; detail: string } {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (serializeRecord(a[i]!) !== serializeRecord(b[i]!)) {
      return {
        ok: false,
        index: i,
        problem: "copies differ",
        detail: `record ${i}: copies differ: ${names[0]} has hash ${short(a[i]!.hash)}, ${names[1]} has ${short(b[i]!.hash)}`,
      };
    }
  }
  if (a.length !== b.length) {
    const [shorter, longer] = a.length < b.length ? names : [names[1], names[0]];
    return {
      ok: false,
      index: n,
      problem: "missing records",
      detail: `record ${n}: missing records: ${shorter} copy has ${n} records, ${longer} copy has ${Math.max(a.length, b.length)}`,
    };
  }
  return { ok: true, count: n };
}

function short(hash: string): string {
  return hash.length > 12 ? `${hash.slice(0, 12)}…` : hash;
}
