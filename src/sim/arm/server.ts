// The ARM twin's HTTPS front door: authentication, api-version checks, throttling, routing onto `ArmModel`, the
// long-running-operation headers, and the request log. The Azure SDK clients talk to it unchanged.
//
// Routes (paths are matched case-insensitively, as ARM does; arm-resources sends `resourcegroups` in lower case):
//   GET|DELETE /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.HardwareSecurityModules/dedicatedHSMs/{n}
//   GET        /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.HardwareSecurityModules/dedicatedHSMs
//   GET        /subscriptions/{s}/providers/Microsoft.HardwareSecurityModules/dedicatedHSMs
//   GET        /subscriptions/{s}/providers/Microsoft.HardwareSecurityModules/locations/{l}/operationStatuses/{op}
//   GET        /subscriptions/{s}/providers/Microsoft.HardwareSecurityModules/locations/{l}/operationResults/{op}
//   GET|DELETE /subscriptions/{s}/resourcegroups/{rg}
//   GET        /subscriptions/{s}/resourcegroups/{rg}/resources[?$filter=resourceType eq '…']
//   GET        /subscriptions/{s}/operationresults/{op}            (resource-group delete, Location mode)
//
// LRO shapes, as real ARM answers them:
//   HSM delete  -> 202, `Azure-AsyncOperation` (status URL: {"status":"InProgress"} ×N, then Succeeded|Failed)
//                  plus a `Location` (operation-result URL: 202 while running, 204 when done, the error if failed);
//   group delete -> 202 with `Location` only (ARM's resource-group delete has no Azure-AsyncOperation).
// All poll URLs are absolute and built on the twin's own https base, so a client can never wander off to Azure.
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import {
  ArmError,
  type ArmModel,
  HSM_API_VERSION,
  HSM_RESOURCE_TYPE,
  type Operation,
  RESOURCES_API_VERSIONS,
} from "./model.ts";

export interface ArmRequestLogEntry {
  /** ISO timestamp of the answer. */
  at: string;
  method: string;
  /** Normalised path without the query string. */
  path: string;
  /** The raw query string (with its `?`), or "". */
  query: string;
  status: number;
  /** The `x-ms-request-id` the twin answered with. */
  requestId: string;
}

export interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/**
 * Another resource provider served by the same front door (the Key Vault twin's Microsoft.KeyVault and
 * Microsoft.Insights routes): it answers the requests it owns, after authentication and throttling, or returns
 * undefined. `base` is the twin's own https base, for absolute poll URLs.
 */
export interface ArmExtension {
  route(method: string, url: URL, base: string): Reply | undefined;
}

const PROVIDER = "microsoft.hardwaresecuritymodules";

export class ArmFrontDoor {
  readonly requestLog: ArmRequestLogEntry[] = [];
  readonly extensions: ArmExtension[] = [];
  /** Set once the server listens: `https://127.0.0.1:<port>`. */
  base = "";

  constructor(private readonly model: ArmModel) {}

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // arm-resources' by-id templates produce `//subscriptions/…`; `new URL` would read that as a host name.
    const normalised = (req.url ?? "/").replace(/^\/+/, "/");
    const url = new URL(normalised, "https://arm-twin.invalid");
    const method = req.method ?? "GET";
    const requestId = randomUUID();
    // Drain the body (DELETE/GET carry none, but a client may send `{}`); the twin needs nothing from it.
    for await (const _chunk of req) {
      /* discard */
    }
    let reply: Reply;
    try {
      reply = await this.route(method, url, req);
    } catch (e) {
      reply =
        e instanceof ArmError
          ? errorReply(e.statusCode, e.code, e.message)
          : errorReply(500, "InternalServerError", `ARM twin failure: ${(e as Error).message}`);
    }
    this.requestLog.push({
      at: new Date().toISOString(),
      method,
      path: url.pathname,
      query: url.search,
      status: reply.status,
      requestId,
    });
    const headers: Record<string, string> = {
      "x-ms-request-id": requestId,
      "x-ms-correlation-request-id": randomUUID(),
      ...reply.headers,
    };
    if (reply.body !== undefined) headers["content-type"] = "application/json; charset=utf-8";
    res.writeHead(reply.status, headers);
    res.end(reply.body === undefined ? undefined : JSON.stringify(reply.body));
  }

  private async route(method: string, url: URL, req: IncomingMessage): Promise<Reply> {
    const auth = req.headers.authorization ?? "";
    if (!/^Bearer \S+/.test(auth))
      return errorReply(
        401,
        "AuthenticationFailed",
        "Authentication failed. The 'Authorization' header is missing.",
      );

    await this.model.waitWhileHeld();
    const throttle = this.model.takeThrottle();
    if (throttle !== undefined)
      return {
        ...errorReply(429, "TooManyRequests", "The request is being throttled."),
        headers: { "retry-after": String(throttle) },
      };

    for (const extension of this.extensions) {
      const answer = extension.route(method, url, this.base);
      if (answer) return answer;
    }

    const seg = url.pathname
      .split("/")
      .filter((s) => s.length > 0)
      .map((s) => decodeURIComponent(s));
    const lower = seg.map((s) => s.toLowerCase());
    const apiVersion = url.searchParams.get("api-version");
    if (lower[0] !== "subscriptions" || seg.length < 2)
      return errorReply(404, "InvalidRequestUri", `The request URI '${url.pathname}' is not valid.`);
    const sub = seg[1]!;

    // /subscriptions/{s}/providers/Microsoft.HardwareSecurityModules/…
    if (lower[2] === "providers" && lower[3] === PROVIDER) {
      checkApiVersion(apiVersion, [HSM_API_VERSION]);
      this.model.checkSubscription(sub);
      if (seg.length === 5 && lower[4] === "dedicatedhsms" && method === "GET")
        return ok({ value: this.model.listHsmsInSubscription().map((h) => this.model.hsmBody(h)) });
      if (seg.length === 8 && lower[4] === "locations" && method === "GET") {
        const op = this.model.getOperation(seg[7]!);
        if (lower[6] === "operationstatuses") return this.statusPoll(op);
        if (lower[6] === "operationresults") return this.resultPoll(op);
      }
      return unknownRoute(method, url);
    }

    // /subscriptions/{s}/operationresults/{op}  (resource-group delete)
    if (lower[2] === "operationresults" && seg.length === 4 && method === "GET") {
      checkApiVersion(apiVersion, RESOURCES_API_VERSIONS);
      this.model.checkSubscription(sub);
      return this.resultPoll(this.model.getOperation(seg[3]!));
    }

    if (lower[2] !== "resourcegroups" || seg.length < 4) return unknownRoute(method, url);
    const rg = seg[3]!;

    // /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.HardwareSecurityModules/dedicatedHSMs[/{n}]
    if (lower[4] === "providers" && lower[5] === PROVIDER && lower[6] === "dedicatedhsms") {
      checkApiVersion(apiVersion, [HSM_API_VERSION]);
      this.model.checkSubscription(sub);
      if (seg.length === 7 && method === "GET")
        return ok({ value: this.model.listHsmsInGroup(rg).map((h) => this.model.hsmBody(h)) });
      if (seg.length === 8 && method === "GET") return ok(this.model.hsmBody(this.model.getHsm(rg, seg[7]!)));
      if (seg.length === 8 && method === "DELETE") {
        const op = this.model.deleteHsm(rg, seg[7]!);
        if (!op) return { status: 204 };
        const opBase = `${this.base}/subscriptions/${this.model.subscriptionId}/providers/${
          HSM_RESOURCE_TYPE.split("/")[0]
        }/locations/${encodeURIComponent(op.location)}`;
        return {
          status: 202,
          headers: {
            "azure-asyncoperation": `${opBase}/operationStatuses/${op.id}?api-version=${HSM_API_VERSION}`,
            location: `${opBase}/operationResults/${op.id}?api-version=${HSM_API_VERSION}`,
          },
        };
      }
      return unknownRoute(method, url);
    }

    checkApiVersion(apiVersion, RESOURCES_API_VERSIONS);
    this.model.checkSubscription(sub);
    if (seg.length === 4 && method === "GET") return ok(this.model.groupBody(this.model.getGroup(rg)));
    if (seg.length === 4 && method === "DELETE") {
      const op = this.model.deleteGroup(rg);
      return {
        status: 202,
        headers: {
          location: `${this.base}/subscriptions/${this.model.subscriptionId}/operationresults/${op.id}?api-version=${apiVersion}`,
        },
      };
    }
    if (seg.length === 5 && lower[4] === "resources" && method === "GET") {
      const filter = parseResourceTypeFilter(url.searchParams.get("$filter"));
      const all = this.model.listGenericInGroup(rg);
      return ok({ value: filter ? all.filter((r) => r.type.toLowerCase() === filter) : all });
    }
    return unknownRoute(method, url);
  }

  /** Azure-AsyncOperation poll: always 200 with a status document. */
  private async statusPoll(op: Operation): Promise<Reply> {
    await this.slowPoll();
    const state = this.model.poll(op);
    if ("running" in state) return ok({ id: op.id, name: op.id, status: "InProgress" });
    if (state.status === "Succeeded") return ok({ id: op.id, name: op.id, status: "Succeeded" });
    return ok({
      id: op.id,
      name: op.id,
      status: "Failed",
      error: { code: state.code, message: state.message },
    });
  }

  /** Location poll: 202 while running, 204 when done, the operation's error when it failed. */
  private async resultPoll(op: Operation): Promise<Reply> {
    await this.slowPoll();
    const state = this.model.poll(op);
    if ("running" in state) return { status: 202 };
    if (state.status === "Succeeded") return { status: 204 };
    return errorReply(409, state.code, state.message);
  }

  private async slowPoll(): Promise<void> {
    const delay = this.model.pollDelayMs();
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
  }
}

function checkApiVersion(actual: string | null, accepted: readonly string[]): void {
  if (actual === null)
    throw new ArmError(
      400,
      "MissingApiVersionParameter",
      "The api-version query parameter (?api-version=) is required.",
    );
  if (!accepted.includes(actual))
    throw new ArmError(
      400,
      "InvalidApiVersionParameter",
      `The api-version '${actual}' is invalid. The supported versions are '${accepted.join(",")}'.`,
    );
}

/** Only `resourceType eq '<type>'` is understood; anything else is refused rather than silently ignored. */
function parseResourceTypeFilter(filter: string | null): string | undefined {
  if (filter === null || filter.trim() === "") return undefined;
  const m = /^\s*resourceType\s+eq\s+'([^']+)'\s*$/i.exec(filter);
  if (!m)
    throw new ArmError(
      400,
      "InvalidFilterInQueryString",
      `The ARM twin does not understand $filter=${filter}`,
    );
  return m[1]!.toLowerCase();
}

function ok(body: unknown): Reply {
  return { status: 200, body };
}

function errorReply(status: number, code: string, message: string): Reply {
  return { status, body: { error: { code, message } } };
}

function unknownRoute(method: string, url: URL): Reply {
  return errorReply(404, "NotFound", `The ARM twin has no route for ${method} ${url.pathname}.`);
}
