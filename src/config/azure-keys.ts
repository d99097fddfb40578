// Fleet-file sections for Azure Key Vault Managed HSM, Key Vault and the applications that use their keys
// (customer-managed keys): `managedHsms`, `keyVaults`, `keys`, `cmkConsumers`, `azureIdentity`, `appCryptoGate`.
//
// Composed into src/config/schema.ts (which passes its credential reference and twin flag in, so one parse reports
// every error of a file at once). Declarations are what the operator EXPECTS; the runbooks read what Azure HAS and
// report the difference. `sim:` blocks plant the twin's actual state and are refused outside a twin fleet.
import { z } from "zod";

const name = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, "must be 1-63 characters of letters, digits, '.', '_' or '-'");
const guid = z
  .string()
  .regex(/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/, "must be a GUID");
const isoDate = z
  .string()
  .regex(
    /^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:\d{2}))?$/,
    "must be an ISO 8601 date (YYYY-MM-DD[Thh:mm:ssZ])",
  )
  .refine((s) => !Number.isNaN(Date.parse(s)), "is not a real date");
/** ISO 8601 duration as Key Vault rotation policies write them (P90D, P1Y, P2M, PT12H). */
const isoDuration = z
  .string()
  .regex(
    /^P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?$/,
    "must be an ISO 8601 duration (e.g. P90D)",
  );

const MANAGED_HSM_ID =
  /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.KeyVault\/managedHSMs\/([^/]+)$/i;
const KEY_VAULT_ID =
  /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.KeyVault\/vaults\/([^/]+)$/i;

/** The JSON Web Key types Key Vault and Managed HSM know (Managed HSM holds only the -HSM ones). */
const keyTypes = ["RSA", "RSA-HSM", "EC", "EC-HSM", "oct", "oct-HSM"] as const;
export const keyOperations = [
  "encrypt",
  "decrypt",
  "sign",
  "verify",
  "wrapKey",
  "unwrapKey",
  "import",
  "export",
] as const;

/** The Managed HSM local RBAC built-in role a consumer needs (Managed HSM built-in roles, learn.microsoft.com). */
const CRYPTO_USER_ROLE = "Managed HSM Crypto User";

export interface AzureKeySectionDeps {
  /** The fleet's credential reference (env:, file:, literal only in twin files). */
  credentialRef: z.ZodType<string>;
  /** True while a twin file is being parsed (sim: blocks and loopback URIs allowed). */
  twin: () => boolean;
}

export function azureKeySections({ credentialRef, twin }: AzureKeySectionDeps) {
  const simOnly = <T extends { sim?: unknown }>(value: T, ctx: z.RefinementCtx) => {
    if (value.sim !== undefined && !twin())
      ctx.addIssue({ code: "custom", path: ["sim"], message: "sim: is allowed only in a twin fleet" });
  };

  const httpsUri = z
    .string()
    .url()
    .superRefine((uri, ctx) => {
      let u: URL;
      try {
        u = new URL(uri);
      } catch {
        return;
      }
      if (u.protocol !== "https:")
        ctx.addIssue({ code: "custom", message: "must be https (tokens are never sent over http)" });
      if (!twin() && /(^|\.)localhost$/i.test(u.hostname))
        ctx.addIssue({ code: "custom", message: "a localhost URI belongs to a twin fleet only" });
    });

  /** Twin-only: the Managed HSM's actual state where it differs from the declaration. */
  const managedHsmSim = z
    .object({
      /** Security domain downloaded (activated). */
      activated: z.boolean().default(true),
      purgeProtection: z.boolean().optional(),
      softDeleteRetentionDays: z.number().int().min(7).max(90).optional(),
      publicNetworkAccess: z.enum(["Enabled", "Disabled"]).optional(),
      /** Network ACL the HSM really has (default: Deny, with the twin caller's loopback address allowed). */
      networkAcls: z
        .object({
          defaultAction: z.enum(["Allow", "Deny"]),
          ipRules: z.array(z.string().min(1)).default([]),
        })
        .strict()
        .optional(),
      /** An approved private endpoint connection exists (default: as declared). */
      privateEndpoint: z.boolean().optional(),
      /** A diagnostic setting sends AuditEvent to the declared destination (default: true). */
      diagnostics: z.boolean().default(true),
      /** Keys the HSM holds that the fleet file does not declare. */
      undeclaredKeys: z
        .array(
          z
            .object({
              name,
              type: z.enum(keyTypes).default("oct-HSM"),
              size: z.number().int().positive().default(256),
              operations: z.array(z.enum(keyOperations)).default(["wrapKey", "unwrapKey"]),
            })
            .strict(),
        )
        .default([]),
    })
    .strict();

  const managedHsm = z
    .object({
      name,
      resourceId: z.string().regex(MANAGED_HSM_ID, "must be a Microsoft.KeyVault/managedHSMs resource id"),
      /** Data-plane URI (`https://<name>.managedhsm.azure.net/`). */
      hsmUri: httpsUri,
      /** Azure region; needed to find the HSM once it is soft-deleted (deletedManagedHSMs are per location). */
      location: z.string().min(1),
      expected: z
        .object({
          softDeleteRetentionDays: z.number().int().min(7).max(90).default(90),
          purgeProtection: z.boolean().default(true),
          publicNetworkAccess: z.enum(["Enabled", "Disabled"]).default("Disabled"),
          /** An approved private endpoint connection must exist. */
          privateEndpoint: z.boolean().default(true),
          /** Where AuditEvent logs must go: a Log Analytics workspace, storage account or Event Hub rule id. */
          diagnosticDestination: z.string().regex(/^\/subscriptions\//i, "must be an Azure resource id"),
        })
        .strict(),
      securityDomain: z
        .object({
          /** Keys needed to recover the security domain. */
          quorum: z.number().int().min(2, "a quorum of at least 2 custodians"),
          /** Who holds the security-domain RSA keys (Azure requires at least 3 keys for activation). */
          custodians: z.array(z.string().min(1)).min(3, "activation needs at least 3 custodian RSA keys"),
        })
        .strict()
        .refine((sd) => sd.quorum <= sd.custodians.length, {
          message: "quorum cannot exceed the number of custodians",
          path: ["quorum"],
        }),
      /** Principals allowed a key-using role at `/` or `/keys` (anyone else there is a finding), with why. */
      broadRoleHolders: z
        .array(z.object({ principalId: guid, role: z.string().min(1), reason: z.string().min(10) }).strict())
        .default([]),
      sim: managedHsmSim.optional(),
    })
    .strict()
    .superRefine(simOnly);

  const keyVault = z
    .object({
      name,
      resourceId: z.string().regex(KEY_VAULT_ID, "must be a Microsoft.KeyVault/vaults resource id"),
      sku: z.enum(["standard", "premium"]),
      expected: z
        .object({ softDelete: z.boolean().default(true), purgeProtection: z.boolean().default(true) })
        .strict()
        .default({ softDelete: true, purgeProtection: true }),
      /** Keys this vault is meant to hold, with what they require. */
      keys: z
        .array(
          z
            .object({
              name,
              keyType: z.enum(keyTypes),
              /** FIPS 140 level the key's protection must reach. */
              fipsLevel: z.union([z.literal(1), z.literal(2), z.literal(3)]),
            })
            .strict(),
        )
        .default([]),
      sim: z
        .object({
          softDelete: z.boolean().optional(),
          purgeProtection: z.boolean().optional(),
        })
        .strict()
        .optional(),
    })
    .strict()
    .superRefine(simOnly);

  const key = z
    .object({
      name,
      managedHsm: name,
      owner: z.string().min(1),
      purpose: z.string().min(1),
      environment: z.string().min(1),
      type: z.enum(["RSA-HSM", "EC-HSM", "oct-HSM"]),
      /** Bits (RSA 2048/3072/4096; oct 128/192/256). EC keys name their curve instead. */
      size: z.number().int().positive().optional(),
      curve: z.enum(["P-256", "P-384", "P-521", "P-256K"]).optional(),
      operations: z.array(z.enum(keyOperations)).min(1),
      /** Auto-rotation expected (a rotation policy with a Rotate action). Undeclared = not judged. */
      autoRotate: z.boolean().optional(),
      sim: z
        .object({
          /** The current version is disabled. */
          disabled: z.boolean().default(false),
          versions: z.number().int().min(1).max(20).default(1),
          rotationPolicy: z
            .object({ rotateAfter: isoDuration.optional(), expiresIn: isoDuration.optional() })
            .strict()
            .optional(),
        })
        .strict()
        .optional(),
    })
    .strict()
    .superRefine(simOnly)
    .superRefine((k, ctx) => {
      if (k.type === "EC-HSM" && !k.curve)
        ctx.addIssue({ code: "custom", path: ["curve"], message: "an EC-HSM key names its curve" });
      if (k.type !== "EC-HSM" && !k.size)
        ctx.addIssue({ code: "custom", path: ["size"], message: `a ${k.type} key names its size in bits` });
    });

  const cmkConsumer = z
    .object({
      name,
      /** The application, as its owners know it (e.g. "Delinea Secret Server"). */
      application: z.string().min(1),
      tenantId: guid,
      /** App registration (client) id. */
      clientId: guid,
      /** Object id of the app's service principal: the principal its Managed HSM role assignment names. */
      principalId: guid,
      key: name,
      role: z.string().min(1).default(CRYPTO_USER_ROLE),
      /** Default: the key itself (`/keys/<key>`). */
      scope: z
        .string()
        .regex(/^\/(keys(\/[A-Za-z0-9-]{1,127})?)?$/, "must be /, /keys or /keys/<name>")
        .optional(),
      /** The client secret's end date, or `graph` to read it from Microsoft Graph (passwordCredentials). */
      clientSecretExpires: z.union([isoDate, z.literal("graph")]),
      /** A secret ending within this many days is a finding. */
      secretExpiryWarnDays: z.number().int().min(1).max(365).default(30),
      /** The application's own credential, used only by the crypto gate. */
      credentials: z.object({ clientSecret: credentialRef }).strict(),
      sim: z
        .object({
          /** The scope the twin's role assignment really has (default: the declared one). */
          roleScope: z
            .string()
            .regex(/^\/(keys(\/[A-Za-z0-9-]{1,127})?)?$/)
            .optional(),
          /** No role assignment at all. */
          noRoleAssignment: z.boolean().default(false),
          secretExpiresInDays: z.number().int().default(365),
        })
        .strict()
        .optional(),
    })
    .strict()
    .superRefine(simOnly);

  const azureIdentity = z
    .object({
      /** Microsoft Entra ID authority (sovereign clouds differ). */
      authorityHost: httpsUri.default("https://login.microsoftonline.com"),
      /** Microsoft Graph, to read app registrations' secret end dates. */
      graphEndpoint: httpsUri.default("https://graph.microsoft.com"),
    })
    .strict();

  const appCryptoGate = z
    .object({
      /** Maintenance runbooks that end with the gate; a failing gate fails the job. */
      after: z.array(z.enum(["ha-recover", "ha-sync", "ntls-cert-sync"])).default([]),
      /** Managed HSM consumers whose wrap/unwrap round trip must pass after those runbooks. */
      consumers: z.array(name).default([]),
      /**
       * Luna client hosts: the application's own check, run on the host. It must be an absolute path with plain
       * arguments (no shell syntax); only these exact command lines are ever sent as a gate.
       */
      clientHostChecks: z
        .array(
          z
            .object({
              clientHost: name,
              command: z
                .string()
                .regex(
                  /^\/[A-Za-z0-9._/-]+( [A-Za-z0-9._=:,/@+-]+)*$/,
                  "must be an absolute path followed by plain arguments (no quotes, pipes, redirections or variables)",
                ),
              timeoutMs: z.number().int().min(1000).max(600_000).default(60_000),
            })
            .strict(),
        )
        .default([]),
    })
    .strict();

  return {
    managedHsms: z.array(managedHsm).default([]),
    keyVaults: z.array(keyVault).default([]),
    keys: z.array(key).default([]),
    cmkConsumers: z.array(cmkConsumer).default([]),
    azureIdentity: azureIdentity.default({
      authorityHost: "https://login.microsoftonline.com",
      graphEndpoint: "https://graph.microsoft.com",
    }),
    appCryptoGate: appCryptoGate.default({ after: [], consumers: [], clientHostChecks: [] }),
  };
}

/** The part of a fleet these sections describe (kept structural so schema.ts need not import back). */
interface AzureKeyFleet {
  managedHsms: { name: string; resourceId: string; hsmUri: string }[];
  keyVaults: { name: string; resourceId: string; keys: { name: string }[] }[];
  keys: { name: string; managedHsm: string }[];
  cmkConsumers: { name: string; key: string; scope?: string | undefined }[];
  clientHosts: { name: string }[];
  appCryptoGate: { consumers: string[]; clientHostChecks: { clientHost: string }[] };
}

/**
 * Cross-references: keys name a declared Managed HSM, consumers a declared key, gates declared consumers/hosts.
 * Key names are unique across the fleet (a consumer names its key by name alone).
 */
export function checkAzureKeyReferences(fleet: AzureKeyFleet, ctx: z.RefinementCtx): void {
  const issue = (path: (string | number)[], message: string) =>
    ctx.addIssue({ code: "custom", path, message });
  const unique = (list: { name: string }[], section: string) => {
    const seen = new Set<string>();
    list.forEach((x, i) => {
      if (seen.has(x.name)) issue([section, i, "name"], `duplicate name '${x.name}'`);
      seen.add(x.name);
    });
    return seen;
  };
  const hsms = unique(fleet.managedHsms, "managedHsms");
  unique(fleet.keyVaults, "keyVaults");
  const keys = unique(fleet.keys, "keys");
  const consumers = unique(fleet.cmkConsumers, "cmkConsumers");

  fleet.managedHsms.forEach((h, i) => {
    const fromId = MANAGED_HSM_ID.exec(h.resourceId)?.[3];
    if (fromId && fromId.toLowerCase() !== h.name.toLowerCase())
      issue(
        [`managedHsms`, i, "name"],
        `must be the resource's name '${fromId}' (Managed HSM names are global)`,
      );
  });
  fleet.keyVaults.forEach((v, i) => {
    const seen = new Set<string>();
    v.keys.forEach((k, j) => {
      if (seen.has(k.name)) issue(["keyVaults", i, "keys", j, "name"], `duplicate key '${k.name}'`);
      seen.add(k.name);
    });
  });
  fleet.keys.forEach((k, i) => {
    if (!hsms.has(k.managedHsm)) issue(["keys", i, "managedHsm"], `unknown managed HSM '${k.managedHsm}'`);
  });
  fleet.cmkConsumers.forEach((c, i) => {
    if (!keys.has(c.key)) issue(["cmkConsumers", i, "key"], `unknown key '${c.key}'`);
  });
  const hosts = new Set(fleet.clientHosts.map((h) => h.name));
  fleet.appCryptoGate.consumers.forEach((c, i) => {
    if (!consumers.has(c)) issue(["appCryptoGate", "consumers", i], `unknown consumer '${c}'`);
  });
  fleet.appCryptoGate.clientHostChecks.forEach((c, i) => {
    if (!hosts.has(c.clientHost))
      issue(["appCryptoGate", "clientHostChecks", i, "clientHost"], `unknown client host '${c.clientHost}'`);
  });
}
