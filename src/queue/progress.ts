// A running job's progress (steps done of total, the step just finished) as BullMQ keeps it for `jobs` and the
// console. Sent at most once per interval, the latest value last: one BullMQ script and one event per step was a
// good part of what the queue added to a device-step on the 1,000-device sweep (issue 15), while a listing refreshed
// by a person needs no more than a value per second. What is shown is never more than one interval behind the
// checkpoints, and a job that ends inside the first interval sends none: its final state says more than progress.
import { type CheckpointRecord, type CheckpointStore, RedisCheckpointStore } from "../engine/checkpoints.ts";
import type { RedisClient } from "../redis/client.ts";
import type { JobProgress } from "./worker.ts";

/** Longest a finished step waits before the job's progress says so. */
export const PROGRESS_INTERVAL_MS = 1000;

export class ProgressReporter {
  readonly #send: (p: JobProgress) => Promise<void>;
  readonly #intervalMs: number;
  readonly #now: () => number;
  /** When progress was last sent (at first: when the job started, so a job shorter than the interval sends none). */
  #lastSentAt: number;
  #pending: JobProgress | undefined;
  #timer: NodeJS.Timeout | undefined;
  #ended = false;

  constructor(
    send: (p: JobProgress) => Promise<void>,
    opts: { intervalMs?: number; now?: () => number } = {},
  ) {
    this.#send = send;
    this.#intervalMs = opts.intervalMs ?? PROGRESS_INTERVAL_MS;
    this.#now = opts.now ?? Date.now;
    this.#lastSentAt = this.#now();
  }

  /** The job's progress is now `p`: sent now if the interval has passed, else when it has (the latest value). */
  report(p: JobProgress): void {
    if (this.#ended) return;
    this.#pending = p;
    if (this.#timer) return;
    const wait = this.#lastSentAt + this.#intervalMs - this.#now();
    if (wait <= 0) {
      this.#flush();
      return;
    }
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#flush();
    }, wait);
    this.#timer.unref();
  }

  /** Send `p` now, whatever the interval (a resumed job's starting point); counts as this interval's send. */
  async sendNow(p: JobProgress): Promise<void> {
    if (this.#ended) return;
    this.#lastSentAt = this.#now();
    await this.#send(p).catch(() => {});
  }

  /**
   * The attempt is over. `sendLast`: a value still waiting is sent (a job that failed or stopped shows how far it
   * got); otherwise it is dropped (a completed job's state says all). Nothing is sent after this.
   */
  async end(sendLast: boolean): Promise<void> {
    this.#ended = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    const last = this.#pending;
    this.#pending = undefined;
    if (sendLast && last) await this.#send(last).catch(() => {});
  }

  #flush(): void {
    const p = this.#pending;
    this.#pending = undefined;
    if (!p) return;
    this.#lastSentAt = this.#now();
    // Progress is a display: a lost update is superseded by the next, and never fails the job.
    this.#send(p).catch(() => {});
  }
}

/**
 * A job's checkpoint store that also tells its progress (steps done of total) and each step's duration. Reads the
 * job's finished steps once: the runner asks for them right after (one round trip less per job), and a resumed job
 * shows how far it already is at once.
 */
export async function progressCheckpoints(opts: {
  redis: RedisClient;
  jobId: string;
  totalSteps: number;
  progress: ProgressReporter;
  stepFinished?: (stepId: string, seconds: number) => void;
}): Promise<CheckpointStore> {
  const store = new RedisCheckpointStore(opts.redis);
  const total = opts.totalSteps;
  const atStart = await store.finishedSteps(opts.jobId);
  let done = atStart.size;
  if (done > 0) await opts.progress.sendNow({ total, done });
  let firstRead: Promise<Map<string, CheckpointRecord>> | undefined = Promise.resolve(atStart);
  return {
    finishedSteps: (id) => {
      const read = id === opts.jobId && firstRead ? firstRead : store.finishedSteps(id);
      firstRead = undefined;
      return read;
    },
    async recordStepResult(id, stepId, result, meta) {
      await store.recordStepResult(id, stepId, result, meta);
      done += 1;
      opts.stepFinished?.(stepId, (Date.parse(meta.finishedAt) - Date.parse(meta.startedAt)) / 1000);
      opts.progress.report({ total, done, step: stepId, title: meta.title });
    },
  };
}
