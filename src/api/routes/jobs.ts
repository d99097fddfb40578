// Jobs over the API (the operations themselves: ../ops/jobs.ts): submit, plan, list, get, progress, cancel, and a
// live event stream of the job's evidence records (server-sent events) until it finishes.
import { z } from "zod";
import { evidenceKeys } from "../../evidence/log.ts";
import { isValidJobId } from "../../evidence/record.ts";
import { resultKey } from "../../queue/jobs.ts";
import { ApiError } from "../errors.ts";
import {
  cancelJobOp,
  JOB_STATE_WORDS,
  jobDetailOp,
  jobStatusOp,
  listJobsOp,
  planOp,
  submitJobOp,
} from "../ops/jobs.ts";
import { type ApiApp, type ApiRouteContext, principalOf } from "../server.ts";

const jobRequestSchema = z
  .object({
    runbook: z.string().min(1),
    target: z.string().min(1).optional(),
    params: z.record(z.string(), z.unknown()).default({}),
  })
  .strict();

const jobIdParam = z.object({ id: z.string().refine(isValidJobId, "not a job id") });

export function registerJobRoutes(app: ApiApp, { services }: ApiRouteContext): void {
  const op = (req: Parameters<typeof principalOf>[0]) => ({ services, principal: principalOf(req) });

  app.post(
    "/v1/plan",
    { config: { operation: "plan" }, schema: { body: jobRequestSchema, tags: ["jobs"] } },
    async (req) => planOp(op(req), req.body),
  );

  app.post(
    "/v1/jobs",
    { config: { operation: "jobs.submit" }, schema: { body: jobRequestSchema, tags: ["jobs"] } },
    async (req, reply) => reply.code(201).send(await submitJobOp(op(req), req.body)),
  );

  app.get(
    "/v1/jobs",
    {
      config: { operation: "jobs.read" },
      schema: {
        querystring: z.object({
          state: z.enum(JOB_STATE_WORDS).optional(),
          limit: z.coerce.number().int().min(1).max(10_000).default(50),
        }),
        tags: ["jobs"],
      },
    },
    async (req) => listJobsOp(op(req), { state: req.query.state, limit: req.query.limit }),
  );

  app.get(
    "/v1/jobs/:id",
    { config: { operation: "jobs.read" }, schema: { params: jobIdParam, tags: ["jobs"] } },
    async (req) => jobDetailOp(op(req), req.params.id),
  );

  app.get(
    "/v1/jobs/:id/status",
    { config: { operation: "jobs.read" }, schema: { params: jobIdParam, tags: ["jobs"] } },
    async (req) => jobStatusOp(op(req), req.params.id),
  );

  app.post(
    "/v1/jobs/:id/cancel",
    { config: { operation: "jobs.cancel" }, schema: { params: jobIdParam, tags: ["jobs"] } },
    async (req) => cancelJobOp(op(req), req.params.id),
  );

  // Server-sent events: every evidence record of the job as it is appended (steps starting and ending, commands,
  // parsed answers, all already redacted), then `end` with the job's result once it has ended.
  app.get(
    "/v1/jobs/:id/events",
    {
      config: { operation: "jobs.read" },
      schema: {
        params: jobIdParam,
        querystring: z.object({ from: z.coerce.number().int().min(0).default(0) }),
        tags: ["jobs"],
      },
    },
    async (req, reply) => {
      const id = req.params.id;
      const keys = evidenceKeys(id);
      // A stream of a job that does not exist would wait for it forever (a typo holds a connection open): refused
      // unless the job is in the queue, has records, or has a result.
      const known =
        (await services.redis.exists(keys.records, resultKey(id))) > 0 ||
        (await services.queue.getJob(id)) !== undefined;
      if (!known)
        throw new ApiError(404, `no job '${id}': nothing queued, recorded or finished under that id`);
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        "content-type": "text/event-stream",
        "cache-control": "no-store",
        connection: "keep-alive",
      });
      let next = req.query.from;
      let closed = false;
      req.raw.on("close", () => {
        closed = true;
      });
      const send = (event: string, data: string) => res.write(`event: ${event}\ndata: ${data}\n\n`);
      send("hello", JSON.stringify({ job: id, from: next }));
      while (!closed) {
        const lines = await services.redis.lrange(keys.records, next, next + 199);
        for (const line of lines) send("record", line);
        next += lines.length;
        if (lines.length > 0) continue;
        const result = await services.redis.get(resultKey(id));
        // The result is stored before the log is sealed and closed; the queue hears the job is done only after
        // (process-job.ts), so only then is every record in Redis. A result whose job runs again (a retry) is not
        // an end either.
        const job = result ? await services.queue.getJob(id) : undefined;
        const state = job ? await job.getState() : "missing";
        if (
          result &&
          (state === "completed" || state === "failed" || state === "missing" || state === "unknown")
        ) {
          // Records appended after the result (lock release) are read once more before ending.
          const tail = await services.redis.lrange(keys.records, next, -1);
          for (const line of tail) send("record", line);
          send("end", result);
          break;
        }
        await new Promise((r) => setTimeout(r, 250));
      }
      res.end();
    },
  );
}
