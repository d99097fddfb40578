// Guard releases over the API (the operations themselves: ../ops/guard.ts): the ledger, a release request (done at
// once, or waiting for a second signed approval), a request's state, and its approval.
import { z } from "zod";
import { approvalBodySchema } from "../ops/approvals.ts";
import {
  approveGuardReleaseOp,
  getGuardReleaseOp,
  guardReleaseBodySchema,
  guardReleaseOp,
  guardStatusOp,
  RELEASE_REQUEST_ID,
} from "../ops/guard.ts";
import { type ApiApp, type ApiRouteContext, principalOf } from "../server.ts";

const requestId = z.object({ id: z.string().regex(RELEASE_REQUEST_ID, "a release request id") });

export function registerGuardRoutes(app: ApiApp, { services }: ApiRouteContext): void {
  const op = (req: Parameters<typeof principalOf>[0]) => ({ services, principal: principalOf(req) });

  app.get("/v1/guard", { config: { operation: "guard.read" }, schema: { tags: ["guard"] } }, async (req) =>
    guardStatusOp(op(req)),
  );

  app.post(
    "/v1/guard/release",
    { config: { operation: "guard.release" }, schema: { body: guardReleaseBodySchema, tags: ["guard"] } },
    async (req, reply) => {
      const decision = await guardReleaseOp(op(req), req.body);
      return reply.code(decision.kind === "released" ? 200 : 202).send(decision);
    },
  );

  app.get(
    "/v1/guard/releases/:id",
    { config: { operation: "guard.read" }, schema: { params: requestId, tags: ["guard"] } },
    async (req) => getGuardReleaseOp(op(req), req.params.id),
  );

  app.post(
    "/v1/guard/releases/:id/approve",
    {
      config: { operation: "approvals.decide" },
      schema: { params: requestId, body: approvalBodySchema, tags: ["guard"] },
    },
    async (req) => approveGuardReleaseOp(op(req), req.params.id, req.body),
  );
}
