// Every HTTP exchange an Azure client makes inside one gateway call, for the evidence: method, host, path, api-version,
// status, `x-ms-request-id`, Retry-After. Added to each client's pipeline after the retry policy, so a 429 or 5xx
// the SDK retries shows up as its own exchange. Headers and bodies are never kept: they carry tokens and key material.
import { AsyncLocalStorage } from "node:async_hooks";
import type { PipelinePolicy } from "@azure/core-rest-pipeline";

export interface HttpExchange {
  method: string;
  host: string;
  path: string;
  apiVersion?: string;
  status?: number;
  requestId?: string;
  retryAfter?: string;
  /** No answer: the transport error's code (ECONNREFUSED, DEPTH_ZERO_SELF_SIGNED_CERT, …). */
  error?: string;
}

const current = new AsyncLocalStorage<HttpExchange[]>();

const HTTP_RECORD_POLICY = "lunafleetHttpRecord";

export function httpRecordPolicy(): PipelinePolicy {
  return {
    name: HTTP_RECORD_POLICY,
    async sendRequest(request, next) {
      const list = current.getStore();
      const url = new URL(request.url);
      const entry: HttpExchange = { method: request.method, host: url.host, path: url.pathname };
      const apiVersion = url.searchParams.get("api-version");
      if (apiVersion) entry.apiVersion = apiVersion;
      try {
        const response = await next(request);
        entry.status = response.status;
        const requestId = response.headers.get("x-ms-request-id");
        if (requestId) entry.requestId = requestId;
        const retryAfter = response.headers.get("retry-after");
        if (retryAfter) entry.retryAfter = retryAfter;
        return response;
      } catch (e) {
        const err = e as { code?: unknown; statusCode?: unknown };
        if (typeof err.statusCode === "number") entry.status = err.statusCode;
        else entry.error = typeof err.code === "string" ? err.code : "transport";
        throw e;
      } finally {
        list?.push(entry);
      }
    },
  };
}

/** Runs `fn` and returns what it resolved to with the exchanges it made (also when it throws: attached as `.http`). */
export async function withHttpRecord<T>(fn: () => Promise<T>): Promise<{ value: T; http: HttpExchange[] }> {
  const http: HttpExchange[] = [];
  try {
    const value = await current.run(http, fn);
    return { value, http };
  } catch (e) {
    if (e && typeof e === "object") Object.defineProperty(e, "http", { value: http, enumerable: false });
    throw e;
  }
}

/** The exchanges attached to an error thrown inside withHttpRecord (empty when none). */
export function httpOf(e: unknown): HttpExchange[] {
  const http = (e as { http?: unknown } | null)?.http;
  return Array.isArray(http) ? (http as HttpExchange[]) : [];
}
