// Guard releases over the API (src/guard/release-rules.ts): a guard-admin asks; HSM SO, Partition SO and
// permanent-lockout Crypto Officer releases wait for a second principal's signed approval (POST …/approve), others
// are released at once. Each step is recorded as evidence naming the authenticated principal.
import { z } from "zod";
import { ReleaseRefused } from "../../guard/release.ts";
import {
  approveGuardRelease,
  getGuardReleaseRequest,
  requestGuardRelease,
} from "../../guard/release-rules.ts";
import { GUARD_ROLES } from "../../guard/roles.ts";
import { type ApiApp, ApiError, type ApiRouteContext, principalOf } from "../server.ts";

export const signedApprovalBody = z
  .object({
    /** The principal whose registered key signed. */
    principal: z.string().min(1),
    keyFingerprint: z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}$/, "an SSH SHA256 fingerprint"),
    /** `ssh-keygen -Y sign -n lunafleet-approval` output over the statement, armored. */
    signature: z.string().min(1).max(20_000),
    /** The statement that was signed (checked byte for byte against the one the server expects). */
    statement: z.string().min(1).max(4_000),
  })
  .strict();

const requestId = z.object({
  id: z.string().regex(/^guard-release-[a-z0-9]+-[0-9a-f]{6}$/, "a release request id"),
});

export function registerGuardRoutes(app: ApiApp, { services }: ApiRouteContext): void {
  app.post(
    "/v1/guard/release",
    {
      config: { operation: "guard.release" },
      schema: {
        body: z
          .object({
            device: z.string().min(1),
            role: z.enum(GUARD_ROLES as unknown as [string, ...string[]]),
            partition: z.string().min(1).optional(),
            reason: z.string().trim().min(1).max(2000),
          })
          .strict(),
        tags: ["guard"],
      },
    },
    async (req, reply) => {
      try {
        const decision = await requestGuardRelease(
          services.redis,
          services.dataDir,
          services.fleet,
          {
            ...req.body,
            role: req.body.role as (typeof GUARD_ROLES)[number],
            principal: principalOf(req).name,
          },
          services.evidenceSigner,
        );
        return reply.code(decision.kind === "released" ? 200 : 202).send(decision);
      } catch (err) {
        if (err instanceof ReleaseRefused) throw new ApiError(409, err.message);
        throw err;
      }
    },
  );

  app.get(
    "/v1/guard/releases/:id",
    { config: { operation: "guard.read" }, schema: { params: requestId, tags: ["guard"] } },
    async (req) => {
      const r = await getGuardReleaseRequest(services.redis, req.params.id);
      if (!r) throw new ApiError(404, `no guard release request '${req.params.id}'`);
      return r;
    },
  );

  app.post(
    "/v1/guard/releases/:id/approve",
    {
      config: { operation: "approvals.decide" },
      schema: { params: requestId, body: signedApprovalBody, tags: ["guard"] },
    },
    async (req) => {
      try {
        const result = await approveGuardRelease(
          services.redis,
          services.dataDir,
          services.fleet,
          req.params.id,
          { method: "sshsig", ...req.body, submittedBy: principalOf(req).name },
          services.evidenceSigner,
        );
        return { id: req.params.id, status: "released", evidenceJobId: result.evidenceJobId };
      } catch (err) {
        if (err instanceof ReleaseRefused) throw new ApiError(409, err.message, { refused: true });
        throw err;
      }
    },
  );
}
