// The fleet file's `identity:` section: who may do what (roles from OIDC token claims, named principals, OS accounts
// on the daemon host) and the approvers' registered SSH keys, the reviewed root of trust for signed approvals.
//
//   identity:
//     oidc:
//       issuer: https://login.microsoftonline.com/<tenant>/v2.0
//       audience: api://lunafleet
//       principalClaim: preferred_username      # which claim names the person (default sub)
//     roles:                                   # token claims -> roles (Entra app roles or group object ids)
//       operator: { appRoles: [LunaFleet.Operator] }
//       approver: { groups: [6f0d...] }
//     principals:
//       - name: alice
//         oidc: [alice@contoso.com]            # values of principalClaim that are alice
//         os: [alice]                          # her account on the daemon host
//         roles: [approver]
//         approvalKeys: ["sk-ssh-ed25519@openssh.com AAAA... alice-yubikey"]
//     localRoles: [admin]                      # an OS account on the daemon host not listed above
//
// Composed into schema.ts (fleetSchema.identity); checkIdentity runs in the fleet's cross-reference pass.
import { createHash } from "node:crypto";
import { z } from "zod";

export const ROLES = ["viewer", "operator", "approver", "guard-admin", "admin"] as const;
export type Role = (typeof ROLES)[number];

/** Principal names: what evidence records and approvals name. */
const principalName = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$/,
    "must be 1-64 characters of letters, digits, '.', '_', '@', '+' or '-'",
  );

const SSH_KEY_LINE =
  /^(ssh-ed25519|sk-ssh-ed25519@openssh\.com|ecdsa-sha2-nistp256|sk-ecdsa-sha2-nistp256@openssh\.com|ssh-rsa) ([A-Za-z0-9+/]+={0,2})( [^\n]*)?$/;

/**
 * The keys shipped in config/demo-keys (private halves in the repository!): refused in any fleet that is not a twin,
 * whatever their comment says.
 */
const DEMO_KEY_FINGERPRINTS: readonly string[] = [
  "SHA256:aoZgjaZfsh0e3mmWPKd41yOfuh3eUVyFAr2PcMgEYK8",
  "SHA256:PUy25DO1oM0En/tSLK4N3fOU/18/koFF/NWw8eDTzmo",
  "SHA256:N2oo5B8yk9AfIwgU6QTXpSl50tqXSc1YuHJzZsA/Mg8",
];

/** An OpenSSH public key line whose base64 holds the key type it names (full parsing: src/signing/ssh-key.ts). */
const sshPublicKeyLine = z.string().superRefine((line, ctx) => {
  const m = SSH_KEY_LINE.exec(line.trim());
  if (!m) {
    ctx.addIssue({
      code: "custom",
      message:
        "must be an OpenSSH public key line: ssh-ed25519, sk-ssh-ed25519@openssh.com, ecdsa-sha2-nistp256, sk-ecdsa-sha2-nistp256@openssh.com or ssh-rsa, then base64",
    });
    return;
  }
  const blob = Buffer.from(m[2]!, "base64");
  const len = blob.length >= 4 ? blob.readUInt32BE(0) : -1;
  if (len < 0 || blob.subarray(4, 4 + len).toString("latin1") !== m[1])
    ctx.addIssue({ code: "custom", message: `the base64 does not hold a ${m[1]} key` });
});

/** SHA256 fingerprint of a key line, as ssh-keygen -l prints it (assumes sshPublicKeyLine passed). */
export function keyLineFingerprint(line: string): string {
  const b64 = line.trim().split(/\s+/)[1] ?? "";
  return `SHA256:${createHash("sha256").update(Buffer.from(b64, "base64")).digest("base64").replace(/=+$/, "")}`;
}

const claimMatch = z
  .object({
    /** Values of the token's `roles` claim (Entra ID app roles). */
    appRoles: z.array(z.string().min(1)).default([]),
    /** Values of the token's `groups` claim (Entra ID group object ids). */
    groups: z.array(z.string().min(1)).default([]),
  })
  .strict();

const identityPrincipalSchema = z
  .object({
    name: principalName,
    /** Roles this person holds whatever their token says. */
    roles: z.array(z.enum(ROLES)).default([]),
    /** Values of oidc.principalClaim that identify this person. */
    oidc: z.array(z.string().min(1)).default([]),
    /** OS accounts on the daemon host that are this person. */
    os: z.array(z.string().regex(/^[a-z_][a-z0-9_.-]{0,31}$/, "an OS user name")).default([]),
    /** Registered approval keys (OpenSSH public key lines): an approval counts only when signed by one of these. */
    approvalKeys: z.array(sshPublicKeyLine).default([]),
  })
  .strict();

export const oidcSchema = z
  .object({
    issuer: z.string().url(),
    /** The API's application id URI / client id the token must be issued for. */
    audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
    /** Default: from the issuer's /.well-known/openid-configuration. */
    jwksUri: z.string().url().optional(),
    principalClaim: z.string().min(1).default("sub"),
    /** Asymmetric algorithms only: `none` and HMAC (key confusion) can never be configured. */
    algorithms: z
      .array(z.enum(["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]))
      .min(1)
      .default(["RS256"]),
    clockToleranceSeconds: z.number().int().min(0).max(300).default(60),
    /** A PEM CA trusted for discovery and JWKS (twin fleets only: the demo's loopback identity provider). */
    caFile: z.string().startsWith("/", "an absolute path").optional(),
  })
  .strict();

export const identitySchema = z
  .object({
    oidc: oidcSchema.optional(),
    roles: z.partialRecord(z.enum(ROLES), claimMatch).default({}),
    principals: z.array(identityPrincipalSchema).default([]),
    /** Roles of an OS account on the daemon host that no principal lists (whoever reaches the data dir's Redis). */
    localRoles: z.array(z.enum(ROLES)).default(["admin"]),
    /** Failed authentications per client address before it is refused for the window (recorded either way). */
    authFailures: z
      .object({
        max: z.number().int().min(1).max(1000).default(10),
        windowSeconds: z.number().int().min(1).max(86_400).default(300),
      })
      .strict()
      .default({ max: 10, windowSeconds: 300 }),
  })
  .strict();

export type IdentityConfig = z.output<typeof identitySchema>;
export type IdentityPrincipal = IdentityConfig["principals"][number];
export type OidcConfig = z.output<typeof oidcSchema>;

export const IDENTITY_DEFAULT: IdentityConfig = identitySchema.parse({});

/** Cross-references of the identity section; `twin` decides whether the shipped demo keys are allowed. */
export function checkIdentity(identity: IdentityConfig, twin: boolean, ctx: z.RefinementCtx): void {
  const seen = {
    name: new Map<string, number>(),
    oidc: new Map<string, string>(),
    os: new Map<string, string>(),
    key: new Map<string, string>(),
  };
  const issue = (path: (string | number)[], message: string) =>
    ctx.addIssue({ code: "custom", path: ["identity", ...path], message });
  identity.principals.forEach((p, i) => {
    const lower = p.name.toLowerCase();
    if (seen.name.has(lower)) issue(["principals", i, "name"], `principal '${p.name}' is listed twice`);
    seen.name.set(lower, i);
    p.oidc.forEach((s, j) => {
      const other = seen.oidc.get(s);
      if (other) issue(["principals", i, "oidc", j], `this subject is already principal '${other}'`);
      seen.oidc.set(s, p.name);
    });
    p.os.forEach((u, j) => {
      const other = seen.os.get(u);
      if (other) issue(["principals", i, "os", j], `OS account '${u}' is already principal '${other}'`);
      seen.os.set(u, p.name);
    });
    p.approvalKeys.forEach((line, j) => {
      if (!SSH_KEY_LINE.test(line.trim())) return;
      const fp = keyLineFingerprint(line);
      const other = seen.key.get(fp);
      // One key under two names would let one person count twice.
      if (other !== undefined)
        issue(
          ["principals", i, "approvalKeys", j],
          other === p.name
            ? `key ${fp} is listed twice`
            : `key ${fp} is already registered to '${other}': one key cannot approve under two names`,
        );
      seen.key.set(fp, p.name);
      if (!twin && DEMO_KEY_FINGERPRINTS.includes(fp))
        issue(
          ["principals", i, "approvalKeys", j],
          `key ${fp} is a lunafleet demo key (its private half is public): refused outside a twin fleet`,
        );
    });
  });
  if (identity.oidc?.caFile && !twin)
    issue(["oidc", "caFile"], "a private CA for the identity provider is for twin fleets only");
}
