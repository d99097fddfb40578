// The CLI's client of the daemon's API, used when LUNAFLEET_URL is set (with LUNAFLEET_TOKEN: an API token or an
// OIDC access token). TLS trusts, in order: LUNAFLEET_CA (a PEM file), else the data dir's generated API certificate
// (the CLI on the daemon host), else the system store. Errors carry the API's own message and status.
import { existsSync, readFileSync } from "node:fs";
import { request } from "node:https";
import { apiCertPaths } from "../api/tls.ts";
import { defaultDataDir } from "../redis/embedded-server.ts";

export class ApiCallError extends Error {
  override name = "ApiCallError";
  constructor(
    readonly status: number,
    message: string,
    readonly body: unknown,
  ) {
    super(message);
  }
}

export interface ApiClientOptions {
  url: string;
  token?: string | undefined;
  /** PEM text of the CA (or self-signed certificate) to trust. */
  ca?: string | undefined;
}

export interface ApiClient {
  readonly url: string;
  call<T = unknown>(method: string, path: string, body?: unknown): Promise<T>;
  /** The raw text of a response (NDJSON export) and its headers. */
  text(
    method: string,
    path: string,
  ): Promise<{ text: string; headers: import("node:http").IncomingHttpHeaders }>;
}

/**
 * The client the environment asks for, or undefined when LUNAFLEET_URL is not set (work on the local daemon). The
 * bearer token: LUNAFLEET_TOKEN, or the first line of the file LUNAFLEET_TOKEN_FILE names (kept out of the
 * environment of every child process); without one the API would only answer 401, so it is refused here.
 */
export function apiClientFromEnv(
  env: NodeJS.ProcessEnv = process.env,
  dataDir?: string,
): ApiClient | undefined {
  const url = env.LUNAFLEET_URL;
  if (!url) return undefined;
  let ca: string | undefined;
  if (env.LUNAFLEET_CA) ca = readFileSync(env.LUNAFLEET_CA, "utf8");
  else {
    const local = apiCertPaths(dataDir ?? defaultDataDir()).cert;
    if (existsSync(local)) ca = readFileSync(local, "utf8");
  }
  const token = env.LUNAFLEET_TOKEN_FILE
    ? readFileSync(env.LUNAFLEET_TOKEN_FILE, "utf8").split("\n")[0]!.trim()
    : env.LUNAFLEET_TOKEN?.trim();
  if (!token)
    throw new ApiCallError(
      401,
      "LUNAFLEET_URL is set but no token: set LUNAFLEET_TOKEN (an API token or an OIDC access token) or LUNAFLEET_TOKEN_FILE",
      undefined,
    );
  return createApiClient({ url, token, ca });
}

export function createApiClient(opts: ApiClientOptions): ApiClient {
  const base = opts.url.replace(/\/$/, "");
  if (!base.startsWith("https://")) throw new Error(`LUNAFLEET_URL must be https:// (got ${base})`);
  const send = (method: string, path: string, body?: unknown) =>
    new Promise<{ status: number; text: string; headers: import("node:http").IncomingHttpHeaders }>(
      (resolve, reject) => {
        const payload = body === undefined ? undefined : JSON.stringify(body);
        const req = request(
          `${base}${path}`,
          {
            method,
            ...(opts.ca ? { ca: opts.ca } : {}),
            headers: {
              accept: "application/json",
              ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
              ...(payload ? { "content-type": "application/json" } : {}),
            },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () =>
              resolve({
                status: res.statusCode ?? 0,
                text: Buffer.concat(chunks).toString("utf8"),
                headers: res.headers,
              }),
            );
            res.on("error", reject);
          },
        );
        req.on("error", (err) =>
          reject(new ApiCallError(0, `cannot reach ${base}: ${err.message}`, undefined)),
        );
        req.end(payload);
      },
    );
  return {
    url: base,
    async call<T>(method: string, path: string, body?: unknown): Promise<T> {
      const res = await send(method, path, body);
      let parsed: unknown;
      try {
        parsed = res.text ? JSON.parse(res.text) : undefined;
      } catch {
        parsed = res.text;
      }
      if (res.status >= 400) {
        const msg = (parsed as { error?: string } | undefined)?.error ?? `HTTP ${res.status}`;
        throw new ApiCallError(res.status, msg, parsed);
      }
      return parsed as T;
    },
    async text(method: string, path: string) {
      const res = await send(method, path);
      if (res.status >= 400) {
        let msg = `HTTP ${res.status}`;
        try {
          msg = (JSON.parse(res.text) as { error?: string }).error ?? msg;
        } catch {
          // not JSON: the status says it
        }
        throw new ApiCallError(res.status, msg, res.text);
      }
      return { text: res.text, headers: res.headers };
    },
  };
}
