// Jobs over the API: submit (validated by the runbook's own zod parameters, refused with path and reason, nothing
// enqueued), list, get, cancel (attributed to who cancelled, recorded in the job's evidence), plan (without
// connecting), and a live event stream of the job's evidence records (server-sent events) until it finishes.
import { z } from "zod";
import { getRunbook } from "../../../runbooks/index.ts";
import { admitJob } from "../../engine/admit.ts";
import { describeAdmitted } from "../../engine/plan.ts";
import { EvidenceLog, evidenceKeys } from "../../evidence/log.ts";
import { isValidJobId } from "../../evidence/record.ts";
import { cancelJob, JobSubmitError, resultKey, submitJob } from "../../queue/jobs.ts";
import { JOB_STATES, jobDetail, listJobs } from "../queries.ts";
import { type ApiApp, ApiError, type ApiRouteContext, principalOf } from "../server.ts";

export const jobRequestSchema = z
  .object({
    runbook: z.string().min(1),
    target: z.string().min(1).optional(),
    params: z.record(z.string(), z.unknown()).default({}),
  })
  .strict();

const jobIdParam = z.object({ id: z.string().refine(isValidJobId, "not a job id") });

export function registerJobRoutes(app: ApiApp, { services }: ApiRouteContext): void {
  app.post(
    "/v1/plan",
    { config: { operation: "plan" }, schema: { body: jobRequestSchema, tags: ["jobs"] } },
    async (req) => {
      try {
        const params = { ...req.body.params, ...(req.body.target ? { target: req.body.target } : {}) };
        const admitted = admitJob(getRunbook(req.body.runbook), params, services.fleet);
        return { plan: describeAdmitted(admitted), planDigest: admitted.planDigest };
      } catch (err) {
        throw new ApiError(400, (err as Error).message);
      }
    },
  );

  app.post(
    "/v1/jobs",
    { config: { operation: "jobs.submit" }, schema: { body: jobRequestSchema, tags: ["jobs"] } },
    async (req, reply) => {
      try {
        const submitted = await submitJob(services.queue, {
          fleet: services.fleet,
          runbook: req.body.runbook,
          ...(req.body.target ? { target: req.body.target } : {}),
          params: req.body.params,
          actor: principalOf(req).name,
        });
        return reply.code(201).send(submitted);
      } catch (err) {
        if (err instanceof JobSubmitError) throw new ApiError(400, err.message, { refusal: err.reason });
        throw err;
      }
    },
  );

  app.get(
    "/v1/jobs",
    {
      config: { operation: "jobs.read" },
      schema: {
        querystring: z.object({
          state: z.enum(JOB_STATES).optional(),
          limit: z.coerce.number().int().min(1).max(1000).default(50),
        }),
        tags: ["jobs"],
      },
    },
    async (req) => listJobs(services.queue, { state: req.query.state, limit: req.query.limit }),
  );

  app.get(
    "/v1/jobs/:id",
    { config: { operation: "jobs.read" }, schema: { params: jobIdParam, tags: ["jobs"] } },
    async (req) => {
      const detail = await jobDetail(services.queue, services.redis, services.dataDir, req.params.id);
      if (!detail) throw new ApiError(404, `no such job '${req.params.id}'`);
      return detail;
    },
  );

  app.post(
    "/v1/jobs/:id/cancel",
    { config: { operation: "jobs.cancel" }, schema: { params: jobIdParam, tags: ["jobs"] } },
    async (req) => {
      const by = principalOf(req).name;
      const outcome = await cancelJob(services.queue, services.redis, req.params.id, by);
      if (outcome === "unknown") throw new ApiError(404, `no such job '${req.params.id}'`);
      if (outcome !== "finished") {
        const log = await EvidenceLog.open(services.redis, services.dataDir, req.params.id);
        await log.append("note", { event: "cancel-requested", outcome }, by);
      }
      return { id: req.params.id, outcome, by };
    },
  );

  // Server-sent events: every evidence record of the job as it is appended (steps starting and ending, commands,
  // parsed answers, all already redacted), then `end` with the job's result once it has one.
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
        if (result) {
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
