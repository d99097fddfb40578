// Fleet-file sections for the web console and its notifications (issue 16), composed into schema.ts:
//
//   console:
//     url: https://lunafleet.example.com:9465   # how browsers reach the daemon's API (and console) origin: the
//                                               # WebAuthn origin and relying-party id (its host name), and the
//                                               # OIDC redirect URI (<url>/console/)
//     oidc:                                     # the console's public client at identity.oidc.issuer
//       clientId: 5f0c…                         # (authorization code + PKCE; an Entra "single-page application")
//       scope: openid api://lunafleet/Console   # what the browser asks for; the access token's audience must be
//       resource: api://lunafleet               #   identity.oidc.audience (resource: for providers that take one)
//   notifications:
//     webhooks:
//       - name: soc
//         events: [approval.awaiting, job.finished, fleet.problem]
//         format: lunafleet                     # or slack / teams (their incoming-webhook message shapes)
//         credentials: { url: env:SOC_WEBHOOK_URL, secret: env:SOC_WEBHOOK_SECRET }
//     retry: { attempts: 8, backoffMs: 2000 }   # exponential: 2 s, 4 s, 8 s …
//
// A webhook's URL is a credential (Slack's and Teams' URLs carry their secret in the path), so it is a reference like
// a password and never printed, recorded or published.
import { z } from "zod";

export const NOTIFICATION_EVENTS = ["approval.awaiting", "job.finished", "fleet.problem"] as const;
export type NotificationEvent = (typeof NOTIFICATION_EVENTS)[number];

export const WEBHOOK_FORMATS = ["lunafleet", "slack", "teams"] as const;

const name = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, "must be 1-63 characters of letters, digits, '.', '_' or '-'");

export interface ConsoleSectionDeps {
  /** The fleet's credential reference (env:, file:, literal only in twin files). */
  credentialRef: z.ZodType<string>;
  /** True while a twin file is being parsed. */
  twin: () => boolean;
}

export function consoleSections({ credentialRef, twin }: ConsoleSectionDeps) {
  const origin = z
    .string()
    .url()
    .superRefine((value, ctx) => {
      let u: URL;
      try {
        u = new URL(value);
      } catch {
        return;
      }
      if (u.protocol !== "https:")
        ctx.addIssue({ code: "custom", message: "must be https (WebAuthn and bearer tokens need it)" });
      if (u.pathname !== "/" || u.search || u.hash || u.username || u.password)
        ctx.addIssue({ code: "custom", message: "must be an origin only: https://host[:port]" });
      if (!twin() && /^(localhost|127\.|\[::1\])/i.test(u.hostname))
        ctx.addIssue({ code: "custom", message: "a loopback console URL belongs to a twin fleet only" });
    });

  const consoleSection = z
    .object({
      url: origin.optional(),
      oidc: z
        .object({
          clientId: z.string().min(1).max(200),
          scope: z.string().min(1).max(1000).default("openid"),
          resource: z.string().min(1).max(500).optional(),
        })
        .strict()
        .optional(),
    })
    .strict();

  const webhook = z
    .object({
      name,
      events: z
        .array(z.enum(NOTIFICATION_EVENTS))
        .min(1)
        .default([...NOTIFICATION_EVENTS]),
      format: z.enum(WEBHOOK_FORMATS).default("lunafleet"),
      credentials: z
        .object({
          url: credentialRef,
          /** The HMAC key of the signature headers (Standard Webhooks); `whsec_<base64>` or any string. */
          secret: credentialRef.optional(),
        })
        .strict(),
      /** A PEM CA trusted for this webhook's HTTPS (twin fleets only: a receiver on loopback). */
      caFile: z.string().startsWith("/", "an absolute path").optional(),
    })
    .strict()
    .superRefine((w, ctx) => {
      if (w.format === "lunafleet" && !w.credentials.secret)
        ctx.addIssue({
          code: "custom",
          path: ["credentials", "secret"],
          message: "a lunafleet webhook is signed: give its secret (env:NAME or file:/path)",
        });
      if (w.caFile && !twin())
        ctx.addIssue({
          code: "custom",
          path: ["caFile"],
          message: "a private webhook CA is for twin fleets only",
        });
    });

  const notifications = z
    .object({
      webhooks: z.array(webhook).default([]),
      retry: z
        .object({
          attempts: z.number().int().min(1).max(20).default(8),
          backoffMs: z.number().int().min(10).max(3_600_000).default(2000),
        })
        .strict()
        .default({ attempts: 8, backoffMs: 2000 }),
    })
    .strict()
    .superRefine((n, ctx) => {
      const seen = new Set<string>();
      n.webhooks.forEach((w, i) => {
        if (seen.has(w.name))
          ctx.addIssue({
            code: "custom",
            path: ["webhooks", i, "name"],
            message: `duplicate webhook '${w.name}'`,
          });
        seen.add(w.name);
      });
    });

  return { console: consoleSection.optional(), notifications: notifications.optional() };
}
