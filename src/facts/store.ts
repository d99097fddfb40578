// The fleet state model in Redis. Per subject one hash: field = fact name, value = the latest observation (JSON). An
// observation replaces the stored one only if it was seen later (one atomic script per fact, so two jobs that saw
// the same fact at different moments cannot leave the older one standing). Per device, the jobs that touched it.
//
// Keys (the {subject} / {device} hash tags keep each key in one Cluster slot; no script spans two keys):
//   lunafleet:facts:{<subject>}        hash fact -> Observation JSON
//   lunafleet:facts:subjects           set of every subject ever observed (an index for listings)
//   lunafleet:facts:jobs:{<device>}    list of JobTouch JSON, newest first, trimmed to JOB_HISTORY entries
import { type LuaScript, luaScript, type RedisClient, runScript } from "../redis/client.ts";
import { checkObservation, type FactSink, type Observation } from "./model.ts";

const PREFIX = "lunafleet:facts";
const SUBJECTS_KEY = `${PREFIX}:subjects`;
const JOB_HISTORY = 50;

function factsKey(subject: string): string {
  return `${PREFIX}:{${subject}}`;
}
function deviceJobsKey(device: string): string {
  return `${PREFIX}:jobs:{${device}}`;
}

/** A job that touched a device, as `report <device>` lists it. */
export interface JobTouch {
  jobId: string;
  runbook: string;
  outcome: string;
  actor: string;
  finishedAt: string;
}

// KEYS: facts hash. ARGV: fact, observation JSON, observedAt (ISO, compared as text: same format, same zone).
// Keeps the later of the stored and the offered observation. Returns 1 when stored, 0 when the stored one is newer.
const keepLaterObservation: LuaScript = luaScript(
  "keepLaterObservation",
  1,
  `local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local ok, old = pcall(cjson.decode, cur)
  if ok and type(old) == 'table' and type(old.observedAt) == 'string' and old.observedAt > ARGV[3] then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1`,
);

/**
 * How long a store trusts that a subject it put in the index is still there. The index only grows, so re-adding a
 * subject on every observation (two per step on a sweep) was a command per write that changed nothing; it is sent
 * again after this long all the same, so an index that Redis lost (a failover, a restart without persistence) fills
 * again while the daemon runs.
 */
const INDEX_REFRESH_MS = 10 * 60_000;

export class RedisFactStore implements FactSink {
  /** Subjects this store put in the index, and when (ms). */
  readonly #indexed = new Map<string, number>();

  constructor(
    private readonly redis: RedisClient,
    private readonly now: () => number = Date.now,
  ) {}

  async record(observations: readonly Observation[]): Promise<void> {
    for (const o of observations) checkObservation(o);
    const at = this.now();
    const subjects = new Set(
      observations
        .map((o) => o.subject)
        .filter(
          (subject) => at - (this.#indexed.get(subject) ?? Number.NEGATIVE_INFINITY) >= INDEX_REFRESH_MS,
        ),
    );
    // Issued together: each script keeps the later observation of its own fact whatever the order, so one
    // round trip (one auto-pipelined write) serves the whole step instead of one per observation.
    await Promise.all([
      ...observations.map((o) =>
        runScript(
          this.redis,
          keepLaterObservation,
          [factsKey(o.subject)],
          [o.fact, JSON.stringify(o), o.observedAt],
        ),
      ),
      ...(subjects.size > 0 ? [this.redis.sadd(SUBJECTS_KEY, ...subjects)] : []),
    ]);
    for (const subject of subjects) this.#indexed.set(subject, at);
  }

  /** The facts of one subject, by fact name (corrupt entries are skipped: they are not observations). */
  async read(subject: string): Promise<Record<string, Observation>> {
    const raw = await this.redis.hgetall(factsKey(subject));
    const out: Record<string, Observation> = {};
    for (const [fact, json] of Object.entries(raw)) {
      try {
        out[fact] = JSON.parse(json) as Observation;
      } catch {
        // not an observation; the report shows the fact as unknown
      }
    }
    return out;
  }

  /** Every subject observed so far. */
  async subjects(): Promise<string[]> {
    return (await this.redis.smembers(SUBJECTS_KEY)).sort();
  }

  /** Every observation, by subject. */
  async readAll(): Promise<Map<string, Record<string, Observation>>> {
    const out = new Map<string, Record<string, Observation>>();
    for (const s of await this.subjects()) out.set(s, await this.read(s));
    return out;
  }

  async recordJob(device: string, touch: JobTouch): Promise<void> {
    const key = deviceJobsKey(device);
    // One connection keeps the order: the trim runs after the push, in the same round trip.
    await Promise.all([
      this.redis.lpush(key, JSON.stringify(touch)),
      this.redis.ltrim(key, 0, JOB_HISTORY - 1),
    ]);
  }

  async jobHistory(device: string, limit = JOB_HISTORY): Promise<JobTouch[]> {
    const raw = await this.redis.lrange(deviceJobsKey(device), 0, Math.max(0, limit - 1));
    return raw.flatMap((r) => {
      try {
        return [JSON.parse(r) as JobTouch];
      } catch {
        return [];
      }
    });
  }
}
