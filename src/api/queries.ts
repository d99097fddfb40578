// What the API answers and the CLI prints, computed in one place: the CLI on the daemon host calls these directly
// (on the data dir's Redis), the API calls them for a remote CLI or the console. Nothing here formats text.
import type { Queue } from "bullmq";
import { RedisCheckpointStore } from "../engine/checkpoints.ts";
import type { JobResult } from "../engine/runner.ts";
import { RedisStateStore } from "../engine/state.ts";
import { evidenceKeys, verifyJobEvidence } from "../evidence/log.ts";
import type { EvidenceVerification } from "../evidence/verify.ts";
import { type JobData, resultKey } from "../queue/jobs.ts";
import type { JobProgress } from "../queue/worker.ts";
import type { RedisClient } from "../redis/client.ts";

export const JOB_STATES = ["active", "waiting", "delayed", "prioritized", "completed", "failed"] as const;
export type JobState = (typeof JOB_STATES)[number];

export interface JobRow {
  id: string;
  state: string;
  runbook: string;
  target: string;
  progress: string;
  actor: string;
  createdAt: number;
  finishedAt?: number | undefined;
  failedReason?: string;
}

export async function listJobs(
  queue: Queue<JobData>,
  opts: { state?: JobState | undefined; limit: number },
): Promise<JobRow[]> {
  const states: JobState[] = opts.state ? [opts.state] : [...JOB_STATES];
  const rows: JobRow[] = [];
  for (const state of states) {
    const jobs = await queue.getJobs([state], 0, Math.max(0, opts.limit - 1), false);
    for (const j of jobs) {
      const p = j.progress as Partial<JobProgress> | number;
      rows.push({
        id: j.id ?? "?",
        state,
        runbook: j.data.runbook,
        target: typeof j.data.params?.target === "string" ? j.data.params.target : "-",
        progress: typeof p === "object" && p?.total ? `${p.done ?? 0}/${p.total}` : "-",
        actor: j.data.actor,
        createdAt: j.timestamp,
        finishedAt: j.finishedOn,
        ...(j.failedReason ? { failedReason: j.failedReason } : {}),
      });
    }
  }
  rows.sort((a, b) => b.createdAt - a.createdAt);
  return rows.slice(0, opts.limit);
}

export interface JobDetail {
  id: string;
  state: string;
  data?: JobData | undefined;
  attemptsMade?: number | undefined;
  failedReason?: string | undefined;
  timestamps: { created?: number | undefined; started?: number | undefined; finished?: number | undefined };
  result?: JobResult | undefined;
  checkpoints: Record<string, unknown>;
  evidence: {
    records: number;
    kinds: Record<string, number>;
    verification?: EvidenceVerification | undefined;
  };
}

/** One job's state, request, steps and evidence summary; undefined when nothing is known of it. */
export async function jobDetail(
  queue: Queue<JobData>,
  redis: RedisClient,
  dataDir: string,
  id: string,
): Promise<JobDetail | undefined> {
  const job = await queue.getJob(id);
  const raw = await redis.get(resultKey(id));
  const result = raw ? (JSON.parse(raw) as JobResult) : undefined;
  const checkpoints = await new RedisCheckpointStore(redis).finishedSteps(id);
  const lines = await redis.lrange(evidenceKeys(id).records, 0, -1);
  if (!job && !result && lines.length === 0) return undefined;
  const kinds: Record<string, number> = {};
  for (const line of lines) {
    const kind = (JSON.parse(line) as { kind?: string }).kind ?? "?";
    kinds[kind] = (kinds[kind] ?? 0) + 1;
  }
  const verification = lines.length > 0 ? await verifyJobEvidence(redis, dataDir, id) : undefined;
  return {
    id,
    state: job ? await job.getState() : "removed",
    data: job?.data,
    attemptsMade: job?.attemptsMade,
    failedReason: job?.failedReason,
    timestamps: { created: job?.timestamp, started: job?.processedOn, finished: job?.finishedOn },
    result,
    checkpoints: Object.fromEntries(checkpoints),
    evidence: { records: lines.length, kinds, verification },
  };
}

const FAILURES_KEY = /^ha-breaker:(.+):([^:]+\/[^:]+):failures$/;

export interface BreakerRow {
  group: string;
  member: string;
  failures: number;
}

export async function listBreakers(redis: RedisClient): Promise<BreakerRow[]> {
  const state = new RedisStateStore(redis);
  const rows: BreakerRow[] = [];
  for (const key of await state.keys("ha-breaker:")) {
    const m = FAILURES_KEY.exec(key);
    if (m) rows.push({ group: m[1]!, member: m[2]!, failures: Number(await state.get(key)) });
  }
  return rows;
}
