// Webhook notifications against a real Redis and a receiver on loopback: signed calls, retried with backoff (the
// receiver refuses the first attempt), each attempt recorded as evidence without the URL or the secret, sent once per
// event (several scans, several daemons), a webhook that never answers given up after its attempts, and a new fleet
// problem told once per change of its status. The console's browser test checks the same calls end to end.
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { Queue, QueueEvents, Worker } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseFleet } from "../../src/config/load.ts";
import type { Fleet } from "../../src/config/schema.ts";
import { requestApproval } from "../../src/coord/approvals.ts";
import { evidenceKeys } from "../../src/evidence/log.ts";
import { RedisFactStore } from "../../src/facts/store.ts";
import { NOTIFY_QUEUE, type Notifier, startNotifier, webhookTargets } from "../../src/notify/notifier.ts";
import { verifyWebhook } from "../../src/notify/webhook.ts";
import { createJobQueue, QUEUE_NAME, QUEUE_PREFIX } from "../../src/queue/jobs.ts";
import { connectRedisForWorker } from "../../src/redis/client.ts";
import { withRedis } from "../helpers/redis.ts";

const SECRET = "notifier-test-secret-value-0123456789";
const server = await withRedis();
const redis = server.client();

interface Call {
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  status: number;
}
const calls: Call[] = [];
const waiters: { match: (c: Call) => boolean; resolve: (c: Call) => void }[] = [];
const seenIds = new Set<string>();
const receiver = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    const id = String(req.headers["webhook-id"]);
    // /flaky refuses each notification's first attempt; /down refuses all of them.
    const status = req.url === "/down" || (req.url === "/flaky" && !seenIds.has(id)) ? 500 : 204;
    seenIds.add(id);
    const call = {
      path: req.url ?? "",
      headers: req.headers,
      body: Buffer.concat(chunks).toString(),
      status,
    };
    calls.push(call);
    res.writeHead(status).end();
    for (const w of [...waiters])
      if (w.match(call)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(call);
      }
  });
});
const next = (match: (c: Call) => boolean) =>
  new Promise<Call>((resolve) => {
    const seen = calls.find(match);
    if (seen) resolve(seen);
    else waiters.push({ match, resolve });
  });

let fleet: Fleet;
let notifier: Notifier;
const jobsQueue = createJobQueue(redis);
const notifyQueue = new Queue(NOTIFY_QUEUE, { connection: server.client() as never, prefix: QUEUE_PREFIX });
const notifyEvents = new QueueEvents(NOTIFY_QUEUE, {
  connection: connectRedisForWorker({ url: server.url }) as never,
  prefix: QUEUE_PREFIX,
});
const today = () => `notify:${new Date().toISOString().slice(0, 10)}`;
const evidence = async () =>
  (await redis.lrange(evidenceKeys(today()).records, 0, -1)).map(
    (l) => JSON.parse(l) as { kind: string; data: Record<string, unknown> },
  );

beforeAll(async () => {
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
  await notifyEvents.waitUntilReady();
  const base = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  const parsed = parseFleet(`${readFileSync(join(import.meta.dirname, "../../config/demo.yaml"), "utf8")}
notifications:
  webhooks:
    - { name: soc, credentials: { url: "${base}/flaky", secret: "${SECRET}" } }
    - { name: down, events: [approval.awaiting], credentials: { url: "${base}/down", secret: "${SECRET}" } }
  retry: { attempts: 3, backoffMs: 20 }
`);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
  fleet = parsed.fleet;
  notifier = startNotifier({
    fleet,
    dataDir: server.dataDir,
    redis,
    redisOptions: { url: server.url },
    jobsQueue,
    sweepMs: 3_600_000,
    log: { warn: () => {}, info: () => {} },
  });
});

afterAll(async () => {
  await notifier?.close();
  await notifyEvents.close();
  await notifyQueue.close();
  await jobsQueue.close();
  await new Promise<void>((r) => receiver.close(() => r()));
});

const jobsNamed = async (name: string) =>
  (await notifyQueue.getJobs(["completed", "failed", "active", "waiting", "delayed"])).filter(
    (j) => j.name === name,
  );

describe("webhook notifications", () => {
  it("'awaiting approval' is signed, retried after a refusal, delivered, and each attempt recorded without URL or secret", async () => {
    await requestApproval(redis, "deprovision-n1", {
      runbook: "deprovision",
      requester: "olivia",
      planDigest: "c".repeat(64),
      device: "hsm-c1",
      serial: "700301",
      required: 2,
      expiresMinutes: 60,
      action: "zeroize hsm-c1",
    });
    const delivered = await next(
      (c) => c.path === "/flaky" && c.status === 204 && c.body.includes("deprovision-n1"),
    );
    expect(verifyWebhook(SECRET, delivered.headers, delivered.body)).toEqual({ ok: true });
    const body = JSON.parse(delivered.body);
    expect(body).toMatchObject({
      event: "approval.awaiting",
      id: "approval.awaiting-deprovision-n1",
      approval: {
        jobId: "deprovision-n1",
        device: "hsm-c1",
        serial: "700301",
        required: 2,
        requester: "olivia",
      },
      approvers: ["alice", "bob", "carol"],
    });
    expect(body.approval.statement).toMatch(/^lunafleet-approval v1\nkind: job\n/);
    const refused = calls.filter((c) => c.path === "/flaky" && c.body.includes("deprovision-n1"));
    expect(refused.map((c) => c.status)).toEqual([500, 204]);
    // The same id on both attempts: a receiver can tell a retry from a new notification.
    expect(new Set(refused.map((c) => c.headers["webhook-id"])).size).toBe(1);

    // The attempt is recorded before its job completes: once it has, both records are there.
    const job = (await jobsNamed("approval.awaiting")).find((j) => j.id?.endsWith("~soc"))!;
    await job.waitUntilFinished(notifyEvents);
    const records = await evidence();
    const soc = records.filter((r) => r.data.webhook === "soc" && r.data.notification === body.id);
    expect(soc.map((r) => [r.data.event, r.data.attempt])).toEqual([
      ["failed", 1],
      ["delivered", 2],
    ]);
    const lines = (await redis.lrange(evidenceKeys(today()).records, 0, -1)).join("\n");
    for (const secret of [SECRET, "/flaky", "/down"]) expect(lines).not.toContain(secret);
  });

  it("a webhook that keeps failing is given up after its attempts, recorded", async () => {
    await next((c) => c.path === "/down" && calls.filter((x) => x.path === "/down").length >= 3);
    const job = (await jobsNamed("approval.awaiting")).find((j) => j.id?.endsWith("~down"))!;
    await expect(job.waitUntilFinished(notifyEvents)).rejects.toThrow(/HTTP 500/);
    const records = (await evidence()).filter((r) => r.data.webhook === "down");
    expect(records.map((r) => r.data.event)).toEqual(["failed", "failed", "gave-up"]);
  });

  it("is sent once: scanning again, or a second request event for the same job, adds nothing", async () => {
    await notifier.scan();
    await notifier.scan();
    expect((await jobsNamed("approval.awaiting")).map((j) => j.id).sort()).toEqual([
      "approval.awaiting-deprovision-n1~down",
      "approval.awaiting-deprovision-n1~soc",
    ]);
  });

  it("a fact that becomes a problem is told once per change of its status", async () => {
    const facts = new RedisFactStore(redis);
    const observe = (status: "ok" | "problem", at: string) =>
      facts.record([
        {
          subject: "device:hsm-a2",
          fact: "cert",
          status,
          summary: status === "ok" ? "364 d" : "4 d",
          ...(status === "problem" ? { reason: "NTLS certificate expires in 4 days" } : {}),
          observedAt: at,
          jobId: "tcp-check-n1",
          by: "tcp-check",
        },
      ]);
    await observe("problem", "2026-12-01T10:00:00.000Z");
    await notifier.scan();
    await notifier.scan();
    const first = await next((c) => c.status === 204 && c.body.includes('"fleet.problem"'));
    expect(verifyWebhook(SECRET, first.headers, first.body)).toEqual({ ok: true });
    expect(JSON.parse(first.body)).toMatchObject({
      problem: { subject: "device:hsm-a2", fact: "cert", status: "problem", jobId: "tcp-check-n1" },
    });
    expect(await jobsNamed("fleet.problem")).toHaveLength(1);
    await observe("ok", "2026-12-02T10:00:00.000Z");
    await notifier.scan();
    await observe("problem", "2026-12-03T10:00:00.000Z");
    await notifier.scan();
    expect(await jobsNamed("fleet.problem")).toHaveLength(2);
  });

  it("a job of the daemon's queue that ends is told as job.finished with its outcome and requester, signed", async () => {
    // A stand-in for the daemon's worker on the daemon's own queue (name and hash-tagged prefix): the notifier hears
    // the queue's events, so a job that ends there is told; one that fails carries its reason, redacted.
    const worker = new Worker(
      QUEUE_NAME,
      async (job) => {
        if (job.data.params.target === "hsm-b1") throw new Error("hsm-b1: tcp connect refused");
      },
      { connection: connectRedisForWorker({ url: server.url }) as never, prefix: QUEUE_PREFIX },
    );
    try {
      const data = (target: string) => ({
        runbook: "tcp-check",
        params: { target },
        actor: "operator:olivia",
        requestedAt: new Date().toISOString(),
        fleetDigest: "d".repeat(64),
      });
      await jobsQueue.add("tcp-check", data("hsm-a1"), { jobId: "tcp-check-fin-1" });
      await jobsQueue.add("tcp-check", data("hsm-b1"), { jobId: "tcp-check-fin-2", attempts: 1 });
      const told = async (id: string) => {
        const call = await next(
          (c) => c.status === 204 && c.body.includes('"job.finished"') && c.body.includes(`"${id}"`),
        );
        expect(verifyWebhook(SECRET, call.headers, call.body)).toEqual({ ok: true });
        return JSON.parse(call.body) as { job: Record<string, unknown> };
      };
      expect((await told("tcp-check-fin-1")).job).toMatchObject({
        id: "tcp-check-fin-1",
        runbook: "tcp-check",
        target: "hsm-a1",
        outcome: "succeeded",
        requester: "operator:olivia",
        failedReason: null,
      });
      expect((await told("tcp-check-fin-2")).job).toMatchObject({
        target: "hsm-b1",
        outcome: "failed",
        failedReason: "hsm-b1: tcp connect refused",
      });
    } finally {
      await worker.close();
    }
  });

  it("webhooks of a production fleet must be https and their URL a reference, not a literal", () => {
    expect(webhookTargets(fleet).map((t) => t.name)).toEqual(["soc", "down"]);
    const production = { ...structuredClone(fleet), twin: false };
    expect(() => webhookTargets(production)).toThrow(/literal|https only/);
    process.env.LF_TEST_WEBHOOK_URL = "http://127.0.0.1:9/x";
    const env = {
      ...production,
      notifications: {
        ...production.notifications!,
        webhooks: [
          { ...production.notifications!.webhooks[0]!, credentials: { url: "env:LF_TEST_WEBHOOK_URL" } },
        ],
      },
    };
    expect(() => webhookTargets(env)).toThrow(/https only/);
  });
});
