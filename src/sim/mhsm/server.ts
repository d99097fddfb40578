// The Key Vault twin's HTTPS server: one listener, routed by Host name as the real services are by DNS:
//   login.localhost          Microsoft Entra ID (entra.ts)
//   graph.localhost          Microsoft Graph: app registrations' password credentials (read only)
//   <pool>.managedhsm.localhost   a Managed HSM pool's data plane (data-plane.ts)
// Names under `.localhost` are loopback (RFC 6761); clients resolve them so (src/azure key-vault-clients.ts).
//
// Before a data-plane route runs, the pool answers as Managed HSM does, in this order: a request without a bearer
// token gets the Key Vault challenge (401 + WWW-Authenticate naming the tenant's authority and the resource); a bad
// token 401; then the pool's network rules (public network access, IP rules) on the caller's address; then
// activation; then local RBAC in the route. Injected faults (429/5xx/403) come first, as a front end would send them.
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { generateArmTwinTls } from "../arm/tls.ts";
import { defaultCode } from "./arm-routes.ts";
import { dataPlane } from "./data-plane.ts";
import { EntraTwin, type Reply } from "./entra.ts";
import { DAEMON_PRINCIPAL, type KeyVaultTwinModel, type TwinManagedHsm } from "./model.ts";

/** The token the twin's daemon credential sends (src/azure access.ts); see ASSUMPTIONS in index.ts. */
export const TWIN_DAEMON_TOKEN = "lunafleet-twin-placeholder-token";
const DATA_PLANE_RESOURCE = "https://managedhsm.localhost";
const GRAPH_RESOURCE = "https://graph.localhost";

export interface KvRequestLogEntry {
  at: string;
  host: string;
  method: string;
  path: string;
  query: string;
  status: number;
  /** Object id of the authenticated caller, when there was one. */
  principal?: string;
  /** Key Vault `innererror.code` / error code of a refusal. */
  code?: string;
}

export interface KeyVaultDataServer {
  /** `:<port>` for URIs. */
  port: number;
  caPem: string;
  entraBase: string;
  graphBase: string;
  requestLog: KvRequestLogEntry[];
  entra: EntraTwin;
  stop(): Promise<void>;
}

export async function startKeyVaultDataServer(model: KeyVaultTwinModel): Promise<KeyVaultDataServer> {
  const tls = await generateArmTwinTls({
    dns: ["login.localhost", "graph.localhost", "*.managedhsm.localhost"],
    ip: ["127.0.0.1"],
  });
  const entra = new EntraTwin(model);
  const requestLog: KvRequestLogEntry[] = [];
  const handler = async (req: IncomingMessage, res: ServerResponse) => {
    let raw = "";
    for await (const chunk of req) raw += chunk;
    const url = new URL((req.url ?? "/").replace(/\/{2,}/g, "/"), "https://twin.invalid");
    const host = (req.headers.host ?? "").replace(/:\d+$/, "").toLowerCase();
    const entry: KvRequestLogEntry = {
      at: new Date().toISOString(),
      host,
      method: req.method ?? "GET",
      path: url.pathname,
      query: url.search,
      status: 0,
    };
    let reply: Reply;
    try {
      reply = route(model, entra, req, host, url, raw, entry);
    } catch (e) {
      reply = {
        status: 500,
        body: { error: { code: "InternalError", message: `twin failure: ${(e as Error).message}` } },
      };
    }
    if (reply.status === -1) {
      // [I] A purged or soft-deleted pool's name no longer answers: the connection is dropped.
      entry.status = 0;
      requestLog.push(entry);
      req.socket.destroy();
      return;
    }
    entry.status = reply.status;
    const err = (reply.body as { error?: { code?: string; innererror?: { code?: string } } } | undefined)
      ?.error;
    const code = err?.innererror?.code ?? err?.code;
    if (code && reply.status >= 400) entry.code = code;
    requestLog.push(entry);
    const headers: Record<string, string> = {
      "x-ms-request-id": randomUUID(),
      ...(reply.headers ?? {}),
    };
    if (reply.body !== undefined) headers["content-type"] = "application/json; charset=utf-8";
    res.writeHead(reply.status, headers);
    res.end(reply.body === undefined ? undefined : JSON.stringify(reply.body));
  };
  const server: Server = createServer({ key: tls.keyPem, cert: tls.certPem }, (req, res) => {
    handler(req, res).catch((e: unknown) => res.destroy(e as Error));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  model.dataPlanePort = `:${port}`;
  entra.base = `https://login.localhost:${port}`;
  return {
    port,
    caPem: tls.caPem,
    entraBase: entra.base,
    graphBase: `https://graph.localhost:${port}`,
    requestLog,
    entra,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function route(
  model: KeyVaultTwinModel,
  entra: EntraTwin,
  req: IncomingMessage,
  host: string,
  url: URL,
  raw: string,
  entry: KvRequestLogEntry,
): Reply {
  const method = req.method ?? "GET";
  if (host === "login.localhost") {
    const f = fault(model, "entra", url.pathname);
    if (f) return f;
    return entra.handle(method, url.pathname, new URLSearchParams(raw));
  }
  if (host === "graph.localhost") {
    const f = fault(model, "graph", url.pathname);
    if (f) return f;
    return graph(model, entra, req, url, entry);
  }
  const pool = /^([a-z0-9-]+)\.managedhsm\.localhost$/.exec(host)?.[1];
  const hsm = pool ? model.hsms.get(pool) : undefined;
  if (hsm?.state !== "active") return { status: -1 };

  const f = fault(model, "data-plane", url.pathname);
  if (f) return f;
  const auth = req.headers.authorization ?? "";
  const token = /^Bearer (\S+)$/i.exec(auth)?.[1];
  if (!token)
    return {
      status: 401,
      headers: {
        "www-authenticate": `Bearer authorization="${entra.base}/${hsm.tenantId}", resource="${DATA_PLANE_RESOURCE}"`,
      },
      body: {
        error: { code: "Unauthorized", message: "AKV10000: Request is missing a Bearer or PoP token." },
      },
    };
  const principal = principalOf(entra, token, DATA_PLANE_RESOURCE);
  if ("refused" in principal)
    return {
      status: 401,
      headers: {
        "www-authenticate": `Bearer authorization="${entra.base}/${hsm.tenantId}", resource="${DATA_PLANE_RESOURCE}"`,
      },
      body: { error: { code: "Unauthorized", message: `AKV10022: Invalid token: ${principal.refused}.` } },
    };
  entry.principal = principal.oid;

  const network = networkRefusal(hsm, req.socket.remoteAddress ?? "", principal);
  if (network) return network;
  if (!hsm.activated)
    // [I] The status and wording of a data-plane call before security-domain activation.
    return {
      status: 403,
      body: {
        error: {
          code: "Forbidden",
          message: "The Managed HSM is not activated. Download the security domain to activate it.",
          innererror: { code: "HsmNotActivated" },
        },
      },
    };
  let body: unknown;
  try {
    body = raw ? JSON.parse(raw) : undefined;
  } catch {
    return {
      status: 400,
      body: { error: { code: "BadParameter", message: "The request body is not valid JSON." } },
    };
  }
  return dataPlane(model, hsm, {
    method,
    path: url.pathname,
    query: url.searchParams,
    body,
    principalId: principal.oid,
    base: `https://${host}${model.dataPlanePort}`,
  });
}

function principalOf(
  entra: EntraTwin,
  token: string,
  audience: string,
): { oid: string; appid: string } | { refused: string } {
  if (token === TWIN_DAEMON_TOKEN)
    return { oid: DAEMON_PRINCIPAL.objectId, appid: DAEMON_PRINCIPAL.clientId };
  const v = entra.verify(token, audience);
  if (!v.ok) return { refused: v.reason };
  return { oid: v.claims.oid, appid: v.claims.appid };
}

/**
 * Managed HSM's network rules on the caller: with public network access disabled every call over the public
 * endpoint is refused; with `defaultAction: Deny` only addresses in `ipRules` pass. The twin's callers all come
 * over its one public endpoint ([I]: the twin has no private link).
 */
function networkRefusal(
  hsm: TwinManagedHsm,
  remote: string,
  principal: { oid: string; appid: string },
): Reply | undefined {
  const address = remote.replace(/^::ffff:/, "");
  if (hsm.privateEndpoint) return undefined;
  if (hsm.publicNetworkAccess === "Disabled")
    return {
      status: 403,
      body: {
        error: {
          code: "Forbidden",
          // [I] Key Vault's wording for a vault with public access disabled; Managed HSM's may differ.
          message:
            "Public network access is disabled and request is not from a trusted service nor via an approved private link.",
          innererror: { code: "ForbiddenByConnection" },
        },
      },
    };
  if (hsm.networkAcls.defaultAction === "Deny" && !hsm.networkAcls.ipRules.some((r) => inCidr(address, r)))
    return {
      status: 403,
      body: {
        error: {
          code: "Forbidden",
          message: `Client address is not authorized and caller is not a trusted service.\r\nClient address: ${address}\r\nCaller: appid=${principal.appid};oid=${principal.oid}\r\nVault: ${hsm.name};location=${hsm.location}`,
          innererror: { code: "ForbiddenByFirewall" },
        },
      },
    };
  return undefined;
}

/** IPv4 address in `a.b.c.d` or `a.b.c.d/n`. */
function inCidr(address: string, rule: string): boolean {
  const [net, bitsText] = rule.split("/");
  const bits = bitsText === undefined ? 32 : Number(bitsText);
  const n = (ip: string) => ip.split(".").reduce((acc, o) => (acc << 8) + Number(o), 0) >>> 0;
  if (!/^\d+\.\d+\.\d+\.\d+$/.test(address) || !/^\d+\.\d+\.\d+\.\d+$/.test(net ?? "")) return false;
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return (n(address) & mask) === (n(net!) & mask);
}

function graph(
  model: KeyVaultTwinModel,
  entra: EntraTwin,
  req: IncomingMessage,
  url: URL,
  entry: KvRequestLogEntry,
): Reply {
  const token = /^Bearer (\S+)$/i.exec(req.headers.authorization ?? "")?.[1];
  const graphError = (status: number, code: string, message: string): Reply => ({
    status,
    body: {
      error: { code, message, innerError: { date: new Date().toISOString(), "request-id": randomUUID() } },
    },
  });
  if (!token) return graphError(401, "InvalidAuthenticationToken", "Access token is empty.");
  const principal = principalOf(entra, token, GRAPH_RESOURCE);
  if ("refused" in principal)
    return graphError(401, "InvalidAuthenticationToken", "Access token validation failure.");
  entry.principal = principal.oid;
  // [I] Only the daemon's identity holds Application.Read.All in the twin.
  if (principal.oid !== DAEMON_PRINCIPAL.objectId)
    return graphError(
      403,
      "Authorization_RequestDenied",
      "Insufficient privileges to complete the operation.",
    );
  if (req.method !== "GET" || url.pathname.toLowerCase() !== "/v1.0/applications")
    return graphError(400, "Request_BadRequest", `Unsupported request ${req.method} ${url.pathname}.`);
  const filter = url.searchParams.get("$filter") ?? "";
  const appId = /^appId eq '([0-9a-fA-F-]{36})'$/.exec(filter.trim())?.[1];
  if (!appId) return graphError(400, "Request_UnsupportedQuery", "Unsupported query.");
  const app = model.apps.get(appId.toLowerCase());
  return {
    status: 200,
    body: {
      "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#applications(appId,passwordCredentials)",
      value: app
        ? [
            {
              appId: app.clientId,
              passwordCredentials: app.secrets.map((s) => ({
                customKeyIdentifier: null,
                displayName: "lunafleet twin",
                endDateTime: s.end.toISOString(),
                hint: s.value.slice(0, 3),
                keyId: s.keyId,
                secretText: null,
                startDateTime: s.start.toISOString(),
              })),
            },
          ]
        : [],
    },
  };
}

function fault(
  model: KeyVaultTwinModel,
  on: "data-plane" | "graph" | "entra",
  path: string,
): Reply | undefined {
  const f = model.takeFault(on, path);
  if (!f) return undefined;
  const headers: Record<string, string> = {};
  if (f.retryAfterSeconds !== undefined) headers["retry-after"] = String(f.retryAfterSeconds);
  return {
    status: f.status,
    headers,
    body: { error: { code: f.code ?? defaultCode(f.status), message: f.message ?? "Injected by the twin." } },
  };
}
