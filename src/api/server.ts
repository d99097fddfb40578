// The daemon's HTTP API (fastify over HTTPS): every route names the operation it performs (src/identity/roles.ts);
// the request's principal is authenticated first (OIDC bearer or API token, src/identity/authenticate.ts), then the
// operation is allowed or refused (403) by its roles. Request and response shapes are zod schemas (the ones the CLI
// validates with), which also produce the OpenAPI document at /openapi.json (public: it holds no data).
// Bound to 127.0.0.1 unless configured; /healthz and /metrics stay on the daemon's separate local HTTP port.
//
// Same origin and same authentication serve the console (issue 16): a page calls these routes with the same bearer
// token (the live event stream is read with fetch(), which, unlike EventSource, can send the Authorization header).
import swagger from "@fastify/swagger";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import {
  hasZodFastifySchemaValidationErrors,
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from "fastify-type-provider-zod";
import { redact } from "../config/secret.ts";
import type { Authenticator } from "../identity/authenticate.ts";
import type { Principal } from "../identity/principal.ts";
import { mayPerform, type Operation } from "../identity/roles.ts";
import { ApiError, schemaRefusal } from "./errors.ts";
import type { OpServices } from "./ops/context.ts";
import type { ApiTls } from "./tls.ts";

export { ApiError };

declare module "fastify" {
  interface FastifyRequest {
    principal?: Principal;
  }
  interface FastifyContextConfig {
    /** The operation this route performs; routes without one are public (only /openapi.json). */
    operation?: Operation;
  }
}

/** What the routes work with (the operations' services); the daemon hands in its own. */
export type ApiServices = OpServices;

export interface ApiRouteContext {
  services: ApiServices;
}

export type ApiApp = FastifyInstance<
  import("node:https").Server,
  import("node:http").IncomingMessage,
  import("node:http").ServerResponse,
  import("fastify").FastifyBaseLogger,
  ZodTypeProvider
>;

export interface StartApiOptions {
  services: ApiServices;
  authenticator: Authenticator;
  tls: ApiTls;
  host?: string;
  port: number;
  /** Route modules (routes/*.ts); each registers its routes on the app. */
  routes: ((app: ApiApp, ctx: ApiRouteContext) => void)[];
  log?: { warn(o: object, m: string): void; info(o: object, m: string): void };
}

export interface ApiServer {
  app: ApiApp;
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function startApiServer(opts: StartApiOptions): Promise<ApiServer> {
  const app = Fastify({
    https: { cert: opts.tls.cert, key: opts.tls.key },
    logger: false,
    bodyLimit: 1_048_576,
  }).withTypeProvider<ZodTypeProvider>() as unknown as ApiApp;
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  await app.register(swagger, {
    openapi: {
      info: {
        title: "lunafleet API",
        version: "1",
        description:
          "Operate a fleet of Thales Luna 7 HSMs: jobs, approvals (signed), login guard, evidence. Bearer auth: OIDC token or lunafleet API token.",
      },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
  });

  app.addHook("onRequest", async (req: FastifyRequest, reply: FastifyReply) => {
    const op = req.routeOptions.config?.operation;
    if (!op) return;
    const result = await opts.authenticator.authenticate(req.headers.authorization, req.ip);
    if (!result.ok) {
      if (result.status === 429 && result.retryAfterSeconds)
        reply.header("retry-after", result.retryAfterSeconds);
      reply.header("www-authenticate", 'Bearer realm="lunafleet"');
      return reply.code(result.status).send({ error: result.reason });
    }
    if (!mayPerform(result.principal.roles, op))
      return reply.code(403).send({
        error: `${result.principal.name} (roles: ${result.principal.roles.join(", ") || "none"}) may not ${op}`,
      });
    req.principal = result.principal;
  });

  app.setErrorHandler((err: Error & { statusCode?: number }, _req, reply) => {
    if (hasZodFastifySchemaValidationErrors(err)) {
      const issues = err.validation.map((v) => ({
        path: v.instancePath || "/",
        message: v.message ?? "invalid",
      }));
      return reply.code(400).send({ error: schemaRefusal(issues), issues });
    }
    if (err instanceof ApiError)
      return reply.code(err.statusCode).send({ error: redact(err.message), ...(err.details ?? {}) });
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) opts.log?.warn({ error: redact(err.message) }, "api: request failed");
    return reply.code(status).send({ error: redact(err.message) });
  });

  app.get("/openapi.json", { schema: { hide: true } }, async () => app.swagger());
  const ctx: ApiRouteContext = { services: opts.services };
  for (const register of opts.routes) register(app, ctx);

  await app.listen({ host: opts.host ?? "127.0.0.1", port: opts.port });
  const address = app.server.address();
  const port = typeof address === "object" && address ? address.port : opts.port;
  const host = opts.host ?? "127.0.0.1";
  return {
    app,
    port,
    url: `https://${host.includes(":") ? `[${host}]` : host}:${port}`,
    close: () => app.close(),
  };
}

/** The principal of an authenticated route (the hook ran; a route without one is a programming error). */
export function principalOf(req: FastifyRequest): Principal {
  if (!req.principal) throw new ApiError(500, "route has no authenticated principal");
  return req.principal;
}
