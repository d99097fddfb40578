// The web console, served by the daemon on the API's own origin: a few static files (src/console/web: plain ES
// modules, no framework, no build step, nothing from another host) that call the same API routes with the same
// bearer authentication as every other client. The pages hold no data and need no authentication to be fetched; every
// fact on them comes from the API afterwards (GET /v1/report, /v1/jobs, …), so the console computes nothing twice and
// shows a viewer exactly what the API lets a viewer read.
//
// Sign-in: people through the fleet's OIDC provider (authorization code + PKCE, in the browser, as a public client:
// console.oidc), kiosks with an API token. /console/config.json tells the page which (public values only).
import { readdirSync, readFileSync } from "node:fs";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { listRunbooks } from "../../runbooks/index.ts";
import type { ApiApp, ApiRouteContext } from "../api/server.ts";
import type { Fleet } from "../config/schema.ts";
import { relyingPartyOf } from "../signing/webauthn.ts";

/** The console's static files (a symlink into the compiled build, see bin/build.js). */
export const CONSOLE_WEB_DIR = fileURLToPath(new URL("./web/", import.meta.url));

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
};

/** What the page needs before anyone signs in: all public (an SPA's client id and issuer are public by design). */
export interface ConsoleConfig {
  oidc: { issuer: string; clientId: string; scope: string; resource: string | null } | null;
  /** The WebAuthn relying party id, or null when security keys cannot be used (no console.url on a real fleet). */
  webauthn: { rpId: string } | null;
  runbooks: { name: string; description: string }[];
  twin: boolean;
}

export function consoleConfig(fleet: Fleet): ConsoleConfig {
  const oidc = fleet.identity.oidc;
  const client = fleet.console?.oidc;
  const rp = relyingPartyOf(fleet);
  return {
    oidc:
      oidc && client
        ? {
            issuer: oidc.issuer,
            clientId: client.clientId,
            scope: client.scope,
            resource: client.resource ?? null,
          }
        : null,
    webauthn: rp ? { rpId: rp.id } : null,
    runbooks: listRunbooks(),
    twin: fleet.twin,
  };
}

/**
 * The console's Content Security Policy: scripts, styles and data only from this origin; the identity provider is
 * reachable for its discovery document and token endpoint (the browser exchanges the code itself); no frames, no
 * inline script, no plugin, no base-tag tricks.
 */
export function contentSecurityPolicy(fleet: Fleet): string {
  const issuer = fleet.identity.oidc?.issuer;
  const idp = issuer ? ` ${new URL(issuer).origin}` : "";
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    `connect-src 'self'${idp}`,
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join("; ");
}

interface Asset {
  type: string;
  body: Buffer;
}

function loadAssets(dir: string): Map<string, Asset> {
  const out = new Map<string, Asset>();
  for (const name of readdirSync(dir)) {
    const type = TYPES[extname(name)];
    // Only plain file names of known types are served: no directory, no dot file, nothing a path could reach.
    if (!type || !/^[a-z0-9-]+\.[a-z]+$/.test(name)) continue;
    out.set(name, { type, body: readFileSync(join(dir, name)) });
  }
  return out;
}

export function registerConsoleRoutes(app: ApiApp, { services }: ApiRouteContext): void {
  const assets = loadAssets(CONSOLE_WEB_DIR);
  const index = assets.get("index.html");
  if (!index) throw new Error(`console: ${CONSOLE_WEB_DIR}index.html is missing`);
  const csp = contentSecurityPolicy(services.fleet);
  const config = JSON.stringify(consoleConfig(services.fleet));
  const send = (reply: import("fastify").FastifyReply, type: string, body: Buffer | string) =>
    reply
      .header("content-type", type)
      .header("content-security-policy", csp)
      .header("cache-control", "no-cache")
      .header("x-content-type-options", "nosniff")
      .header("x-frame-options", "DENY")
      .header("referrer-policy", "no-referrer")
      .header("cross-origin-opener-policy", "same-origin")
      .send(body);
  const hidden = { schema: { hide: true } };

  app.get("/console", hidden, async (_req, reply) => reply.redirect("/console/", 302));
  // The shell, for the console itself and for the OIDC redirect back to it (the page finishes the code exchange).
  app.get("/console/", hidden, async (_req, reply) => send(reply, index.type, index.body));
  app.get("/console/callback", hidden, async (_req, reply) => send(reply, index.type, index.body));
  app.get("/console/config.json", hidden, async (_req, reply) =>
    send(reply, "application/json; charset=utf-8", config),
  );
  app.get<{ Params: { name: string } }>("/console/:name", hidden, async (req, reply) => {
    const asset = assets.get(req.params.name);
    if (!asset) return reply.code(404).send({ error: "not found" });
    return send(reply, asset.type, asset.body);
  });
}

/** Where a person opens the console: the fleet's console.url, else the API's own URL (localhost on loopback). */
export function consoleUrl(fleet: Fleet, apiUrl: string): string {
  if (fleet.console?.url) return `${fleet.console.url}/console/`;
  const u = new URL(apiUrl);
  // WebAuthn takes a domain as relying party id, never an IP address: on loopback the console is localhost.
  if (u.hostname === "127.0.0.1" || u.hostname === "[::1]") u.hostname = "localhost";
  return `${u.origin}/console/`;
}
