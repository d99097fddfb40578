// Over 400 lines: the append path (group commit, the head check, the file mirror's ordering) is one protocol that
//  must be read whole; reading and verifying already live in copies.ts.
// A job's evidence log: an append-only, hash-chained list of records kept in two places that must agree:
//   Redis   lunafleet:evidence:{<jobId>}:records  (list of record lines)  + :head (hash: seq, hash)
//   file    <dataDir>/evidence/<jobId>.jsonl       (same lines; see file-mirror.ts)
// Redis is where the chain is decided: appendEvidenceIfHeadMatches adds records only if the head is still the one
// they were built on, so two writers can never fork the chain (the loser rebuilds on the new head and retries).
//
// The write path, and why it is shaped so (issue 15: the daemon's own cost per device-step). Measured on the
// 1,000-device sweep, a worker job wrote ~13 records; each was one EVALSHA round trip plus ~8 file-system calls
// (lock link/unlink, stat, open, append, fstat, close), and that was most of the daemon's cost. Now, for a log opened
// with { groupCommit: true } (the worker's):
// - Records are made at once (redacted, timestamped, in call order) and committed to Redis in batches, one EVALSHA
//   per batch. A write-ahead record (command, guard, azure, approval: it precedes an action) commits itself and
//   everything before it before append() resolves, so whatever the chain says happened before an action is on it
//   before the action. Other records join the next batch: the next write-ahead record, BATCH_RECORDS records,
//   BATCH_MS after the first, flush(), close(). A patch-verify job commits ~5 batches instead of 13 records.
// - The file copy follows in batches too (at most BATCH_MS behind Redis while a job runs), one open/append/close
//   under the file lock per batch; close() fsyncs it once and the directory once per group of jobs closing together.
// - What it costs in durability: a process that dies mid-job loses the records made since its last write-ahead
//   record (what it saw after its last action: a reply, a parse, "step finished"); the checkpoints still say which
//   steps finished, and the resumed job records that it resumed. The worker closes the log before it reports the
//   job finished, so a finished job's evidence is whole, in Redis and in the fsynced file. A file that lags Redis
//   (the process died before close) is completed by open().
// Without groupCommit (an operator's one-off append: approve, release) every record is committed and written to
// the file at once, as before.
//
// Redis may lose acknowledged records (a failover to a replica that lagged, a restart that lost the AOF tail). The
// log keeps the lines it has committed; when Redis answers with a head BEHIND ours that is one of our records, the
// lost records are put back through the same atomic append before the new ones. A Redis that went back AND took a
// different record meanwhile is a fork: the append throws, nothing is papered over.
//
// Data that names the head it follows (the daemon's signature, signing.ts) is a HeadBoundData function: it is called
// at commit time with the record's actual predecessor, so it is right whatever was batched or appended before it,
// and such a record commits at once. close() makes the chain whole and durable: every record committed, in the file,
// fsynced, the file's name fsynced in its directory.
//
// (Over 400 lines: one class whose parts — commit, catch-up after a Redis loss, file batches, close — share its private
// head, queue and timers; reading the copies is copies.ts, the file's locking file-mirror.ts.)
import { closeSync, mkdirSync, openSync } from "node:fs";
import { join, resolve } from "node:path";
import { redact } from "../config/secret.ts";
import { type LuaScript, luaScript, type RedisClient, runScript } from "../redis/client.ts";
import { awaitReplicaAck } from "../redis/replica-ack.ts";
import {
  evidenceFilePath,
  evidenceKeys,
  parseRedisLines,
  readFileRecords,
  readRedisChain,
  verifyJobEvidence,
} from "./copies.ts";
import { EvidenceError, EvidenceTamperedError } from "./errors.ts";
import { FileMirror, syncDirectory } from "./file-mirror.ts";
import {
  buildRecordLine,
  EVIDENCE_KINDS,
  type EvidenceKind,
  type EvidenceRecord,
  genesisHash,
  serializeRecord,
} from "./record.ts";
import { sanitizedJson } from "./sanitize.ts";
import { compareEvidenceCopies, type EvidenceVerification, verifyEvidence } from "./verify.ts";

export {
  evidenceFilePath,
  evidenceKeys,
  parseRedisLines,
  readFileRecords,
  verifyJobEvidence,
} from "./copies.ts";
export { EvidenceError, EvidenceTamperedError } from "./errors.ts";

// KEYS: records list, head hash. ARGV: genesis, expectedSeq, expectedHash, newHeadHash, line1, line2, ...
// Appends the lines (records expectedSeq+1 ...) only if the head is still expectedSeq/expectedHash.
// {1, seq, hash} appended; {0, seq, hash} the head moved (rebuild on it); {-1, ...} list and head disagree.
const appendEvidenceIfHeadMatches: LuaScript = luaScript(
  "appendEvidenceIfHeadMatches",
  2,
  `local seq = tonumber(redis.call('HGET', KEYS[2], 'seq') or '0')
local hash = redis.call('HGET', KEYS[2], 'hash') or ARGV[1]
if redis.call('LLEN', KEYS[1]) ~= seq then return {-1, seq, hash} end
if seq ~= tonumber(ARGV[2]) or hash ~= ARGV[3] or #ARGV < 5 then return {0, seq, hash} end
redis.call('RPUSH', KEYS[1], unpack(ARGV, 5))
local newSeq = seq + #ARGV - 4
redis.call('HSET', KEYS[2], 'seq', newSeq, 'hash', ARGV[4])
return {1, newSeq, ARGV[4]}`,
);

const MAX_APPEND_RETRIES = 100;
/** Group commit: a batch is committed when it holds this many records... */
const BATCH_RECORDS = 64;
/** ...or this long after its first record (and at the next write-ahead record, flush() and close()). */
const BATCH_MS = 1000;
/** Records that precede an action (a command sent, a login, an ARM request, an approval): committed at once. */
const WRITE_AHEAD_KINDS: ReadonlySet<EvidenceKind> = new Set(["command", "guard", "azure", "approval"]);

/** Record data computed from the head it is appended after (seq and hash of the previous record). */
export type HeadBoundData = (head: { seq: number; hash: string }) => unknown;

/** A job's chain as close() left it: every record durable in Redis and in the fsynced file. */
export interface SealedEvidence {
  jobId: string;
  seq: number;
  hash: string;
  filePath: string;
}

export interface EvidenceOpenOptions {
  /** Commit records and write the file copy in batches, fsync at close() (see the header); default: each at once. */
  groupCommit?: boolean;
  /** Group commit: the longest a record waits for its batch (default BATCH_MS). */
  batchMs?: number;
}

/** The file mirror of each job whose log is open in this process, and how many open logs use it. */
const mirrors = new Map<string, { mirror: FileMirror; users: number }>();
const madeDirs = new Set<string>();

/** A record made (redacted, timestamped) but not yet on the chain: group commit puts it there with the next batch. */
interface PendingRecord {
  kind: EvidenceKind;
  /** Sanitized data as canonical JSON, or (head-bound) what makes it from the head the record follows. */
  dataJson: string | undefined;
  bound: HeadBoundData | undefined;
  actor: string | undefined;
  at: string;
}

export class EvidenceLog {
  readonly #redis: RedisClient;
  readonly #keys: { records: string; head: string };
  readonly #mirror: FileMirror;
  readonly #groupCommit: boolean;
  readonly #batchMs: number;
  #head: { seq: number; hash: string };
  /** Every record line this log has seen on the chain (index = seq - 1): what it can put back if Redis loses some. */
  readonly #lines: string[];
  /** Records made but not yet committed (group commit), in the order append() was called. */
  readonly #queue: PendingRecord[] = [];
  #commitTimer: NodeJS.Timeout | undefined;
  /** Committed records not yet handed to the file (group commit): seq of the first (0: none). */
  #fileFrom = 0;
  #fileTimer: NodeJS.Timeout | undefined;
  /** A background commit or file write that failed: the next append, flush or close() throws it. */
  #failure: Error | undefined;
  #closed = false;
  /** Commits and file writes of one log run one after another (each builds on the head the previous one left). */
  #turn: Promise<unknown> = Promise.resolve();

  private constructor(
    redis: RedisClient,
    readonly jobId: string,
    readonly dataDir: string,
    readonly filePath: string,
    mirror: FileMirror,
    lines: string[],
    head: { seq: number; hash: string },
    groupCommit: boolean,
    batchMs: number,
  ) {
    this.#redis = redis;
    this.#keys = evidenceKeys(jobId);
    this.#mirror = mirror;
    this.#lines = lines;
    this.#head = head;
    this.#groupCommit = groupCommit;
    this.#batchMs = batchMs;
  }

  /**
   * Open (or start) the evidence of a job. Both copies are verified and brought level: a copy that is a strict
   * prefix of the other is completed from it (Redis lost its last second, or the process died between the Redis
   * append and the file write). Anything else (a copy fails verification, the copies diverge) throws
   * EvidenceTamperedError: evidence is never silently repaired.
   */
  static async open(
    redis: RedisClient,
    dataDir: string,
    jobId: string,
    opts: EvidenceOpenOptions = {},
  ): Promise<EvidenceLog> {
    const filePath = evidenceFilePath(dataDir, jobId);
    const dir = join(resolve(dataDir), "evidence");
    if (!madeDirs.has(dir)) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      madeDirs.add(dir);
    }

    // Let this process's pending writes to the file land before reading it.
    const shared = mirrors.get(filePath);
    await shared?.mirror.idle();
    const { lines: redisLines, headSeq, headHash } = await readRedisChain(redis, jobId);
    const fileRecords = readFileRecords(filePath, jobId);
    const redisRecords = parseRedisLines(redisLines, jobId);
    const redisCheck = verifyEvidence(redisRecords, jobId);
    if (!redisCheck.ok) throw new EvidenceTamperedError(jobId, "redis", redisCheck);
    if (headSeq !== redisRecords.length || (headHash ?? genesisHash(jobId)) !== redisCheck.headHash) {
      throw new EvidenceError(
        `evidence of job ${jobId}: Redis head (seq ${headSeq}) does not match its ${redisRecords.length} records`,
      );
    }

    const cmp = compareEvidenceCopies(redisRecords, fileRecords);
    if (!cmp.ok && cmp.problem !== "missing records") throw new EvidenceTamperedError(jobId, "both", cmp);
    // One mirror per file while any log of it is open here (its promise chain orders this process's writes);
    // the last close() lets it go, so a daemon running jobs for months does not keep one per job it ever ran.
    const entry = mirrors.get(filePath) ?? { mirror: new FileMirror(filePath), users: 0 };
    entry.users += 1;
    mirrors.set(filePath, entry);
    const mirror = entry.mirror;
    mirror.forget();
    const groupCommit = opts.groupCommit === true;
    // A one-off writer makes the file exist durably now; a group-commit log does it at close() (one directory
    // fsync shared by the jobs closing together).
    if (fileRecords.length === 0 && !groupCommit) await ensureFileDurablyExists(filePath);
    const log = new EvidenceLog(
      redis,
      jobId,
      dataDir,
      filePath,
      mirror,
      [...redisLines],
      { seq: redisRecords.length, hash: redisCheck.headHash },
      groupCommit,
      opts.batchMs ?? BATCH_MS,
    );

    try {
      await log.#reconcileCopies(redis, fileRecords, redisRecords, redisLines);
    } catch (err) {
      releaseMirror(filePath);
      throw err;
    }
    return log;
  }

  /** Bring the copy that is behind up to the other (open(): a process died between writing one and the other). */
  async #reconcileCopies(
    redis: RedisClient,
    fileRecords: readonly EvidenceRecord[],
    redisRecords: readonly EvidenceRecord[],
    redisLines: readonly string[],
  ): Promise<void> {
    const { jobId } = this;
    const mirror = this.#mirror;
    const keys = evidenceKeys(jobId);
    if (fileRecords.length < redisRecords.length) {
      // The file is behind: write what Redis has.
      await mirror.write(redisRecords.length, redisLines.slice(fileRecords.length), true, (from, to) =>
        redis.lrange(keys.records, from, to),
      );
    } else if (redisRecords.length < fileRecords.length) {
      // Redis is behind (lost its last writes): replay the verified file records through the same atomic append.
      const lost = fileRecords.slice(redisRecords.length);
      const lines = lost.map(serializeRecord);
      const last = lost[lost.length - 1]!;
      const reply = await appendLines(redis, jobId, this.#head, lines, last.hash);
      if (reply[0] !== 1) {
        throw new EvidenceError(
          `evidence of job ${jobId}: Redis changed while restoring records ${lost[0]!.seq}..${last.seq}`,
        );
      }
      this.#lines.push(...lines);
      this.#head = { seq: last.seq, hash: last.hash };
    }
  }

  /** The last committed record's seq and hash (seq 0 and the genesis hash before the first record). */
  get head(): { seq: number; hash: string } {
    return { ...this.#head };
  }

  /**
   * Append one record. `data` and `actor` are redacted (registered secrets, secret-named fields) now, before they
   * are hashed. Without group commit it resolves once the record is on the chain in Redis and in the file (fsynced
   * for kind "result"). With group commit a write-ahead record (command, guard, azure, approval) resolves once it
   * and every record before it are on the chain; any other record joins the next batch (see the header).
   */
  append(kind: EvidenceKind, data: unknown | HeadBoundData, actor?: string): Promise<void> {
    const bound = typeof data === "function" ? (data as HeadBoundData) : undefined;
    try {
      if (this.#closed) throw new EvidenceError(`evidence of job ${this.jobId}: append after close()`);
      if (this.#failure) throw this.#failure;
      if (!(EVIDENCE_KINDS as readonly string[]).includes(kind))
        throw new EvidenceError(`unknown evidence kind ${kind}`);
      this.#queue.push({
        kind,
        dataJson: bound ? undefined : sanitizedJson(data),
        bound,
        actor: actor === undefined ? undefined : redact(actor),
        at: new Date().toISOString(),
      });
    } catch (err) {
      return Promise.reject(err);
    }
    if (!this.#groupCommit) {
      const sync = kind === "result";
      return this.#inTurn(async () => {
        await this.#commit();
        await this.#flushFile(sync);
      });
    }
    if (WRITE_AHEAD_KINDS.has(kind) || bound || this.#queue.length >= BATCH_RECORDS)
      return this.#inTurn(() => this.#commit());
    if (!this.#commitTimer) {
      this.#commitTimer = setTimeout(() => {
        this.#commitTimer = undefined;
        this.#inTurn(() => this.#commit()).catch((err: Error) => {
          this.#failure ??= err;
        });
      }, this.#batchMs);
      this.#commitTimer.unref();
    }
    return Promise.resolve();
  }

  #inTurn<T>(task: () => Promise<T>): Promise<T> {
    const mine = this.#turn.then(task);
    this.#turn = mine.catch(() => {});
    return mine;
  }

  /** Put every pending record on the chain in Redis, in one atomic append (rebuilt on a moved head). */
  async #commit(): Promise<void> {
    if (this.#commitTimer) clearTimeout(this.#commitTimer);
    this.#commitTimer = undefined;
    const n = this.#queue.length;
    if (n === 0) return;
    for (let attempt = 0; attempt < MAX_APPEND_RETRIES; attempt++) {
      const base = this.#head;
      const lines: string[] = [];
      let prevHash = base.hash;
      for (const [i, p] of this.#queue.slice(0, n).entries()) {
        const { hash, line } = buildRecordLine(
          {
            seq: base.seq + i + 1,
            jobId: this.jobId,
            at: p.at,
            kind: p.kind,
            ...(p.actor !== undefined ? { actor: p.actor } : {}),
            prevHash,
          },
          p.bound ? sanitizedJson(p.bound({ seq: base.seq + i, hash: prevHash })) : (p.dataJson as string),
        );
        lines.push(line);
        prevHash = hash;
      }
      const reply = await appendLines(this.#redis, this.jobId, base, lines, prevHash);
      // {0} with exactly our head: this very batch is already there (a reply lost to a dropped connection, the
      // command sent again on reconnect). The hash covers every line, so nothing else can match it.
      if (reply[0] === 1 || (reply[1] === base.seq + n && reply[2] === prevHash)) {
        this.#queue.splice(0, n);
        this.#lines.push(...lines);
        this.#head = { seq: base.seq + n, hash: prevHash };
        this.#scheduleFile(base.seq + 1);
        return;
      }
      await this.#catchUp(reply[1], reply[2]);
    }
    throw new EvidenceError(
      `evidence of job ${this.jobId}: could not append after ${MAX_APPEND_RETRIES} tries`,
    );
  }

  /**
   * Redis's head is not ours. Ahead: another writer appended (an operator's approval): learn its records and build
   * on them. Behind, on one of our records: Redis lost acknowledged records (failover, AOF tail): put them back, in
   * order, through the same atomic append. Anything else is a fork, and the append stops.
   */
  async #catchUp(seq: number, hash: string): Promise<void> {
    const ours = this.#head;
    if (seq === ours.seq && hash === ours.hash) return; // our view was current after all: build again
    if (seq > ours.seq) {
      const theirs = await this.#redis.lrange(this.#keys.records, ours.seq, seq - 1);
      const first = theirs[0] ? (JSON.parse(theirs[0]) as EvidenceRecord) : undefined;
      if (theirs.length !== seq - ours.seq || first?.prevHash !== ours.hash) {
        throw new EvidenceError(
          `evidence of job ${this.jobId}: Redis holds records ${ours.seq + 1}..${seq} that do not continue this ` +
            `writer's record ${ours.seq} (Redis lost records and took others): refusing to append`,
        );
      }
      // A pending file batch simply grows by them: the file takes every record in Redis order, whoever wrote it.
      this.#lines.push(...theirs);
      this.#head = { seq, hash };
      return;
    }
    const hashAt = (s: number) =>
      s === 0 ? genesisHash(this.jobId) : (JSON.parse(this.#lines[s - 1] ?? "{}") as { hash?: string }).hash;
    if (seq < ours.seq && hashAt(seq) === hash) {
      const reply = await appendLines(
        this.#redis,
        this.jobId,
        { seq, hash },
        this.#lines.slice(seq, ours.seq),
        ours.hash,
      );
      if (reply[0] !== 1) {
        throw new EvidenceError(
          `evidence of job ${this.jobId}: Redis lost records ${seq + 1}..${ours.seq} and changed again ` +
            "while they were put back: refusing to append",
        );
      }
      return;
    }
    throw new EvidenceError(
      `evidence of job ${this.jobId}: Redis's head (seq ${seq}) is not on this writer's chain (seq ${ours.seq}): ` +
        "Redis lost records and took others; refusing to append",
    );
  }

  /** Committed records from `from` on are due in the file: at once, or within BATCH_MS (group commit). */
  #scheduleFile(from: number): void {
    if (this.#fileFrom === 0) this.#fileFrom = from;
    if (!this.#groupCommit || this.#fileTimer) return;
    this.#fileTimer = setTimeout(() => {
      this.#fileTimer = undefined;
      this.#inTurn(() => this.#flushFile(false)).catch((err: Error) => {
        this.#failure ??= err;
      });
    }, this.#batchMs);
    this.#fileTimer.unref();
  }

  /** Write the committed records the file lacks (fileFrom..head) in one go; fsync when asked. */
  async #flushFile(sync: boolean): Promise<void> {
    if (this.#fileTimer) clearTimeout(this.#fileTimer);
    this.#fileTimer = undefined;
    const from = this.#fileFrom;
    const last = this.#head.seq;
    this.#fileFrom = 0;
    if (from === 0 || from > last) {
      if (sync) await this.#mirror.sync();
      return;
    }
    await this.#mirror.write(last, this.#lines.slice(from - 1, last), sync, (a, b) =>
      this.#redis.lrange(this.#keys.records, a, b),
    );
  }

  /** All committed records, from Redis (the copy the chain is decided in). */
  async records(): Promise<EvidenceRecord[]> {
    return parseRedisLines(await this.#redis.lrange(this.#keys.records, 0, -1), this.jobId);
  }

  /** The committed records this log has seen (open() read them, then every commit), without a Redis round trip. */
  knownRecords(): EvidenceRecord[] {
    return this.#lines.map((l) => JSON.parse(l) as EvidenceRecord);
  }

  /** Commit every pending record, write the file copy and fsync it. */
  flush(): Promise<void> {
    return this.#inTurn(async () => {
      if (this.#failure) throw this.#failure;
      await this.#commit();
      await this.#flushFile(true);
    });
  }

  /**
   * Make the chain whole and durable: every record committed and in the fsynced file, the file's name fsynced in its
   * directory. Idempotent; the log takes no more records after it.
   */
  async close(): Promise<SealedEvidence> {
    if (!this.#closed) {
      await this.flush();
      await syncDirectory(resolve(this.filePath, ".."));
      // Where Redis has replicas, a finished job's chain is on one before the job is reported done.
      await awaitReplicaAck(this.#redis, evidenceKeys(this.jobId).records, `evidence of job ${this.jobId}`);
      this.#closed = true;
      releaseMirror(this.filePath);
    }
    return { jobId: this.jobId, ...this.#head, filePath: this.filePath };
  }

  /** Verify both copies and that they agree. */
  async verify(): Promise<EvidenceVerification> {
    await this.flush();
    return verifyJobEvidence(this.#redis, this.dataDir, this.jobId);
  }
}

function releaseMirror(filePath: string): void {
  const entry = mirrors.get(filePath);
  if (!entry) return;
  entry.users -= 1;
  if (entry.users <= 0) mirrors.delete(filePath);
}

/** How many job files this process keeps a mirror for (open logs only; tests read it). */
export function openMirrorCount(): number {
  return mirrors.size;
}

/** One atomic append of consecutive lines on `head`; [1|0, seq, hash] (see appendEvidenceIfHeadMatches). */
async function appendLines(
  redis: RedisClient,
  jobId: string,
  head: { seq: number; hash: string },
  lines: readonly string[],
  lastHash: string,
): Promise<[number, number, string]> {
  const keys = evidenceKeys(jobId);
  const reply = (await runScript(
    redis,
    appendEvidenceIfHeadMatches,
    [keys.records, keys.head],
    [genesisHash(jobId), head.seq, head.hash, lastHash, ...lines],
  )) as [number, number | string, string];
  if (reply[0] === -1) {
    throw new EvidenceError(`evidence of job ${jobId}: Redis list and head disagree; refusing to append`);
  }
  return [Number(reply[0]), Number(reply[1]), String(reply[2])];
}

/**
 * Create the file and fsync its directory, so the file's existence survives a crash, not only its contents.
 * The directory fsync waits in the thread pool (and is shared with concurrent callers): it must not stall the event
 * loop of a worker running other jobs.
 */
async function ensureFileDurablyExists(path: string): Promise<void> {
  closeSync(openSync(path, "a", 0o600));
  await syncDirectory(resolve(path, ".."));
}
