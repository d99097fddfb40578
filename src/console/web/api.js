// The API, as the console calls it: same origin, `Authorization: Bearer <token>` (OIDC access token or API token),
// JSON in and out. The live event stream is read with fetch() (EventSource cannot send the Authorization header).

let bearer = null;
let onUnauthorized = () => {};

export function setBearer(token, unauthorized) {
  bearer = token;
  if (unauthorized) onUnauthorized = unauthorized;
}

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error ? `${body.error}` : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export async function api(method, path, body) {
  const headers = { accept: "application/json" };
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit",
    cache: "no-store",
  });
  const text = await res.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = { error: text.slice(0, 500) };
  }
  if (res.status === 401) onUnauthorized(parsed?.error);
  if (!res.ok) throw new ApiError(res.status, parsed);
  return parsed;
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body ?? {});
export const del = (path) => api("DELETE", path);

/**
 * Server-sent events of `path` (GET), yielded as { event, data } until the server ends the stream or `signal`
 * aborts. Each `data` is parsed JSON.
 */
export async function* events(path, signal) {
  const res = await fetch(path, {
    headers: { accept: "text/event-stream", authorization: `Bearer ${bearer}` },
    credentials: "omit",
    cache: "no-store",
    signal,
  });
  if (res.status === 401) onUnauthorized();
  if (!res.ok || !res.body) throw new ApiError(res.status, null);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    for (let cut = buffer.indexOf("\n\n"); cut >= 0; cut = buffer.indexOf("\n\n")) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) event = line.slice(7);
        else if (line.startsWith("data: ")) data.push(line.slice(6));
      }
      if (data.length === 0) continue;
      let parsed;
      try {
        parsed = JSON.parse(data.join("\n"));
      } catch {
        parsed = data.join("\n");
      }
      yield { event, data: parsed };
    }
  }
}
