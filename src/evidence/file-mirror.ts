// The JSONL copy of one job's evidence (<dataDir>/evidence/<jobId>.jsonl), kept a prefix of the Redis chain.
//
// Within this process writes to a file go through one promise chain; across processes on this host (a worker and an
// operator's `approve` appending to the same job) a lock file (<file>.lock, linked into place holding the pid) makes
// each catch-up-and-append exclusive. Every write first counts what the file already holds and fills any gap from
// Redis, so whoever writes, the file is always a prefix of Redis. A write carries any number of consecutive records
// (the worker's group commit hands a whole batch to one write: one open/append/close and one lock per batch).
//
// The small calls (stat, link, write, close, unlink) are synchronous: each is microseconds on a local file system,
// while the same call through the libuv thread pool costs a hand-off to another thread and back, which measured as
// most of the evidence path's CPU on 2 cores. fsync, which waits for the disk, and open, which creates the job's
// file on its first write (a new directory entry: ~0.15 ms on the event loop), go to the pool.
import {
  closeSync,
  fsync,
  linkSync,
  open,
  openSync,
  readFileSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { EvidenceError } from "./errors.ts";

const fsyncFd = promisify(fsync);
const openFd = promisify(open);

export type FetchRecords = (fromIndex: number, toIndex: number) => Promise<string[]>;

export class FileMirror {
  #chain: Promise<void> = Promise.resolve();
  /** Records in the file when it had `size` bytes; recounted whenever the size differs (someone else wrote). */
  #known: { size: number; count: number } | undefined;

  constructor(readonly path: string) {}

  /** Forget what we know about the file (it was read or changed outside this mirror). */
  forget(): void {
    this.#known = undefined;
  }

  /**
   * Make the file hold records 1..lastSeq. `lines` are the records ending at lastSeq (lastSeq-lines.length+1 ..
   * lastSeq); any earlier record the file lacks is fetched from Redis (`fetch`, 0-based inclusive indexes).
   */
  write(lastSeq: number, lines: readonly string[], sync: boolean, fetch: FetchRecords): Promise<void> {
    return this.#enqueue(() =>
      this.#locked(async () => {
        const count = this.#count();
        if (count >= lastSeq) {
          // Already written (another log of this job, here or in another process, caught the file up).
          if (sync) await this.#append([], true);
          return;
        }
        const firstSeq = lastSeq - lines.length + 1;
        const ours = count + 1 >= firstSeq ? lines.slice(count + 1 - firstSeq) : lines;
        const missing = count + 1 < firstSeq ? await fetch(count, firstSeq - 2) : [];
        if (missing.length !== Math.max(0, firstSeq - 1 - count)) {
          throw new EvidenceError(
            `evidence file ${this.path}: Redis did not return records ${count + 1}..${firstSeq - 1}`,
          );
        }
        await this.#append([...missing, ...ours], sync);
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

  #count(): number {
    // No file yet (every job's first write) answers undefined, not a thrown ENOENT: cheaper by far.
    const size = statSync(this.path, { throwIfNoEntry: false })?.size ?? 0;
    if (this.#known?.size === size) return this.#known.count;
    const text = size === 0 ? "" : readFileSync(this.path, "utf8");
    if (text !== "" && !text.endsWith("\n")) {
      // A torn last line (a writer died mid-append): never append after it, verify will show where.
      throw new EvidenceError(`evidence file ${this.path} ends in a partial line; refusing to append`);
    }
    const count = text === "" ? 0 : text.split("\n").length - 1;
    this.#known = { size: Buffer.byteLength(text), count };
    return count;
  }

  async #append(lines: string[], sync: boolean): Promise<void> {
    // The open waits in the thread pool: it creates the job's file on its first write, and creating a directory
    // entry is the one call here that is not microseconds (measured ~0.15 ms on the event loop, once per job).
    const fd = await openFd(this.path, "a", 0o600);
    try {
      if (lines.length > 0) {
        const bytes = Buffer.from(`${lines.join("\n")}\n`, "utf8");
        let written = 0;
        while (written < bytes.length) written += writeSync(fd, bytes, written);
        if (this.#known)
          this.#known = { size: this.#known.size + bytes.length, count: this.#known.count + lines.length };
      }
      if (sync) await fsyncFd(fd);
    } finally {
      closeSync(fd);
    }
  }

  /** Run `task` holding <file>.lock; a lock left by a dead process is taken over. */
  async #locked(task: () => Promise<void>): Promise<void> {
    const lockPath = `${this.path}.lock`;
    const deadline = Date.now() + FILE_LOCK_WAIT_MS;
    for (;;) {
      // The lock file appears with the pid already in it (a private file holding the pid, hard-linked into place,
      // which fails if the lock exists): a process killed while taking the lock never leaves an empty, unowned one.
      const staged = stagedLockFile(this.path);
      try {
        linkSync(staged, lockPath);
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
      let holderText = "";
      try {
        holderText = readFileSync(lockPath, "utf8");
      } catch {
        // Gone meanwhile: try again.
      }
      const holder = Number(holderText.trim());
      // Our own pid cannot legitimately hold it (this process serializes its writes): a leftover of a dead
      // process whose pid was reused, like one whose process is gone.
      if (Number.isInteger(holder) && holder > 0 && (holder === process.pid || !processAlive(holder))) {
        unlinkQuietly(lockPath);
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
      // Someone else may have written since we last looked (the size check in #count notices it).
      await task();
    } finally {
      unlinkQuietly(lockPath);
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

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone.
  }
}

function stagedLockFile(path: string): string {
  const staged = join(resolve(path, ".."), `.lock-stage.${process.pid}`);
  if (!stagedLockFiles.has(staged)) {
    writeFileSync(staged, String(process.pid), { mode: 0o600 });
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

/**
 * fsync a directory so the files created in it survive a crash (their names, not only their contents). Group
 * commit: callers that arrive while an fsync of the same directory runs share the next one, so N jobs finishing
 * together cost two directory fsyncs, not N. A caller's promise resolves only after an fsync that STARTED after the
 * call, so every file created before the call is covered.
 */
export function syncDirectory(dir: string): Promise<void> {
  let state = dirSyncs.get(dir);
  if (!state) {
    state = { running: undefined, next: undefined };
    dirSyncs.set(dir, state);
  }
  const s = state;
  if (s.next) return s.next;
  const runOne = () => fsyncPath(dir);
  if (!s.running) {
    const p = runOne().finally(() => {
      if (s.running === p) s.running = undefined;
    });
    s.running = p;
    return p;
  }
  // An fsync is under way; it may have started before our file was created: wait for it, then run one more that
  // every caller arriving meanwhile shares.
  const after = s.running.catch(() => {});
  const next = after.then(() => {
    s.next = undefined;
    const p = runOne().finally(() => {
      if (s.running === p) s.running = undefined;
    });
    s.running = p;
    return p;
  });
  s.next = next;
  return next;
}

const dirSyncs = new Map<string, { running: Promise<void> | undefined; next: Promise<void> | undefined }>();

/** fsync a file or directory by path (open and close are synchronous, the fsync waits in the thread pool). */
async function fsyncPath(path: string): Promise<void> {
  const fd = openSync(path, "r");
  try {
    await fsyncFd(fd);
  } finally {
    closeSync(fd);
  }
}
