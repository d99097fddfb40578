// The fleet over the API (the operations themselves: ../ops/fleet.ts): who am I, the fleet, the report, HA breakers,
// schedules, API tokens.
import { z } from "zod";
import {
  breakersOp,
  createTokenBodySchema,
  createTokenOp,
  fleetOp,
  listTokensOp,
  releaseBreakerBodySchema,
  releaseBreakerOp,
  reportOp,
  revokeTokenOp,
  schedulesOp,
  whoamiOp,
} from "../ops/fleet.ts";
import { type ApiApp, type ApiRouteContext, principalOf } from "../server.ts";

export function registerFleetRoutes(app: ApiApp, { services }: ApiRouteContext): void {
  const op = (req: Parameters<typeof principalOf>[0]) => ({ services, principal: principalOf(req) });

  app.get(
    "/v1/whoami",
    { config: { operation: "fleet.read" }, schema: { tags: ["identity"] } },
    async (req) => whoamiOp(op(req)),
  );

  app.get("/v1/fleet", { config: { operation: "fleet.read" }, schema: { tags: ["fleet"] } }, async (req) =>
    fleetOp(op(req)),
  );

  app.get(
    "/v1/report",
    {
      config: { operation: "fleet.read" },
      schema: {
        querystring: z.object({
          device: z.string().min(1).optional(),
          staleAfterMs: z.coerce.number().int().min(1).optional(),
        }),
        tags: ["fleet"],
      },
    },
    async (req) => reportOp(op(req), req.query),
  );

  app.get("/v1/ha/breakers", { config: { operation: "ha.read" }, schema: { tags: ["ha"] } }, async (req) =>
    breakersOp(op(req)),
  );

  app.post(
    "/v1/ha/breakers/release",
    { config: { operation: "ha.release-breaker" }, schema: { body: releaseBreakerBodySchema, tags: ["ha"] } },
    async (req) => releaseBreakerOp(op(req), req.body),
  );

  app.get(
    "/v1/schedules",
    { config: { operation: "schedules.read" }, schema: { tags: ["schedules"] } },
    async (req) => schedulesOp(op(req)),
  );

  app.get(
    "/v1/tokens",
    { config: { operation: "tokens.manage" }, schema: { tags: ["identity"] } },
    async (req) => listTokensOp(op(req)),
  );

  app.post(
    "/v1/tokens",
    { config: { operation: "tokens.manage" }, schema: { body: createTokenBodySchema, tags: ["identity"] } },
    async (req, reply) =>
      reply
        .code(201)
        .header("cache-control", "no-store")
        .send(await createTokenOp(op(req), req.body)),
  );

  app.delete(
    "/v1/tokens/:name",
    {
      config: { operation: "tokens.manage" },
      schema: { params: z.object({ name: z.string().min(1) }), tags: ["identity"] },
    },
    async (req) => revokeTokenOp(op(req), req.params.name),
  );
}
