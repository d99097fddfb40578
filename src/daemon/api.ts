// The daemon's part in serving the API: its certificate (given, or generated into the data dir), the authenticator
// over its Redis and fleet identity, the routes, and the report (built here, above the API layer).
import { registerApprovalRoutes } from "../api/routes/approvals.ts";
import { registerEvidenceRoutes } from "../api/routes/evidence.ts";
import { registerFleetRoutes } from "../api/routes/fleet.ts";
import { registerGuardRoutes } from "../api/routes/guard.ts";
import { registerJobRoutes } from "../api/routes/jobs.ts";
import { registerWebAuthnRoutes } from "../api/routes/webauthn.ts";
import { type ApiServer, type ApiServices, startApiServer } from "../api/server.ts";
import { loadOrCreateApiTls } from "../api/tls.ts";
import { registerConsoleRoutes } from "../console/routes.ts";
import { Authenticator } from "../identity/authenticate.ts";
import type { DaemonLogger } from "./logger.ts";
import { reportService } from "./report-service.ts";

export interface DaemonApiOptions {
  /** 0 = any free port. */
  port: number;
  /** Default 127.0.0.1: the API listens on the network only when configured to. */
  host?: string;
  /** A certificate and key to serve instead of the data dir's generated one. */
  certFile?: string;
  keyFile?: string;
  /** The clock for token expiry (tests). */
  now?: () => Date;
}

export async function startDaemonApi(
  services: Omit<ApiServices, "report">,
  opts: DaemonApiOptions,
  log: DaemonLogger,
): Promise<ApiServer & { certFingerprint: string; certSource: string }> {
  const host = opts.host ?? "127.0.0.1";
  const tls = await loadOrCreateApiTls(
    services.dataDir,
    opts.certFile && opts.keyFile ? { certFile: opts.certFile, keyFile: opts.keyFile } : undefined,
    host === "127.0.0.1" || host === "::1" ? [] : [host],
  );
  const authenticator = new Authenticator({
    redis: services.redis,
    identity: services.fleet.identity,
    dataDir: services.dataDir,
    ...(opts.now ? { now: opts.now } : {}),
    onRecordError: (err) => log.warn({ error: err.message }, "api: could not record a failed authentication"),
    signer: services.evidenceSigner,
  });
  const server = await startApiServer({
    services: { ...services, report: (o) => reportService(services.redis, services.fleet, o) },
    authenticator,
    tls,
    host,
    port: opts.port,
    routes: [
      registerFleetRoutes,
      registerJobRoutes,
      registerApprovalRoutes,
      registerGuardRoutes,
      registerEvidenceRoutes,
      registerWebAuthnRoutes,
      registerConsoleRoutes,
    ],
    log,
  });
  return { ...server, certFingerprint: tls.fingerprint256, certSource: tls.source };
}
