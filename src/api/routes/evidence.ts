// Evidence over the API (the operations themselves: ../ops/evidence.ts): verify one log or all, export records since
// a time as JSON lines (application/x-ndjson), and the daemon's published signing keys.
import { z } from "zod";
import { isValidJobId } from "../../evidence/record.ts";
import { evidenceKeysOp, exportEvidenceOp, verifyAllEvidenceOp, verifyEvidenceOp } from "../ops/evidence.ts";
import { type ApiApp, type ApiRouteContext, principalOf } from "../server.ts";

export function registerEvidenceRoutes(app: ApiApp, { services }: ApiRouteContext): void {
  const op = (req: Parameters<typeof principalOf>[0]) => ({ services, principal: principalOf(req) });

  app.get(
    "/v1/evidence/keys",
    { config: { operation: "evidence.read" }, schema: { tags: ["evidence"] } },
    async (req) => evidenceKeysOp(op(req)),
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
    async (req) => verifyEvidenceOp(op(req), req.params.id),
  );

  app.get(
    "/v1/evidence/verify-all",
    { config: { operation: "evidence.read" }, schema: { tags: ["evidence"] } },
    async (req) => verifyAllEvidenceOp(op(req)),
  );

  app.get(
    "/v1/evidence/export",
    {
      config: { operation: "evidence.read" },
      schema: { querystring: z.object({ since: z.iso.datetime({ offset: true }) }), tags: ["evidence"] },
    },
    async (req, reply) => {
      const { lines, problems } = exportEvidenceOp(op(req), new Date(req.query.since));
      reply.header("x-lunafleet-evidence-records", String(lines.length));
      if (problems.length > 0) {
        reply.header("x-lunafleet-evidence-problems", String(problems.length));
        // Which logs, and why (log ids and verification details hold no secret): the CLI prints them as locally.
        reply.header("x-lunafleet-evidence-problem-detail", encodeURIComponent(JSON.stringify(problems)));
      }
      return reply.type("application/x-ndjson").send(lines.map((l) => `${l}\n`).join(""));
    },
  );
}
