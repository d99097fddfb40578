// One webhook call: the body in the receiver's format, signed the Standard Webhooks way (webhook-id,
// webhook-timestamp, webhook-signature: v1,<base64 HMAC-SHA256 over "<id>.<timestamp>.<body>">), posted over HTTPS.
// A receiver checks it with verifyWebhook() (or any Standard Webhooks library): a changed body, another secret, or a
// timestamp outside the tolerance (a replay) is refused.
import { createHmac, timingSafeEqual } from "node:crypto";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import type { NotificationEvent } from "../config/console-schema.ts";

export interface Notification {
  /** Stable per event and subject: a receiver that sees it twice knows it is one notification (retries reuse it). */
  id: string;
  event: NotificationEvent;
  /** ISO time the event was seen. */
  at: string;
  /** One line a person reads in a chat channel. */
  title: string;
  /** A link into the console, when the daemon knows its URL. */
  link?: string | undefined;
  /** The event's facts (job, outcome, approval, problem), secret-free. */
  data: Record<string, unknown>;
}

/** The HMAC key of a secret: `whsec_<base64>` (Standard Webhooks) is decoded; anything else is taken as UTF-8. */
export function webhookKey(secret: string): Buffer {
  return secret.startsWith("whsec_") ? Buffer.from(secret.slice(6), "base64") : Buffer.from(secret, "utf8");
}

export function signWebhook(secret: string, id: string, timestamp: number, body: string): string {
  const mac = createHmac("sha256", webhookKey(secret)).update(`${id}.${timestamp}.${body}`).digest("base64");
  return `v1,${mac}`;
}

export type WebhookCheck = { ok: true } | { ok: false; reason: string };

/**
 * What a receiver does with a call: recompute the signature over id, timestamp and the raw body with its secret,
 * compare in constant time (any of the space-separated signatures may match), and refuse timestamps more than
 * `toleranceSeconds` away from its clock.
 */
export function verifyWebhook(
  secret: string,
  headers: Record<string, string | string[] | undefined>,
  body: string,
  opts: { toleranceSeconds?: number; now?: number } = {},
): WebhookCheck {
  const one = (name: string) => {
    const v = headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  const id = one("webhook-id");
  const ts = one("webhook-timestamp");
  const sigs = one("webhook-signature");
  if (!id || !ts || !sigs)
    return { ok: false, reason: "missing webhook-id, webhook-timestamp or webhook-signature" };
  const timestamp = Number(ts);
  if (!Number.isInteger(timestamp)) return { ok: false, reason: "webhook-timestamp is not a number" };
  const now = Math.floor((opts.now ?? Date.now()) / 1000);
  if (Math.abs(now - timestamp) > (opts.toleranceSeconds ?? 300))
    return { ok: false, reason: "webhook-timestamp too far from now (a replay?)" };
  const expected = Buffer.from(signWebhook(secret, id, timestamp, body));
  for (const candidate of sigs.split(" ")) {
    const got = Buffer.from(candidate);
    if (got.length === expected.length && timingSafeEqual(got, expected)) return { ok: true };
  }
  return { ok: false, reason: "signature does not match" };
}

export type WebhookFormat = "lunafleet" | "slack" | "teams";

/** The body as the receiver expects it: lunafleet's JSON, a Slack message, or a Teams message with an Adaptive Card. */
export function formatBody(format: WebhookFormat, n: Notification): string {
  if (format === "slack")
    return JSON.stringify({
      text: n.link ? `${n.title} <${n.link}|open in the console>` : n.title,
    });
  if (format === "teams")
    return JSON.stringify({
      type: "message",
      attachments: [
        {
          contentType: "application/vnd.microsoft.card.adaptive",
          content: {
            $schema: "http://adaptivecards.io/schemas/adaptive-card.json",
            type: "AdaptiveCard",
            version: "1.4",
            body: [
              { type: "TextBlock", text: n.title, wrap: true, weight: "Bolder" },
              { type: "TextBlock", text: `${n.event} · ${n.at}`, isSubtle: true, wrap: true },
            ],
            ...(n.link
              ? { actions: [{ type: "Action.OpenUrl", title: "Open in the console", url: n.link }] }
              : {}),
          },
        },
      ],
    });
  return JSON.stringify({
    id: n.id,
    event: n.event,
    at: n.at,
    title: n.title,
    link: n.link ?? null,
    ...n.data,
  });
}

export interface WebhookTarget {
  name: string;
  url: string;
  secret?: string | undefined;
  format: WebhookFormat;
  /** PEM CA for the receiver's certificate (twin fleets: a receiver on loopback). */
  ca?: string | undefined;
}

export interface DeliveryResult {
  status: number;
}

export class WebhookDeliveryError extends Error {
  override name = "WebhookDeliveryError";
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/** POST the notification; resolves on a 2xx answer, throws WebhookDeliveryError (the queue retries) otherwise. */
export function deliver(
  target: WebhookTarget,
  n: Notification,
  opts: { now?: number; timeoutMs?: number } = {},
): Promise<DeliveryResult> {
  const body = formatBody(target.format, n);
  const timestamp = Math.floor((opts.now ?? Date.now()) / 1000);
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "user-agent": "lunafleet-webhook/1",
    "webhook-id": n.id,
    "webhook-timestamp": String(timestamp),
  };
  if (target.secret) headers["webhook-signature"] = signWebhook(target.secret, n.id, timestamp, body);
  const url = new URL(target.url);
  const request = url.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: "POST",
        headers: { ...headers, "content-length": String(Buffer.byteLength(body)) },
        timeout: opts.timeoutMs ?? 10_000,
        ...(target.ca ? { ca: target.ca } : {}),
      },
      (res) => {
        res.resume();
        res.on("end", () => {
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve({ status });
          else reject(new WebhookDeliveryError(`${target.name}: HTTP ${status}`, status));
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", (err) => reject(new WebhookDeliveryError(`${target.name}: ${err.message}`)));
    req.end(body);
  });
}
