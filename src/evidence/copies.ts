// The two copies of a job's evidence — where they live, how each is read, and whether they agree:
//   Redis   lunafleet:evidence:{<jobId>}:records  (list of record lines)  + :head (hash: seq, hash)
//   file    <dataDir>/evidence/<jobId>.jsonl
// Reading only; writing is log.ts (the chain) and file-mirror.ts (the file).
import { readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { luaScript, type RedisClient, runScript } from "../redis/client.ts";
import { EvidenceError, EvidenceTamperedError } from "./errors.ts";
import { type EvidenceRecord, isValidJobId } from "./record.ts";
import {
  compareEvidenceCopies,
  type EvidenceVerification,
  parseEvidenceJsonl,
  verifyEvidence,
} from "./verify.ts";

export function evidenceKeys(jobId: string): { records: string; head: string } {
  return { records: `lunafleet:evidence:{${jobId}}:records`, head: `lunafleet:evidence:{${jobId}}:head` };
}

export function evidenceFilePath(dataDir: string, jobId: string): string {
  if (!isValidJobId(jobId))
    throw new EvidenceError(`job id not usable for evidence: ${JSON.stringify(jobId)}`);
  return join(resolve(dataDir), "evidence", `${jobId}.jsonl`);
}

// The list and its head in one atomic read: read in two commands, a writer appending in between makes a sound chain
// look broken ("head seq 18, 17 records") to the reader that opens or verifies it.
const readChainWithItsHead = luaScript(
  "readChainWithItsHead",
  2,
  `return { redis.call('LRANGE', KEYS[1], 0, -1), redis.call('HMGET', KEYS[2], 'seq', 'hash') }`,
);

/** A job's record lines in Redis and its head (seq, hash; null when none), read together. */
export async function readRedisChain(
  redis: RedisClient,
  jobId: string,
): Promise<{ lines: string[]; headSeq: number; headHash: string | null }> {
  const keys = evidenceKeys(jobId);
  const [lines, head] = (await runScript(redis, readChainWithItsHead, [keys.records, keys.head], [])) as [
    string[],
    (string | null)[],
  ];
  return { lines, headSeq: Number(head[0] ?? 0), headHash: head[1] ?? null };
}

/**
 * Verify a job's evidence in Redis and in the data dir, and that the two copies hold the same records.
 * A missing file is "missing records" at index 0 when Redis has any.
 */
export async function verifyJobEvidence(
  redis: RedisClient,
  dataDir: string,
  jobId: string,
): Promise<EvidenceVerification & { where?: "redis" | "file" | "both" }> {
  const chain = await readRedisChain(redis, jobId);
  const redisRecords = chain.lines.map(parseLine);
  const redisCheck = verifyEvidence(redisRecords, jobId);
  if (!redisCheck.ok) return { ...redisCheck, where: "redis" };
  const headSeq = chain.headSeq;
  if (headSeq !== redisRecords.length || (chain.headHash ?? redisCheck.headHash) !== redisCheck.headHash) {
    // Truncation of the list alone keeps a valid prefix; the head remembers how far the chain went.
    return {
      ok: false,
      index: redisRecords.length,
      problem: "missing records",
      detail: `record ${redisRecords.length}: missing records: Redis head says seq ${headSeq}, list has ${redisRecords.length}`,
      where: "redis",
    };
  }
  let text = "";
  try {
    text = readFileSync(evidenceFilePath(dataDir, jobId), "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const parsed = parseEvidenceJsonl(text);
  if (!parsed.ok) {
    return {
      ok: false,
      index: parsed.index,
      problem: "unparseable",
      detail: `record ${parsed.index}: unparseable: ${parsed.detail}`,
      where: "file",
    };
  }
  const fileCheck = verifyEvidence(parsed.records, jobId);
  if (!fileCheck.ok) return { ...fileCheck, where: "file" };
  const cmp = compareEvidenceCopies(redisRecords as EvidenceRecord[], parsed.records as EvidenceRecord[]);
  if (!cmp.ok) return { ...cmp, where: "both" };
  return redisCheck;
}

function parseLine(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return line; // verifyEvidence reports it as a malformed record at its index
  }
}

export function parseRedisLines(lines: string[], jobId: string): EvidenceRecord[] {
  const records = lines.map(parseLine);
  const check = verifyEvidence(records, jobId);
  if (!check.ok) throw new EvidenceTamperedError(jobId, "redis", check);
  return records as EvidenceRecord[];
}

export function readFileRecords(path: string, jobId: string): EvidenceRecord[] {
  // Every new job asks about a file that does not exist yet: a stat that answers "none" costs a fraction of a read
  // that throws ENOENT (measured on the 1,000-device sweep). A file removed between the two calls still reads as none.
  if (!statSync(path, { throwIfNoEntry: false })) return [];
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const parsed = parseEvidenceJsonl(text);
  if (!parsed.ok) {
    throw new EvidenceTamperedError(jobId, "file", {
      ok: false,
      index: parsed.index,
      problem: "unparseable",
      detail: `record ${parsed.index}: unparseable: ${parsed.detail}`,
    });
  }
  const check = verifyEvidence(parsed.records, jobId);
  if (!check.ok) throw new EvidenceTamperedError(jobId, "file", check);
  return parsed.records as EvidenceRecord[];
}
