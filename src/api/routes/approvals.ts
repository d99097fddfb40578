// Job approvals over the API: what waits (with the exact statement an approver signs and the plan it names), approve
// with a signature by a registered key (verified before it counts; refusals recorded in the request and the job's
// evidence), reject (an approver's decision: the job stops before anything destructive). Every record names the
// authenticated principal who submitted it; a signed approval counts for the key's registered principal.
import { z } from "zod";
import { getRunbook } from "../../../runbooks/index.ts";
import {
  ApprovalRefused,
  approvalState,
  approvalStatement,
  approve,
  listWaitingApprovals,
  NoApprovalRequest,
  reject,
} from "../../coord/approvals.ts";
import { signableStatement, sshApprovalVerifier } from "../../coord/signed-approvals.ts";
import { admitJob } from "../../engine/admit.ts";
import { describeAdmitted } from "../../engine/plan.ts";
import { EvidenceLog } from "../../evidence/log.ts";
import { isValidJobId } from "../../evidence/record.ts";
import { sealEvidence } from "../../evidence/signing.ts";
import { type ApiApp, ApiError, type ApiRouteContext, principalOf } from "../server.ts";
import { signedApprovalBody } from "./guard.ts";

const jobIdParam = z.object({ id: z.string().refine(isValidJobId, "not a job id") });

export function registerApprovalRoutes(app: ApiApp, { services }: ApiRouteContext): void {
  const load = async (id: string) => {
    const state = await approvalState(services.redis, id);
    if (!state) throw new ApiError(404, `job ${id} has no approval request`);
    return state;
  };
  const refusal = (err: unknown): never => {
    if (err instanceof ApprovalRefused)
      throw new ApiError(409, err.message, { refused: err.reason, state: err.state });
    if (err instanceof NoApprovalRequest) throw new ApiError(404, err.message);
    throw err;
  };

  app.get(
    "/v1/approvals",
    { config: { operation: "approvals.read" }, schema: { tags: ["approvals"] } },
    async () => listWaitingApprovals(services.redis),
  );

  app.get(
    "/v1/approvals/:id",
    { config: { operation: "approvals.read" }, schema: { params: jobIdParam, tags: ["approvals"] } },
    async (req) => {
      const state = await load(req.params.id);
      let statement: string | null = null;
      try {
        statement = signableStatement(approvalStatement(state));
      } catch {
        statement = null;
      }
      // The plan the statement's digest names, recomputed from this daemon's fleet, so an approver can read it.
      let plan: unknown = null;
      const job = await services.queue.getJob(req.params.id);
      if (job)
        try {
          plan = describeAdmitted(admitJob(getRunbook(job.data.runbook), job.data.params, services.fleet));
        } catch {
          plan = null;
        }
      return { state, statement, plan };
    },
  );

  app.post(
    "/v1/approvals/:id/approve",
    {
      config: { operation: "approvals.decide" },
      schema: { params: jobIdParam, body: signedApprovalBody, tags: ["approvals"] },
    },
    async (req) => {
      const state = await load(req.params.id);
      const evidence = await EvidenceLog.open(services.redis, services.dataDir, req.params.id);
      try {
        return await approve(
          services.redis,
          req.params.id,
          {
            principal: req.body.principal,
            confirmation: state.serial,
            proof: {
              method: "sshsig",
              keyFingerprint: req.body.keyFingerprint,
              statement: req.body.statement,
              signature: req.body.signature,
              submittedBy: principalOf(req).name,
            },
          },
          { evidence, verifier: sshApprovalVerifier(services.fleet) },
        );
      } catch (err) {
        return refusal(err);
      } finally {
        await sealEvidence(evidence, services.evidenceSigner).catch(() => {});
      }
    },
  );

  app.post(
    "/v1/approvals/:id/reject",
    {
      config: { operation: "approvals.decide" },
      schema: {
        params: jobIdParam,
        body: z.object({ reason: z.string().trim().min(1).max(2000) }).strict(),
        tags: ["approvals"],
      },
    },
    async (req) => {
      await load(req.params.id);
      const evidence = await EvidenceLog.open(services.redis, services.dataDir, req.params.id);
      try {
        return await reject(
          services.redis,
          req.params.id,
          { principal: principalOf(req).name, reason: req.body.reason },
          { evidence },
        );
      } catch (err) {
        return refusal(err);
      } finally {
        await sealEvidence(evidence, services.evidenceSigner).catch(() => {});
      }
    },
  );
}
