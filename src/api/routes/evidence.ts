// Evidence over the API: verify one log (chain, Redis and file agree, the daemon's signatures; a finished job's log
// must end with one), verify every log, export records since a time as JSON lines (application/x-ndjson), and the
// daemon's published signing keys (what an auditor verifies a copied file with).
import { z } from "zod";
import { exportEvidence, verifyAllEvidence, verifySignedJobEvidence } from "../../evidence/audit.ts";
import { isValidJobId } from "../../evidence/record.ts";
import { SIGNING_KEYS_KEY, trustedKeys } from "../../evidence/signing.ts";
import { resultKey } from "../../queue/jobs.ts";
import { type ApiApp, ApiError, type ApiRouteContext } from "../server.ts";

export function registerEvidenceRoutes(app: ApiApp, { services }: ApiRouteContext): void {
  const keys = async () => trustedKeys(Object.values(await services.redis.hgetall(SIGNING_KEYS_KEY)));

  app.get(
    "/v1/evidence/keys",
    { config: { operation: "evidence.read" }, schema: { tags: ["evidence"] } },
    async () => services.redis.hgetall(SIGNING_KEYS_KEY),
  );

  app.get(
    "/v1/evidence/:id/verify",
    {
      config: { operation: "evidence.read" },
      schema: {
        params: z.object({ id: z.string().refine(isValidJobId, "not a log id") }),
        tags: ["evidence"],
      },
    },
    async (req) => {
      const id = req.params.id;
      // A job still running (no result yet) may not be sealed yet; anything else must be.
      const running =
        (await services.queue.getJob(id)) !== undefined && !(await services.redis.get(resultKey(id)));
      const result = await verifySignedJobEvidence(services.redis, services.dataDir, id, await keys(), {
        requireSealed: !running,
      });
      if (result.ok && result.count === 0) throw new ApiError(404, `no evidence recorded for '${id}'`);
      return { log: id, ...result };
    },
  );

  app.get(
    "/v1/evidence/verify-all",
    { config: { operation: "evidence.read" }, schema: { tags: ["evidence"] } },
    async () => {
      const results = await verifyAllEvidence(services.dataDir, await keys(), services.redis);
      return {
        ok: results.every((r) => r.result.ok),
        logs: results.map((r) => ({ log: r.log, ...r.result })),
      };
    },
  );

  app.get(
    "/v1/evidence/export",
    {
      config: { operation: "evidence.read" },
      schema: { querystring: z.object({ since: z.iso.datetime({ offset: true }) }), tags: ["evidence"] },
    },
    async (req, reply) => {
      const { lines, problems } = exportEvidence(services.dataDir, new Date(req.query.since));
      if (problems.length > 0) reply.header("x-lunafleet-evidence-problems", String(problems.length));
      return reply.type("application/x-ndjson").send(lines.map((l) => `${l}\n`).join(""));
    },
  );
}
