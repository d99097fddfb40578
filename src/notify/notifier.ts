// Notifications: what happened, told to the fleet's webhooks (notifications.webhooks), each call signed, retried with
// exponential backoff and recorded as evidence (log `notify:<UTC day>`: which webhook, which notification, attempt,
// answer — never the URL or the secret).
//
//   approval.awaiting  a job asks for approvals (the approval store publishes it; the waiting index is swept too)
//   job.finished       a job ended, with its outcome (BullMQ's queue events)
//   fleet.problem      a fact of the fleet state model became a problem or a failed check (checked after each job)
//
// Deliveries are BullMQ jobs of their own queue: attempts and backoff are BullMQ's, they survive a daemon restart, and
// their ids are deterministic per (event, subject, webhook), so several daemons on one Redis send each once. A new
// problem is decided by one atomic script per fact (the first daemon to see the change sends it).
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { type Job, Queue, QueueEvents, Worker } from "bullmq";
import type { Fleet } from "../config/schema.ts";
import { redact, resolveSecret } from "../config/secret.ts";
import {
  APPROVAL_REQUESTED_CHANNEL,
  type ApprovalState,
  approvalStatement,
  listWaitingApprovals,
} from "../coord/approvals.ts";
import { signableStatement } from "../coord/signed-approvals.ts";
import { EvidenceLog } from "../evidence/log.ts";
import { type EvidenceSigner, sealEvidence } from "../evidence/signing.ts";
import type { Observation } from "../facts/model.ts";
import { RedisFactStore } from "../facts/store.ts";
import { jobOutcome } from "../queue/job-outcome.ts";
import { type JobData, QUEUE_PREFIX } from "../queue/jobs.ts";
import {
  type ConnectRedisOptions,
  connectRedis,
  connectRedisForWorker,
  type LuaScript,
  luaScript,
  type RedisClient,
  runScript,
} from "../redis/client.ts";
import { deliver, type Notification, type WebhookTarget } from "./webhook.ts";

export const NOTIFY_QUEUE = "lunafleet-notify";
const NOTIFIED_PROBLEMS_KEY = "lunafleet:notify:problems";
const NOTIFIED_APPROVALS_KEY = "lunafleet:notify:approvals";

interface DeliveryData {
  webhook: string;
  notification: Notification;
}

export interface NotifierOptions {
  fleet: Fleet;
  dataDir: string;
  /** The daemon's command connection (reads, scripts, evidence). */
  redis: RedisClient;
  /** Where to open the blocking connections BullMQ and the subscriber need. */
  redisOptions: ConnectRedisOptions;
  /** The daemon's job queue: its name and key prefix are where the notifier hears jobs end. */
  jobsQueue: import("bullmq").Queue<JobData>;
  evidenceSigner?: EvidenceSigner | undefined;
  /** The console's URL (links in the messages), when the API serves it. */
  consoleUrl?: string | undefined;
  /** How often the waiting approvals are swept besides the published events (a missed message is still sent). */
  sweepMs?: number;
  log: { warn(o: object, m: string): void; info(o: object, m: string): void };
}

export interface Notifier {
  /** Look for new problems and waiting approvals now (tests; the daemon calls it on its events). */
  scan(): Promise<void>;
  close(): Promise<void>;
}

/** The fleet's webhooks with their secrets resolved: https, or http to loopback in a twin fleet only. */
export function webhookTargets(fleet: Fleet): (WebhookTarget & { events: string[] })[] {
  return (fleet.notifications?.webhooks ?? []).map((w) => {
    const url = resolveSecret(w.credentials.url, {
      literalAllowed: fleet.twin,
      what: `webhook ${w.name} url`,
    }).reveal();
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new Error(`webhook ${w.name}: its url is not a URL`);
    }
    const loopback = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/.test(parsed.hostname);
    if (parsed.protocol !== "https:" && !(fleet.twin && loopback && parsed.protocol === "http:"))
      throw new Error(`webhook ${w.name}: https only (plain http only to loopback in a twin fleet)`);
    return {
      name: w.name,
      url,
      format: w.format,
      events: w.events,
      ...(w.credentials.secret
        ? {
            secret: resolveSecret(w.credentials.secret, {
              literalAllowed: fleet.twin,
              what: `webhook ${w.name} secret`,
            }).reveal(),
          }
        : {}),
      ...(w.caFile ? { ca: readFileSync(w.caFile, "utf8") } : {}),
    };
  });
}

// KEYS: notified-problems hash. ARGV: field, status. Records the status a fact was last notified with; returns 1 when
// it changed (a new problem to tell), 0 when this status was already told.
const rememberProblemStatus: LuaScript = luaScript(
  "rememberNotifiedProblemStatus",
  1,
  `if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1`,
);

const shortHash = (s: string) => createHash("sha256").update(s).digest("hex").slice(0, 20);

export function startNotifier(opts: NotifierOptions): Notifier {
  const targets = webhookTargets(opts.fleet);
  const { retry } = opts.fleet.notifications ?? { retry: { attempts: 8, backoffMs: 2000 } };
  const queueConnection = connectRedis({ ...opts.redisOptions, connectionName: "lunafleet:notify" });
  // The deliveries live under the jobs' hash-tagged prefix: one Cluster slot for BullMQ's multi-key scripts.
  const queue = new Queue<DeliveryData>(NOTIFY_QUEUE, {
    connection: queueConnection as never,
    prefix: QUEUE_PREFIX,
  });
  const workerConnection = connectRedisForWorker({
    ...opts.redisOptions,
    connectionName: "lunafleet:notify-worker",
  });
  const eventsConnection = connectRedisForWorker({
    ...opts.redisOptions,
    connectionName: "lunafleet:notify-events",
  });
  const subscriber = connectRedis({ ...opts.redisOptions, connectionName: "lunafleet:notify-sub" });
  const link = (hash: string) => (opts.consoleUrl ? `${opts.consoleUrl}#/${hash}` : undefined);

  const record = async (data: Record<string, unknown>) => {
    try {
      const log = await EvidenceLog.open(
        opts.redis,
        opts.dataDir,
        `notify:${new Date().toISOString().slice(0, 10)}`,
      );
      await log.append("note", data, "notifier");
      await sealEvidence(log, opts.evidenceSigner, opts.redis);
    } catch (err) {
      opts.log.warn({ error: redact((err as Error).message) }, "notify: could not record a delivery");
    }
  };

  const enqueue = async (n: Notification) => {
    for (const t of targets) {
      if (!t.events.includes(n.event)) continue;
      // Deterministic ids: a second daemon (or a second look) adds nothing; kept a week so that holds.
      await queue.add(
        n.event,
        { webhook: t.name, notification: n },
        {
          jobId: `${n.id.replace(/[^A-Za-z0-9._-]/g, "_")}~${t.name}`,
          attempts: retry.attempts,
          backoff: { type: "exponential", delay: retry.backoffMs },
          removeOnComplete: { age: 7 * 86_400 },
          removeOnFail: { age: 30 * 86_400 },
        },
      );
    }
  };

  const worker = new Worker<DeliveryData>(
    NOTIFY_QUEUE,
    async (job: Job<DeliveryData>) => {
      const target = targets.find((t) => t.name === job.data.webhook);
      const n = job.data.notification;
      const attempt = job.attemptsMade + 1;
      if (!target) {
        await record({
          event: "dropped",
          webhook: job.data.webhook,
          notification: n.id,
          reason: "no such webhook now",
        });
        return;
      }
      const host = new URL(target.url).host;
      try {
        const res = await deliver(target, n);
        await record({
          event: "delivered",
          webhook: target.name,
          host,
          notification: n.id,
          kind: n.event,
          attempt,
          status: res.status,
        });
      } catch (err) {
        const last = attempt >= (job.opts.attempts ?? 1);
        await record({
          event: last ? "gave-up" : "failed",
          webhook: target.name,
          host,
          notification: n.id,
          kind: n.event,
          attempt,
          error: redact((err as Error).message),
        });
        throw err;
      }
    },
    { connection: workerConnection as never, concurrency: 4, prefix: QUEUE_PREFIX },
  );
  worker.on("error", (err) => opts.log.warn({ error: redact(err.message) }, "notify worker error"));

  // --- approval.awaiting ---
  const approvers = (s: ApprovalState) =>
    opts.fleet.identity.principals
      .filter(
        (p) => p.roles.includes("approver") && p.name.toLowerCase() !== (s.requester ?? "").toLowerCase(),
      )
      .filter((p) => !s.principals || s.principals.some((x) => x.toLowerCase() === p.name.toLowerCase()))
      .map((p) => p.name);
  const tellWaiting = async () => {
    for (const s of await listWaitingApprovals(opts.redis)) {
      if ((await opts.redis.sadd(NOTIFIED_APPROVALS_KEY, s.jobId)) === 0) continue;
      let statement: string | null = null;
      try {
        statement = signableStatement(approvalStatement(s));
      } catch {
        statement = null;
      }
      await enqueue({
        id: `approval.awaiting-${s.jobId}`,
        event: "approval.awaiting",
        at: s.requestedAt,
        title: `${s.runbook ?? "job"} on ${s.device} (serial ${s.serial}) awaits ${s.required} approvals, requested by ${s.requester ?? "?"}, until ${s.expiresAt}`,
        link: link(`approval/${encodeURIComponent(s.jobId)}`),
        data: {
          approval: {
            jobId: s.jobId,
            runbook: s.runbook,
            device: s.device,
            serial: s.serial,
            action: s.action,
            required: s.required,
            approvals: s.approvals.length,
            requester: s.requester,
            deadline: s.expiresAt,
            statement,
          },
          approvers: approvers(s),
        },
      });
    }
  };

  // --- job.finished ---
  const tellFinished = async (jobId: string) => {
    const view = await jobOutcome(opts.jobsQueue, opts.redis, jobId);
    if (["queued", "delayed", "running", "awaiting-approval"].includes(view.outcome)) return;
    const job = await opts.jobsQueue.getJob(jobId);
    const target = typeof job?.data.params?.target === "string" ? job.data.params.target : "-";
    await enqueue({
      id: `job.finished-${jobId}`,
      event: "job.finished",
      at: new Date(job?.finishedOn ?? Date.now()).toISOString(),
      title: `${job?.data.runbook ?? "job"} on ${target}: ${view.outcome}`,
      link: link(`job/${encodeURIComponent(jobId)}`),
      data: {
        job: {
          id: jobId,
          runbook: job?.data.runbook ?? view.result?.runbook ?? null,
          target,
          outcome: view.outcome,
          requester: job?.data.actor ?? null,
          findings: view.result?.findings ?? [],
          failedReason: job?.failedReason ? redact(job.failedReason) : null,
        },
      },
    });
  };

  // --- fleet.problem ---
  const tellProblems = async () => {
    const all = await new RedisFactStore(opts.redis).readAll();
    for (const [subject, facts] of all)
      for (const [fact, o] of Object.entries(facts)) {
        const field = `${subject}#${fact}`;
        if (o.status !== "problem" && o.status !== "check-failed") {
          await opts.redis.hdel(NOTIFIED_PROBLEMS_KEY, field);
          continue;
        }
        const changed = (await runScript(
          opts.redis,
          rememberProblemStatus,
          [NOTIFIED_PROBLEMS_KEY],
          [field, o.status],
        )) as number;
        if (changed === 1) await enqueue(problemNotification(subject, fact, o, link));
      }
  };

  // Scans never overlap; one asked for while another runs runs once after it.
  let running: Promise<void> | undefined;
  let again = false;
  const scan = async (): Promise<void> => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        try {
          await tellWaiting();
          await tellProblems();
        } catch (err) {
          opts.log.warn({ error: redact((err as Error).message) }, "notify: scan failed");
        }
      } while (again);
    })().finally(() => {
      running = undefined;
    });
    return running;
  };

  // The queue's own name and prefix: a QueueEvents on another prefix reads a stream nobody writes, and hears nothing.
  const events = new QueueEvents(opts.jobsQueue.name, {
    connection: eventsConnection as never,
    prefix: opts.jobsQueue.opts.prefix ?? "bull",
  });
  const onEnded = ({ jobId }: { jobId: string }) => {
    void tellFinished(jobId)
      .catch((err: Error) => opts.log.warn({ error: redact(err.message), jobId }, "notify: job.finished"))
      .then(() => scan());
  };
  events.on("completed", onEnded);
  events.on("failed", onEnded);
  events.on("error", (err) => opts.log.warn({ error: redact(err.message) }, "notify: queue events error"));
  void subscriber.subscribe(APPROVAL_REQUESTED_CHANNEL).catch(() => {});
  subscriber.on("message", () => void scan());
  const sweep = setInterval(() => void scan(), opts.sweepMs ?? 30_000);
  sweep.unref();
  void scan();

  return {
    scan,
    async close() {
      clearInterval(sweep);
      await events.close().catch(() => {});
      await worker.close().catch(() => {});
      await queue.close().catch(() => {});
      subscriber.disconnect();
      queueConnection.disconnect();
      workerConnection.disconnect();
      eventsConnection.disconnect();
      await running?.catch(() => {});
    },
  };
}

function problemNotification(
  subject: string,
  fact: string,
  o: Observation,
  link: (hash: string) => string | undefined,
): Notification {
  const device = subject.startsWith("device:") ? subject.slice(7) : null;
  const what =
    o.status === "check-failed" ? `check failed: ${o.reason ?? o.summary}` : (o.reason ?? o.summary);
  return {
    id: `fleet.problem-${shortHash(`${subject}#${fact}#${o.status}#${o.observedAt}`)}`,
    event: "fleet.problem",
    at: o.observedAt,
    title: `${subject} ${fact}: ${what}`,
    link: link(device ? `device/${encodeURIComponent(device)}` : "fleet"),
    data: {
      problem: {
        subject,
        fact,
        status: o.status,
        summary: o.summary,
        reason: o.reason ?? null,
        observedAt: o.observedAt,
        jobId: o.jobId,
        by: o.by,
      },
    },
  };
}
