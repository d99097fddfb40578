// Step checkpoints in Redis: a job is a log of finished steps. Recording a step is one atomic script (write the
// result and append the step to the job's order, or do nothing if it is already there), so a crash never leaves a
// half-recorded step and two workers can never both "finish" the same step.
import { redact } from "../config/secret.ts";
import { type LuaScript, luaScript, type RedisClient, runScript } from "../redis/client.ts";
import { awaitReplicaAck } from "../redis/replica-ack.ts";
import { CheckpointConflict } from "./errors.ts";
import { type Json, toRedactedJson } from "./json.ts";

export interface CheckpointRecord {
  stepId: string;
  title: string;
  result: Json;
  startedAt: string;
  finishedAt: string;
}

export interface StepTiming {
  title: string;
  startedAt: string;
  finishedAt: string;
}

/** What the runner needs from a checkpoint store (the Redis one below; tests may not substitute a fake). */
export interface CheckpointStore {
  recordStepResult(jobId: string, stepId: string, result: unknown, meta: StepTiming): Promise<void>;
  finishedSteps(jobId: string): Promise<Map<string, CheckpointRecord>>;
}

// KEYS[1] results hash, KEYS[2] order list; ARGV[1] step id, ARGV[2] record JSON, ARGV[3] ttl seconds (0 = none).
// 1 recorded; 2 this exact record was already recorded (a resent command); 0 the step has another result.
const recordStepResultOnce: LuaScript = luaScript(
  "recordStepResultOnce",
  2,
  `local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then
  if existing == ARGV[2] then return 2 end
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('RPUSH', KEYS[2], ARGV[1])
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
end
return 1`,
);

// KEYS[1] results hash, KEYS[2] order list: the order and the results in one atomic read (a step recorded between two
// separate reads would show in one and not the other).
const readStepResultsInOrder: LuaScript = luaScript(
  "readStepResultsInOrder",
  2,
  `return { redis.call('LRANGE', KEYS[2], 0, -1), redis.call('HGETALL', KEYS[1]) }`,
);

export interface RedisCheckpointOptions {
  /** Key prefix shared with the rest of the daemon. */
  prefix?: string;
  /** Keep checkpoints this long after the last step (seconds); 0 keeps them until deleted. */
  ttlSeconds?: number;
}

export class RedisCheckpointStore implements CheckpointStore {
  readonly #prefix: string;
  readonly #ttl: number;

  constructor(
    private readonly redis: RedisClient,
    opts: RedisCheckpointOptions = {},
  ) {
    this.#prefix = opts.prefix ?? "lunafleet:";
    this.#ttl = opts.ttlSeconds ?? 30 * 86_400;
  }

  /** The job's keys share a hash tag so the script stays on one slot under Redis Cluster. */
  #keys(jobId: string): [string, string] {
    const base = `${this.#prefix}job:{${jobId}}`;
    return [`${base}:checkpoints`, `${base}:checkpoint-order`];
  }

  /**
   * Record a finished step. Refuses (CheckpointConflict) when the step already has a result: a finished step is
   * never overwritten, whoever asks. The result is redacted before it is stored.
   */
  async recordStepResult(jobId: string, stepId: string, result: unknown, meta: StepTiming): Promise<void> {
    const [results, order] = this.#keys(jobId);
    // Every field redacted once: the result walked here, the strings beside it each scanned (redacting the whole
    // record again walked the result a second time).
    const record: CheckpointRecord = {
      stepId: redact(stepId),
      title: redact(meta.title),
      result: toRedactedJson(result),
      startedAt: redact(meta.startedAt),
      finishedAt: redact(meta.finishedAt),
    };
    const json = JSON.stringify(record);
    const written = await runScript(
      this.redis,
      recordStepResultOnce,
      [results, order],
      [stepId, json, String(this.#ttl)],
    );
    // 2: this very record is already there (its reply was lost to a dropped connection and the command was sent
    // again on reconnect; the record carries the step's start and finish times, so another run cannot equal it).
    if (written !== 1 && written !== 2)
      throw new CheckpointConflict(
        `job ${jobId}: step '${stepId}' already has a recorded result; it is never overwritten`,
      );
    // A checkpoint a failover could lose is a finished step that runs again: on a replica before the next step.
    await awaitReplicaAck(this.redis, results, `checkpoint of job ${jobId} step '${stepId}'`);
  }

  /** Finished steps of a job, in the order they finished. */
  async finishedSteps(jobId: string): Promise<Map<string, CheckpointRecord>> {
    const [results, order] = this.#keys(jobId);
    const [ids, flat] = (await runScript(this.redis, readStepResultsInOrder, [results, order], [])) as [
      string[],
      string[],
    ];
    const all = new Map<string, string>();
    for (let i = 0; i + 1 < flat.length; i += 2) all.set(flat[i] as string, flat[i + 1] as string);
    const out = new Map<string, CheckpointRecord>();
    for (const id of ids) {
      const raw = all.get(id);
      if (raw === undefined) continue;
      out.set(id, JSON.parse(raw) as CheckpointRecord);
    }
    return out;
  }

  /** Forget a job's checkpoints (operator clean-up; a deleted job can then be re-run from the start). */
  async deleteJob(jobId: string): Promise<void> {
    await this.redis.del(...this.#keys(jobId));
  }
}
