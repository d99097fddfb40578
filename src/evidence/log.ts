// A job's evidence log: an append-only, hash-chained list of records kept in two places that must agree:
//   Redis   lunafleet:evidence:{<jobId>}:records  (list of record lines)  + :head (hash: seq, hash)
//   file    <dataDir>/evidence/<jobId>.jsonl       (same lines, fsynced after a "result" record)
// Redis is where the chain is decided: appendEvidenceIfHeadMatches adds a record only if the head is still the one
// the record was built on, so two writers can never fork the chain (the loser rebuilds on the new head and retries).
// The file follows Redis in order: every write fills any gap from Redis first, under an in-process queue and a
// cross-process lock file, so several writers on one host (a worker, an operator's approval) keep it a prefix of
// Redis. On several hosts each data dir holds a prefix up to its own last write; the worker that runs the job
// writes its result last, so its copy is complete.
import { mkdirSync, readFileSync, unlinkSync } from "node:fs";
import { link, open, readFile, stat, unlink, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { redact } from "../config/secret.ts";
import { type LuaScript, luaScript, type RedisClient, runScript } from "../redis/client.ts";
import {
  computeRecordHash,
  EVIDENCE_KINDS,
  type EvidenceKind,
  type EvidenceRecord,
  genesisHash,
  isValidJobId,
  serializeRecord,
} from "./record.ts";
import { sanitizeEvidenceData } from "./sanitize.ts";
import {
  compareEvidenceCopies,
  type EvidenceVerification,
  parseEvidenceJsonl,
  verifyEvidence,
} from "./verify.ts";

export class EvidenceError extends Error {
  override name = "EvidenceError";
}

/** A copy failed verification, or the copies disagree: nothing more is appended until an operator looks. */
export class EvidenceTamperedError extends EvidenceError {
  override name = "EvidenceTamperedError";
  constructor(
    readonly jobId: string,
    readonly where: "redis" | "file" | "both",
    readonly verification: Extract<EvidenceVerification, { ok: false }>,
  ) {
    super(`evidence of job ${jobId} (${where}): ${verification.detail}; refusing to append`);
  }
}

// KEYS: records list, head hash. ARGV: genesis, expectedSeq, expectedHash, line, newSeq, newHash.
// {1, seq, hash} appended; {0, seq, hash} the head moved (rebuild on it); {-1, ...} list and head disagree.
const appendEvidenceIfHeadMatches: LuaScript = luaScript(
  "appendEvidenceIfHeadMatches",
  2,
  `local seq = tonumber(redis.call('HGET', KEYS[2], 'seq') or '0')
local hash = redis.call('HGET', KEYS[2], 'hash') or ARGV[1]
if redis.call('LLEN', KEYS[1]) ~= seq then return {-1, seq, hash} end
if seq ~= tonumber(ARGV[2]) or hash ~= ARGV[3] or tonumber(ARGV[5]) ~= seq + 1 then return {0, seq, hash} end
redis.call('RPUSH', KEYS[1], ARGV[4])
redis.call('HSET', KEYS[2], 'seq', ARGV[5], 'hash', ARGV[6])
return {1, tonumber(ARGV[5]), ARGV[6]}`,
);

const MAX_APPEND_RETRIES = 100;

/** Record data computed from the head it is appended after (seq and hash of the previous record). */
export type HeadBoundData = (head: { seq: number; hash: string }) => unknown;

export function evidenceKeys(jobId: string): { records: string; head: string } {
  return { records: `lunafleet:evidence:{${jobId}}:records`, head: `lunafleet:evidence:{${jobId}}:head` };
}

export function evidenceFilePath(dataDir: string, jobId: string): string {
  if (!isValidJobId(jobId))
    throw new EvidenceError(`job id not usable for evidence: ${JSON.stringify(jobId)}`);
  return join(resolve(dataDir), "evidence", `${jobId}.jsonl`);
}

/**
 * Keeps one JSONL file in Redis order. Within this process writes to a file go through one promise chain; across
 * processes on this host (a worker and an operator's `approve` appending to the same job) a lock file
 * (<file>.lock, O_EXCL, holding the pid) makes each catch-up-and-append exclusive. Every write first counts what the
 * file already holds and fills any gap from Redis, so whoever writes, the file is always a prefix of Redis.
 */
class FileMirror {
  #chain: Promise<void> = Promise.resolve();
  /** Records in the file when it had `size` bytes; recounted whenever the size differs (someone else wrote). */
  #known: { size: number; count: number } | undefined;

  constructor(readonly path: string) {}

  /** Forget what we know about the file (it was read or changed outside this mirror). */
  forget(): void {
    this.#known = undefined;
  }

  /** Make the file hold records 1..seq (`line` is record seq); earlier missing records are fetched from Redis. */
  write(seq: number, line: string, sync: boolean, fetch: (from: number, to: number) => Promise<string[]>) {
    return this.#enqueue(() =>
      this.#locked(async () => {
        const count = await this.#count();
        if (count >= seq) {
          // Already written (another log of this job, here or in another process, caught the file up).
          if (sync) await this.#append([], true);
          return;
        }
        const missing = seq - 1 > count ? await fetch(count, seq - 2) : [];
        if (missing.length !== seq - 1 - count) {
          throw new EvidenceError(
            `evidence file ${this.path}: Redis did not return records ${count + 1}..${seq - 1}`,
          );
        }
        await this.#append([...missing, line], sync);
      }),
    );
  }

  /** Resolves when every write queued so far has landed (failed writes included). */
  idle(): Promise<void> {
    return this.#chain;
  }

  /** Wait for queued writes, then fsync the file. */
  sync(): Promise<void> {
    return this.#enqueue(() => this.#append([], true));
  }

  #enqueue(task: () => Promise<void>): Promise<void> {
    const next = this.#chain.then(task);
    this.#chain = next.catch(() => {});
    return next;
  }

  async #count(): Promise<number> {
    let size: number;
    try {
      size = (await stat(this.path)).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      size = 0;
    }
    if (this.#known?.size === size) return this.#known.count;
    const text = size === 0 ? "" : await readFile(this.path, "utf8");
    if (text !== "" && !text.endsWith("\n")) {
      // A torn last line (a writer died mid-append): never append after it, verify will show where.
      throw new EvidenceError(`evidence file ${this.path} ends in a partial line; refusing to append`);
    }
    const count = text === "" ? 0 : text.split("\n").length - 1;
    this.#known = { size: Buffer.byteLength(text), count };
    return count;
  }

  async #append(lines: string[], sync: boolean): Promise<void> {
    const fh = await open(this.path, "a", 0o600);
    try {
      if (lines.length > 0) await fh.appendFile(lines.map((l) => `${l}\n`).join(""), "utf8");
      if (sync) await fh.sync();
      if (lines.length > 0 && this.#known) {
        this.#known = { size: (await fh.stat()).size, count: this.#known.count + lines.length };
      }
    } finally {
      await fh.close();
    }
  }

  /** Run `task` holding <file>.lock; a lock left by a dead process is taken over. */
  async #locked(task: () => Promise<void>): Promise<void> {
    const lockPath = `${this.path}.lock`;
    const deadline = Date.now() + FILE_LOCK_WAIT_MS;
    for (;;) {
      // The lock file appears with the pid already in it (a private file holding the pid, hard-linked into place,
      // which fails if the lock exists): a process killed while taking the lock never leaves an empty, unowned one.
      const staged = await stagedLockFile(this.path);
      try {
        await link(staged, lockPath);
        break;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "ENOENT") {
          // Our private file was removed under us: write it again.
          stagedLockFiles.delete(staged);
          continue;
        }
        if (code !== "EEXIST") throw err;
      }
      const holder = Number((await readFile(lockPath, "utf8").catch(() => "")).trim());
      // Our own pid cannot legitimately hold it (this process serializes its writes): a leftover of a dead
      // process whose pid was reused, like one whose process is gone.
      if (Number.isInteger(holder) && holder > 0 && (holder === process.pid || !processAlive(holder))) {
        await unlink(lockPath).catch(() => {});
        continue;
      }
      if (Date.now() > deadline) {
        throw new EvidenceError(
          `evidence file ${this.path} is locked by process ${holder || "?"} (${lockPath})`,
        );
      }
      await new Promise((r) => setTimeout(r, 2 + Math.random() * 8));
    }
    try {
      await task();
    } finally {
      await unlink(lockPath).catch(() => {});
    }
  }
}

const FILE_LOCK_WAIT_MS = 10_000;

/**
 * The private file each lock is linked from: one per process and directory, written (complete, with the pid) once
 * and linked for every lock. Writing and deleting a fresh one per record cost more than the rest of the append
 * together (two directory entries created and removed per record). Removed when the process exits; one left by a
 * killed process holds a dead pid and is never linked again (pids are in the name).
 */
const stagedLockFiles = new Set<string>();

async function stagedLockFile(path: string): Promise<string> {
  const staged = join(resolve(path, ".."), `.lock-stage.${process.pid}`);
  if (!stagedLockFiles.has(staged)) {
    await writeFile(staged, String(process.pid), { mode: 0o600 });
    if (stagedLockFiles.size === 0) process.once("exit", removeStagedLockFiles);
    stagedLockFiles.add(staged);
  }
  return staged;
}

function removeStagedLockFiles(): void {
  for (const staged of stagedLockFiles) {
    try {
      unlinkSync(staged);
    } catch {
      // Already gone.
    }
  }
  stagedLockFiles.clear();
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

const mirrors = new Map<string, FileMirror>();

export class EvidenceLog {
  readonly #redis: RedisClient;
  readonly #keys: { records: string; head: string };
  readonly #mirror: FileMirror;
  #head: { seq: number; hash: string };

  private constructor(
    redis: RedisClient,
    readonly jobId: string,
    readonly dataDir: string,
    readonly filePath: string,
    mirror: FileMirror,
    head: { seq: number; hash: string },
  ) {
    this.#redis = redis;
    this.#keys = evidenceKeys(jobId);
    this.#mirror = mirror;
    this.#head = head;
  }

  /**
   * Open (or start) the evidence of a job. Both copies are verified and brought level: a copy that is a strict
   * prefix of the other is completed from it (Redis lost its last second, or the process died between the Redis
   * append and the file write). Anything else (a copy fails verification, the copies diverge) throws
   * EvidenceTamperedError: evidence is never silently repaired.
   */
  static async open(redis: RedisClient, dataDir: string, jobId: string): Promise<EvidenceLog> {
    const filePath = evidenceFilePath(dataDir, jobId);
    mkdirSync(join(resolve(dataDir), "evidence"), { recursive: true, mode: 0o700 });
    const keys = evidenceKeys(jobId);

    // Let this process's pending writes to the file land before reading it.
    let mirror = mirrors.get(filePath);
    await mirror?.idle();
    const fileRecords = readFileRecords(filePath, jobId);
    const redisLines = await redis.lrange(keys.records, 0, -1);
    const redisRecords = parseRedisLines(redisLines, jobId);
    const redisCheck = verifyEvidence(redisRecords, jobId);
    if (!redisCheck.ok) throw new EvidenceTamperedError(jobId, "redis", redisCheck);
    const headRaw = await redis.hmget(keys.head, "seq", "hash");
    const headSeq = Number(headRaw[0] ?? 0);
    if (headSeq !== redisRecords.length || (headRaw[1] ?? genesisHash(jobId)) !== redisCheck.headHash) {
      throw new EvidenceError(
        `evidence of job ${jobId}: Redis head (seq ${headSeq}) does not match its ${redisRecords.length} records`,
      );
    }

    const cmp = compareEvidenceCopies(redisRecords, fileRecords);
    if (!cmp.ok && cmp.problem !== "missing records") throw new EvidenceTamperedError(jobId, "both", cmp);
    if (!mirror) {
      mirror = new FileMirror(filePath);
      mirrors.set(filePath, mirror);
    }
    mirror.forget();
    if (fileRecords.length === 0) await ensureFileDurablyExists(filePath);
    const log = new EvidenceLog(redis, jobId, dataDir, filePath, mirror, {
      seq: redisRecords.length,
      hash: redisCheck.headHash,
    });

    if (fileRecords.length < redisRecords.length) {
      // The file is behind: write what Redis has (the mirror fetches the gap itself).
      const last = redisLines[redisLines.length - 1]!;
      await mirror.write(redisRecords.length, last, true, (from, to) => redis.lrange(keys.records, from, to));
    } else if (redisRecords.length < fileRecords.length) {
      // Redis is behind (lost its last writes): replay the verified file records through the same atomic append.
      for (const rec of fileRecords.slice(redisRecords.length)) {
        const reply = (await runScript(
          redis,
          appendEvidenceIfHeadMatches,
          [keys.records, keys.head],
          [genesisHash(jobId), rec.seq - 1, rec.prevHash, serializeRecord(rec), rec.seq, rec.hash],
        )) as [number, number, string];
        if (reply[0] !== 1) {
          throw new EvidenceError(
            `evidence of job ${jobId}: Redis changed while restoring record ${rec.seq}`,
          );
        }
      }
      log.#head = { seq: fileRecords.length, hash: fileRecords[fileRecords.length - 1]!.hash };
    }
    return log;
  }

  /** The last record's seq and hash (seq 0 and the genesis hash before the first record). */
  get head(): { seq: number; hash: string } {
    return { ...this.#head };
  }

  /**
   * Append one record. `data` and `actor` are redacted (registered secrets, secret-named fields) before they are
   * hashed. Resolves once the record is in Redis and in the file (fsynced for kind "result").
   */
  async append(kind: EvidenceKind, data: unknown | HeadBoundData, actor?: string): Promise<EvidenceRecord> {
    if (!(EVIDENCE_KINDS as readonly string[]).includes(kind))
      throw new EvidenceError(`unknown evidence kind ${kind}`);
    // Data that names the head it follows (the daemon's signature, src/evidence/signing.ts) is rebuilt whenever
    // another writer moved the head first.
    const bound = typeof data === "function" ? (data as HeadBoundData) : undefined;
    let cleanData = bound ? undefined : sanitizeEvidenceData(data);
    const cleanActor = actor === undefined ? undefined : redact(actor);
    for (let attempt = 0; attempt < MAX_APPEND_RETRIES; attempt++) {
      if (bound) cleanData = sanitizeEvidenceData(bound({ ...this.#head }));
      const body: Omit<EvidenceRecord, "hash"> = {
        seq: this.#head.seq + 1,
        jobId: this.jobId,
        at: new Date().toISOString(),
        kind,
        ...(cleanActor !== undefined ? { actor: cleanActor } : {}),
        data: cleanData,
        prevHash: this.#head.hash,
      };
      const record: EvidenceRecord = { ...body, hash: computeRecordHash(body) };
      const line = serializeRecord(record);
      const reply = (await runScript(
        this.#redis,
        appendEvidenceIfHeadMatches,
        [this.#keys.records, this.#keys.head],
        [genesisHash(this.jobId), this.#head.seq, this.#head.hash, line, record.seq, record.hash],
      )) as [number, number, string];
      if (reply[0] === -1) {
        throw new EvidenceError(
          `evidence of job ${this.jobId}: Redis list and head disagree; refusing to append`,
        );
      }
      this.#head = { seq: Number(reply[1]), hash: String(reply[2]) };
      if (reply[0] === 1) {
        await this.#mirror.write(record.seq, line, kind === "result", (from, to) =>
          this.#redis.lrange(this.#keys.records, from, to),
        );
        return record;
      }
      // Someone else appended first: rebuild on the new head.
    }
    throw new EvidenceError(
      `evidence of job ${this.jobId}: could not append after ${MAX_APPEND_RETRIES} tries`,
    );
  }

  /** All records, from Redis (the copy the chain is decided in). */
  async records(): Promise<EvidenceRecord[]> {
    return parseRedisLines(await this.#redis.lrange(this.#keys.records, 0, -1), this.jobId);
  }

  /** Wait for pending file writes and fsync the file. */
  async flush(): Promise<void> {
    await this.#mirror.sync();
  }

  /** Verify both copies and that they agree. */
  async verify(): Promise<EvidenceVerification> {
    await this.flush();
    return verifyJobEvidence(this.#redis, this.dataDir, this.jobId);
  }
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
  const keys = evidenceKeys(jobId);
  const redisRecords = (await redis.lrange(keys.records, 0, -1)).map(parseLine);
  const redisCheck = verifyEvidence(redisRecords, jobId);
  if (!redisCheck.ok) return { ...redisCheck, where: "redis" };
  const headRaw = await redis.hmget(keys.head, "seq", "hash");
  const headSeq = Number(headRaw[0] ?? 0);
  if (headSeq !== redisRecords.length || (headRaw[1] ?? redisCheck.headHash) !== redisCheck.headHash) {
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

function parseRedisLines(lines: string[], jobId: string): EvidenceRecord[] {
  const records = lines.map(parseLine);
  const check = verifyEvidence(records, jobId);
  if (!check.ok) throw new EvidenceTamperedError(jobId, "redis", check);
  return records as EvidenceRecord[];
}

function readFileRecords(path: string, jobId: string): EvidenceRecord[] {
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

/**
 * Create the file and fsync its directory, so the file's existence survives a crash, not only its contents.
 * Asynchronous: a worker opens one log per job, and a directory fsync must not stall every other running job.
 */
async function ensureFileDurablyExists(path: string): Promise<void> {
  await (await open(path, "a", 0o600)).close();
  const dir = await open(resolve(path, ".."), "r");
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
