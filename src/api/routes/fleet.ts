// Reading the fleet over the API: who am I, the fleet (without credentials), the report, the guard's ledger, HA
// breakers (and releasing one, attributed and recorded), the maintenance-window schedules; API tokens (admin).
import { z } from "zod";
import { releaseBreaker } from "../../../runbooks/lib/breaker.ts";
import { ROLES } from "../../config/identity-schema.ts";
import { RedisStateStore } from "../../engine/state.ts";
import { EvidenceLog } from "../../evidence/log.ts";
import { guardStatus } from "../../guard/release.ts";
import { operationsOf } from "../../identity/roles.ts";
import { createToken, listTokens, parseExpiry, revokeToken, TokenError } from "../../identity/tokens.ts";
import { publicFleet } from "../../queue/jobs.ts";
import { findWindow, listSchedules, windowState } from "../../queue/schedules.ts";
import { listBreakers } from "../queries.ts";
import { type ApiApp, ApiError, type ApiRouteContext, principalOf } from "../server.ts";

export function registerFleetRoutes(app: ApiApp, { services }: ApiRouteContext): void {
  app.get(
    "/v1/whoami",
    { config: { operation: "fleet.read" }, schema: { tags: ["identity"] } },
    async (req) => {
      const p = principalOf(req);
      return { ...p, operations: operationsOf(p.roles) };
    },
  );

  app.get("/v1/fleet", { config: { operation: "fleet.read" }, schema: { tags: ["fleet"] } }, async () =>
    publicFleet(services.fleet),
  );

  app.get("/v1/report", { config: { operation: "fleet.read" }, schema: { tags: ["fleet"] } }, async () =>
    services.report(),
  );

  app.get("/v1/guard", { config: { operation: "guard.read" }, schema: { tags: ["guard"] } }, async () =>
    guardStatus(services.redis),
  );

  app.get("/v1/ha/breakers", { config: { operation: "ha.read" }, schema: { tags: ["ha"] } }, async () =>
    listBreakers(services.redis),
  );

  app.post(
    "/v1/ha/breakers/release",
    {
      config: { operation: "ha.release-breaker" },
      schema: {
        body: z
          .object({
            group: z.string().min(1),
            member: z.string().regex(/^[^/\s]+\/[^/\s]+$/, "member is <device>/<partition>"),
            reason: z.string().trim().min(1).max(2000).default("released by operator"),
          })
          .strict(),
        tags: ["ha"],
      },
    },
    async (req) => {
      const by = principalOf(req).name;
      const { group, member, reason } = req.body;
      const cleared = await releaseBreaker(new RedisStateStore(services.redis), group, member);
      if (cleared === 0)
        throw new ApiError(
          409,
          `nothing to release: no failed recoveries recorded for ${member} in ${group}`,
        );
      const evidenceJobId = `ha-breaker:${group}:${member.replace("/", "_")}:${Date.now()}`;
      const log = await EvidenceLog.open(services.redis, services.dataDir, evidenceJobId);
      await log.append(
        "note",
        { event: "ha-breaker-released", group, member, failures: cleared, reason },
        by,
      );
      return { group, member, cleared, evidenceJobId, by };
    },
  );

  app.get(
    "/v1/schedules",
    { config: { operation: "schedules.read" }, schema: { tags: ["schedules"] } },
    async () =>
      (await listSchedules(services.queue)).map((s) => {
        const window = s.window ? findWindow(services.fleet, s.window) : undefined;
        return {
          ...s,
          ...(s.next ? { next: s.next.toISOString() } : {}),
          ...(window ? { durationMinutes: window.durationMinutes, open: windowState(window).open } : {}),
        };
      }),
  );

  app.get(
    "/v1/tokens",
    { config: { operation: "tokens.manage" }, schema: { tags: ["identity"] } },
    async () => listTokens(services.redis),
  );

  app.post(
    "/v1/tokens",
    {
      config: { operation: "tokens.manage" },
      schema: {
        body: z.object({ name: z.string().min(1), role: z.enum(ROLES), expires: z.string().min(1) }).strict(),
        tags: ["identity"],
      },
    },
    async (req, reply) => {
      try {
        const created = await createToken(services.redis, {
          name: req.body.name,
          role: req.body.role,
          expiresAt: parseExpiry(req.body.expires),
          createdBy: principalOf(req).name,
        });
        // The only time the token is ever shown.
        return reply.code(201).header("cache-control", "no-store").send(created);
      } catch (err) {
        if (err instanceof TokenError) throw new ApiError(400, err.message);
        throw err;
      }
    },
  );

  app.delete(
    "/v1/tokens/:name",
    {
      config: { operation: "tokens.manage" },
      schema: { params: z.object({ name: z.string().min(1) }), tags: ["identity"] },
    },
    async (req) => {
      const revoked = await revokeToken(services.redis, req.params.name, principalOf(req).name);
      if (revoked === 0) throw new ApiError(404, `no active token '${req.params.name}'`);
      return { name: req.params.name, revoked };
    },
  );
}
