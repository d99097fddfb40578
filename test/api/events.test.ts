// The live event stream of a job (GET /v1/jobs/:id/events, server-sent events over HTTPS): `hello`, then each
// evidence record as it is appended — exactly the lines of the job's chain, in order — then `end` with the job's
// result once it has one. Live means the records arrive while the job runs: here the test appends each record and
// waits for the stream to deliver it before appending the next (no timing: every step awaits the event). `from`
// resumes after the records a client already has. Authentication and roles apply as to every route.

import { readFileSync } from "node:fs";
import { request } from "node:https";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiCallError } from "../../src/cli/api-client.ts";
import { EvidenceLog, evidenceKeys } from "../../src/evidence/index.ts";
import { resultKey } from "../../src/queue/jobs.ts";
import { type ApiHarness, startApiHarness } from "../helpers/api.ts";

let h: ApiHarness;
let viewer = "";
let nobody = "";
let ca = "";

beforeAll(async () => {
  h = await startApiHarness({
    clients: [{ id: "watcher", roles: ["LunaFleet.viewer"] }, { id: "stranger" }],
    identity: () => ({ roles: { viewer: { appRoles: ["LunaFleet.viewer"] } } }),
  });
  viewer = await h.idp.token("watcher");
  nobody = await h.idp.token("stranger");
  ca = readFileSync(join(h.dataDir, "api-cert.pem"), "utf8");
});
afterAll(async () => h?.stop());

interface SseEvent {
  event: string;
  data: string;
}

/** An open event stream: each event as it arrives, awaited one at a time. */
function openStream(path: string, token: string) {
  const queue: SseEvent[] = [];
  const waiters: ((e: SseEvent | null) => void)[] = [];
  let ended = false;
  let buffer = "";
  const deliver = (e: SseEvent | null) => {
    const w = waiters.shift();
    if (w) w(e);
    else if (e) queue.push(e);
  };
  const req = request(`${h.daemon.api!.url}${path}`, {
    ca,
    headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" },
  });
  const response = new Promise<{ status: number; type: string }>((resolve, reject) => {
    req.on("response", (res) => {
      resolve({ status: res.statusCode ?? 0, type: String(res.headers["content-type"] ?? "") });
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        buffer += chunk;
        for (let i = buffer.indexOf("\n\n"); i >= 0; i = buffer.indexOf("\n\n")) {
          const block = buffer.slice(0, i);
          buffer = buffer.slice(i + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1] ?? "message";
          const data = /^data: (.*)$/m.exec(block)?.[1] ?? "";
          deliver({ event, data });
        }
      });
      res.on("end", () => {
        ended = true;
        while (waiters.length) deliver(null);
      });
    });
    req.on("error", reject);
  });
  req.end();
  return {
    response,
    next(): Promise<SseEvent | null> {
      const e = queue.shift();
      if (e) return Promise.resolve(e);
      if (ended) return Promise.resolve(null);
      return new Promise((resolve) => waiters.push(resolve));
    },
    close: () => req.destroy(),
  };
}

describe("GET /v1/jobs/:id/events", () => {
  it("delivers each record as it is appended, in chain order, then `end` with the result; the stream closes", async () => {
    const jobId = `events-live-${process.pid}`;
    const log = await EvidenceLog.open(h.daemon.redis, h.dataDir, jobId);
    await log.append("requested", { runbook: "tcp-check", target: "device:hsm-a1" }, "alice");
    const stream = openStream(`/v1/jobs/${jobId}/events`, viewer);
    expect(await stream.response).toEqual({ status: 200, type: "text/event-stream" });
    expect(await stream.next()).toEqual({ event: "hello", data: JSON.stringify({ job: jobId, from: 0 }) });
    const lines = () => h.daemon.redis.lrange(evidenceKeys(jobId).records, 0, -1);
    expect(await stream.next()).toEqual({ event: "record", data: (await lines())[0] });

    // Appended while the client watches: each arrives before the next is written.
    await log.append("step", { id: "ntls-probe:hsm-a1", state: "started" });
    expect(await stream.next()).toEqual({ event: "record", data: (await lines())[1] });
    await log.append("step", { id: "ntls-probe:hsm-a1", state: "done" });
    expect(await stream.next()).toEqual({ event: "record", data: (await lines())[2] });

    // The result, then a record appended after it (as the lock release is): both reach the client, then `end`.
    const result = JSON.stringify({ ok: true, outcome: "succeeded" });
    await log.append("result", { ok: true });
    await h.daemon.redis.set(resultKey(jobId), result);
    const rest: SseEvent[] = [];
    for (let e = await stream.next(); e; e = await stream.next()) rest.push(e);
    expect(rest).toEqual([
      { event: "record", data: (await lines())[3] },
      { event: "end", data: result },
    ]);
    // What was streamed is the chain itself: it verifies.
    expect((await log.verify()).ok).toBe(true);
  });

  it("resumes after `from`; a finished job's stream is the whole record and its end at once", async () => {
    const jobId = `events-done-${process.pid}`;
    const log = await EvidenceLog.open(h.daemon.redis, h.dataDir, jobId);
    for (let i = 0; i < 5; i++) await log.append("step", { id: `s${i}`, state: "done" });
    await h.daemon.redis.set(resultKey(jobId), JSON.stringify({ ok: false }));
    const all = await h.daemon.redis.lrange(evidenceKeys(jobId).records, 0, -1);
    const { text } = await h.client(viewer).text("GET", `/v1/jobs/${jobId}/events?from=3`);
    expect(text).toBe(
      [
        `event: hello\ndata: ${JSON.stringify({ job: jobId, from: 3 })}\n\n`,
        ...all.slice(3).map((l) => `event: record\ndata: ${l}\n\n`),
        `event: end\ndata: ${JSON.stringify({ ok: false })}\n\n`,
      ].join(""),
    );
  });

  it("a job nobody queued is a 404 at once, not a stream that waits forever", async () => {
    const err = await h
      .client(viewer)
      .text("GET", `/v1/jobs/tcp-check-nosuch-${process.pid}/events`)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiCallError);
    expect(err).toMatchObject({
      status: 404,
      message: `no job 'tcp-check-nosuch-${process.pid}': nothing queued, recorded or finished under that id`,
    });
  });

  it("needs a token and a role that reads jobs; a bad job id or `from` is a 400", async () => {
    const path = `/v1/jobs/events-done-${process.pid}/events`;
    for (const [token, status] of [
      [undefined, 401],
      [nobody, 403],
    ] as const) {
      const err = await h
        .client(token)
        .text("GET", path)
        .catch((e: unknown) => e);
      expect((err as ApiCallError).status).toBe(status);
    }
    for (const bad of ["/v1/jobs/..%2Fetc/events", `${path}?from=-1`]) {
      const err = await h
        .client(viewer)
        .text("GET", bad)
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ApiCallError);
      expect((err as ApiCallError).status, bad).toBe(400);
    }
  });
});
