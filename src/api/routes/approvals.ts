// Job approvals over the API (the operations themselves: ../ops/approvals.ts): what waits, one request with the
// statement to sign and its plan, approve (a signature by a registered key; anything else refused and recorded),
// reject.
import { z } from "zod";
import { isValidJobId } from "../../evidence/record.ts";
import {
  approvalBodySchema,
  approveOp,
  getApprovalOp,
  listApprovalsOp,
  rejectBodySchema,
  rejectOp,
} from "../ops/approvals.ts";
import { type ApiApp, type ApiRouteContext, principalOf } from "../server.ts";

const jobIdParam = z.object({ id: z.string().refine(isValidJobId, "not a job id") });

export function registerApprovalRoutes(app: ApiApp, { services }: ApiRouteContext): void {
  const op = (req: Parameters<typeof principalOf>[0]) => ({ services, principal: principalOf(req) });

  app.get(
    "/v1/approvals",
    { config: { operation: "approvals.read" }, schema: { tags: ["approvals"] } },
    async (req) => listApprovalsOp(op(req)),
  );

  app.get(
    "/v1/approvals/:id",
    { config: { operation: "approvals.read" }, schema: { params: jobIdParam, tags: ["approvals"] } },
    async (req) => getApprovalOp(op(req), req.params.id),
  );

  app.post(
    "/v1/approvals/:id/approve",
    {
      config: { operation: "approvals.decide" },
      schema: { params: jobIdParam, body: approvalBodySchema, tags: ["approvals"] },
    },
    async (req) => approveOp(op(req), req.params.id, req.body),
  );

  app.post(
    "/v1/approvals/:id/reject",
    {
      config: { operation: "approvals.decide" },
      schema: { params: jobIdParam, body: rejectBodySchema, tags: ["approvals"] },
    },
    async (req) => rejectOp(op(req), req.params.id, req.body),
  );
}
