// Security keys and passkeys of approvers over the API (the operations themselves: ../ops/webauthn.ts): begin a
// registration, finish it with the browser's attestation, complete it with the owner's SSH signature; list; revoke.
import { z } from "zod";
import {
  completeRegistrationBodySchema,
  completeRegistrationOp,
  finishRegistrationBodySchema,
  finishRegistrationOp,
  listCredentialsOp,
  registrationOptionsOp,
  revokeCredentialOp,
} from "../ops/webauthn.ts";
import { type ApiApp, type ApiRouteContext, principalOf } from "../server.ts";

const credentialId = z.object({
  id: z.string().regex(/^[A-Za-z0-9_-]{16,1400}$/, "a credential id (base64url)"),
});
const pendingId = z.object({ id: z.string().regex(/^[A-Za-z0-9_-]{16}$/, "a pending registration id") });

export function registerWebAuthnRoutes(app: ApiApp, { services }: ApiRouteContext): void {
  const op = (req: Parameters<typeof principalOf>[0]) => ({ services, principal: principalOf(req) });
  const tags = ["webauthn"];

  app.post(
    "/v1/webauthn/registrations/options",
    { config: { operation: "credentials.register" }, schema: { tags } },
    async (req) => registrationOptionsOp(op(req)),
  );

  app.post(
    "/v1/webauthn/registrations",
    {
      config: { operation: "credentials.register" },
      schema: { body: finishRegistrationBodySchema, tags },
    },
    async (req, reply) => reply.code(201).send(await finishRegistrationOp(op(req), req.body)),
  );

  app.post(
    "/v1/webauthn/registrations/:id/complete",
    {
      config: { operation: "credentials.register" },
      schema: { params: pendingId, body: completeRegistrationBodySchema, tags },
    },
    async (req, reply) =>
      reply.code(201).send(await completeRegistrationOp(op(req), req.params.id, req.body)),
  );

  app.get(
    "/v1/webauthn/credentials",
    { config: { operation: "credentials.register" }, schema: { tags } },
    async (req) => listCredentialsOp(op(req)),
  );

  app.get(
    "/v1/webauthn/credentials/all",
    { config: { operation: "credentials.manage" }, schema: { tags } },
    async (req) => listCredentialsOp(op(req), { all: true }),
  );

  app.delete(
    "/v1/webauthn/credentials/:id",
    { config: { operation: "credentials.register" }, schema: { params: credentialId, tags } },
    async (req) => revokeCredentialOp(op(req), req.params.id),
  );
}
