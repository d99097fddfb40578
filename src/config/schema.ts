// Over 400 lines: the fleet file's whole schema on one page is its reference: each section is a few lines, and the
//  cross-references checked after the shapes need all of them.
// The fleet file: what lunafleet may touch and how. Validated with zod at load; every error carries its YAML
// path. Cross-references (HA members, client hosts, duplicate names and addresses) are checked after the shapes.
import { CronExpressionParser } from "cron-parser";
import { z } from "zod";
import { azureKeySections, checkAzureKeyReferences } from "./azure-keys.ts";
import { consoleSections } from "./console-schema.ts";
import { checkIdentity, IDENTITY_DEFAULT, identitySchema } from "./identity-schema.ts";
import { secretRefKind } from "./secret.ts";

const name = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, "must be 1-63 characters of letters, digits, '.', '_' or '-'");

/**
 * The schemas are built per kind of file: a twin fleet (`twin: true`) may hold literal passwords and sim: blocks,
 * a real one may not and must pin every host key. Checking these inline (rather than after the shapes) lets one
 * run report every error of a file at once.
 */
let parsingTwinFile = false;

/** A credential reference: `env:NAME`, `file:/absolute/path`, or (twin files only) a literal. */
export const credentialRef = z.string().superRefine((ref, ctx) => {
  // Messages here never include the value: a literal is a password.
  if (ref.length === 0) ctx.addIssue({ code: "custom", message: "credential reference is empty" });
  else if (ref.startsWith("env:") && !/^env:[A-Za-z_][A-Za-z0-9_]*$/.test(ref))
    ctx.addIssue({ code: "custom", message: "env: reference must name a variable (env:NAME)" });
  else if (ref.startsWith("file:") && !ref.startsWith("file:/"))
    ctx.addIssue({ code: "custom", message: "file: reference must be an absolute path (file:/path)" });
  else if (secretRefKind(ref) === "literal" && !parsingTwinFile)
    ctx.addIssue({
      code: "custom",
      message: "literal secrets are refused outside a twin fleet file; use env:NAME or file:/path",
    });
});

/** Validate `data` as a fleet; the `twin:` flag of the data itself decides which rules apply. */
export function safeParseFleet(data: unknown) {
  const twin = typeof data === "object" && data !== null && (data as { twin?: unknown }).twin === true;
  // zod schemas are synchronous: the flag cannot leak into another parse.
  parsingTwinFile = twin;
  try {
    // jitless: zod would otherwise compile (new Function) a fast path for every object schema on its first parse;
    // a fleet file is parsed once per process, so compiling costs more than it saves (~30 ms of a `config check`).
    return fleetSchema.safeParse(data, { jitless: true });
  } finally {
    parsingTwinFile = false;
  }
}

const sha256Fingerprint = z
  .string()
  .regex(/^SHA256:[A-Za-z0-9+/]{43}=?$/, "must be an OpenSSH SHA256 fingerprint (SHA256:<43 base64 chars>)");

const port = z.number().int().min(1).max(65535);
// Names that reach shells, file names and command lines (lunash prompts, `client register -client`, scp areas): no
// space, control or shell character, no path separator — refused here rather than at run time.
const host = z
  .string()
  .max(253)
  .regex(
    /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)$/,
    "must be a host name or an IP address (letters, digits, '-', '.'; ':' for IPv6)",
  );
const clientName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, "must be 1-63 characters of letters, digits, '.', '_' or '-'");
const serial = z.string().regex(/^\d{6,16}$/, "must be the decimal serial number (6-16 digits)");

const durationMs = z.number().int().positive();

const timeoutsSchema = z
  .object({
    connectMs: durationMs.default(10_000),
    authMs: durationMs.default(10_000),
    commandMs: durationMs.default(30_000),
    keepaliveMs: durationMs.default(15_000),
  })
  .strict();

/** Failed-login thresholds (Luna 7 defaults). The device's own policies override where readable. */
const thresholdsSchema = z
  .object({
    hsmSo: z.literal(3).default(3),
    partitionSo: z.number().int().min(1).max(10).default(10),
    co: z.number().int().min(1).max(10).default(10),
    auditor: z.number().int().min(1).max(10).default(10),
  })
  .strict();

const roleCredentials = z
  .object({
    partitionSo: credentialRef.optional(),
    co: credentialRef.optional(),
    cu: credentialRef.optional(),
  })
  .strict();

/** Twin-only state of a simulated partition (ignored by a real fleet; refused unless `twin: true`). */
const partitionSim = z
  .object({
    /** The cloning domain the partition really has, when it differs from the declared one. */
    actualCloningDomain: z.string().min(1).optional(),
    objects: z.number().int().min(0).default(2),
    policy20: z.number().int().min(1).max(10).optional(),
    coFailedLogins: z.number().int().min(0).default(0),
    psoFailedLogins: z.number().int().min(0).default(0),
  })
  .strict();

const partitionSchema = z
  .object({
    label: name,
    serial,
    /** The cloning domain the operator declares for this partition (a name, never the domain secret). */
    cloningDomain: z.string().min(1).optional(),
    credentials: roleCredentials.default({}),
    sim: partitionSim.optional(),
  })
  .strict();

/** Twin-only state and faults of a simulated appliance. */
export const deviceSimSchema = z
  .object({
    softwareVersion: z.string().default("7.2.0-220"),
    firmware: z.string().default("7.0.3"),
    /** Whether the KB0019789 reboot patch is installed. */
    rebootPatch: z.boolean().default(true),
    /** NTLS server certificate validity from now, in days (negative = already expired). */
    certValidDays: z.number().int().default(365),
    hsmSoFailedLogins: z.number().int().min(0).max(2).default(0),
    zeroized: z.boolean().default(false),
    policy15: z.union([z.literal(0), z.literal(1)]).default(0),
    ntlsClosed: z.boolean().default(false),
    faults: z.lazy(() => faultsSchema).optional(),
  })
  .strict();

const faultsSchema = z
  .object({
    slowReplyMs: z.number().int().min(0).optional(),
    dropMidCommand: z.string().optional(),
    garbleCommand: z.string().optional(),
    hangReboot: z.boolean().optional(),
  })
  .strict();

const deviceSchema = z
  .object({
    name,
    host,
    port: port.default(22),
    ntlsPort: port.default(1792),
    hostKey: sha256Fingerprint.optional(),
    user: z.string().min(1).default("admin"),
    serial,
    hostname: clientName.optional(),
    credentials: z
      .object({
        appliance: credentialRef.optional(),
        privateKey: credentialRef.optional(),
        hsmSo: credentialRef.optional(),
        auditor: credentialRef.optional(),
      })
      .strict()
      .default({}),
    azure: z
      .object({
        resourceId: z
          .string()
          .regex(
            /^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.HardwareSecurityModules\/dedicatedHSMs\/[^/]+$/i,
            "must be a Microsoft.HardwareSecurityModules/dedicatedHSMs resource id",
          ),
      })
      .strict()
      .optional(),
    requiredPatches: z.array(z.string().min(1)).default(["KB0019789"]),
    partitions: z.array(partitionSchema).default([]),
    sim: deviceSimSchema.optional(),
  })
  .strict()
  .superRefine((dev, ctx) => {
    if (!parsingTwinFile) {
      if (dev.sim)
        ctx.addIssue({ code: "custom", path: ["sim"], message: "sim: is allowed only in a twin fleet" });
      if (!dev.hostKey)
        ctx.addIssue({
          code: "custom",
          path: ["hostKey"],
          message: "a real device needs its pinned host key (see `lunafleet fleet trust`)",
        });
    }
    if (!dev.credentials.appliance && !dev.credentials.privateKey)
      ctx.addIssue({
        code: "custom",
        path: ["credentials"],
        message: "needs credentials.appliance (password) or credentials.privateKey for the appliance user",
      });
  });

const clientHostSimSchema = z
  .object({
    /** Appliances whose server certificate this client holds an outdated copy of. */
    staleServerCerts: z.array(name).default([]),
    /** HA members (device/partition) this client sees as down. */
    membersDown: z.array(z.string()).default([]),
    /** Initial `hagroup retry` count the client has (Luna default 0 = no auto-recovery). */
    haRetryCount: z.number().int().min(-1).max(500).default(0),
    haRetryIntervalSeconds: z.number().int().min(60).max(1200).default(60),
    lunacmVersion: z.string().default("10.7.2-16"),
  })
  .strict();

const clientHostSchema = z
  .object({
    name,
    local: z.boolean().default(false),
    host: host.optional(),
    port: port.default(22),
    hostKey: sha256Fingerprint.optional(),
    user: z.string().min(1).default("root"),
    /** Client name under which the appliances know this host (`client register -client`). */
    clientName: clientName.optional(),
    credentials: z
      .object({
        ssh: credentialRef.optional(),
        privateKey: credentialRef.optional(),
        /**
         * The private key (PEM) of the host's NTLS client certificate, so the daemon can verify an appliance link
         * with a real handshake as this client (ntls-cert-sync). Never sent anywhere but that handshake.
         */
        ntlsKey: credentialRef.optional(),
      })
      .strict()
      .default({}),
    /** Devices whose partitions this client is assigned (device -> partition labels). */
    assignments: z.array(z.object({ device: name, partitions: z.array(name).min(1) }).strict()).default([]),
    sim: clientHostSimSchema.optional(),
  })
  .strict()
  .superRefine((ch, ctx) => {
    if (!parsingTwinFile) {
      if (ch.sim)
        ctx.addIssue({ code: "custom", path: ["sim"], message: "sim: is allowed only in a twin fleet" });
      if (!ch.local && !ch.hostKey)
        ctx.addIssue({
          code: "custom",
          path: ["hostKey"],
          message: "a real client host needs its pinned host key",
        });
    }
    if (!ch.local && !ch.host)
      ctx.addIssue({ code: "custom", path: ["host"], message: "required unless local: true" });
    if (!ch.local && !ch.credentials.ssh && !ch.credentials.privateKey)
      ctx.addIssue({
        code: "custom",
        path: ["credentials"],
        message: "needs credentials.ssh or credentials.privateKey unless local: true",
      });
  });

const haGroupSchema = z
  .object({
    label: name,
    clientHost: name,
    members: z
      .array(z.object({ device: name, partition: name }).strict())
      .min(2, "an HA group needs two members"),
    /** The cloning domain every member must share. */
    cloningDomain: z.string().min(1).optional(),
    retry: z
      .object({
        count: z.number().int().min(-1).max(500).default(3),
        intervalSeconds: z.number().int().min(60).max(1200).default(60),
      })
      .strict()
      .default({ count: 3, intervalSeconds: 60 }),
    auto: z.boolean().default(false),
  })
  .strict();

const maintenanceWindowSchema = z
  .object({
    name,
    cron: z.string().superRefine((expr, ctx) => {
      try {
        CronExpressionParser.parse(expr);
      } catch (err) {
        ctx.addIssue({ code: "custom", message: `invalid cron expression: ${(err as Error).message}` });
      }
    }),
    durationMinutes: z
      .number()
      .int()
      .min(1)
      .max(24 * 60),
    timezone: z.string().default("UTC"),
    runbooks: z
      .array(
        z
          .object({
            runbook: z.string().min(1),
            target: z.string().min(1),
            params: z.record(z.string(), z.unknown()).default({}),
          })
          .strict(),
      )
      .default([]),
  })
  .strict();

const approvalPolicySchema = z
  .object({
    required: z.number().int().min(1).max(5).default(2),
    expiresMinutes: z.number().int().min(1).default(60),
    principals: z.array(z.string().min(1)).optional(),
  })
  .strict();

export const fleetSchema = z
  .object({
    version: z.literal(1),
    /** A twin fleet: simulated devices; literal secrets are allowed only here. */
    twin: z.boolean().default(false),
    defaults: z
      .object({
        timeouts: timeoutsSchema.default(timeoutsSchema.parse({})),
        thresholds: thresholdsSchema.default(thresholdsSchema.parse({})),
        haRecoverEveryMinutes: z.number().int().min(1).default(5),
        breakerThreshold: z.number().int().min(1).default(3),
        certExpiryWarnDays: z.number().int().min(1).default(30),
      })
      .strict()
      .default({
        timeouts: timeoutsSchema.parse({}),
        thresholds: thresholdsSchema.parse({}),
        haRecoverEveryMinutes: 5,
        breakerThreshold: 3,
        certExpiryWarnDays: 30,
      }),
    devices: z.array(deviceSchema).min(1, "a fleet needs at least one device"),
    clientHosts: z.array(clientHostSchema).default([]),
    haGroups: z.array(haGroupSchema).default([]),
    maintenanceWindows: z.array(maintenanceWindowSchema).default([]),
    approvals: approvalPolicySchema.default({ required: 2, expiresMinutes: 60 }),
    /** Who may do what, and the approvers' registered keys (identity-schema.ts). */
    identity: identitySchema.default(IDENTITY_DEFAULT),
    azure: z
      .object({
        subscriptionId: z.string().min(1).optional(),
        endpoint: z.string().url().default("https://management.azure.com"),
        tokenScope: z.string().default("https://management.azure.com/.default"),
        pollIntervalMs: z.number().int().min(1).default(10_000),
      })
      .strict()
      .optional(),
    // Managed HSM, Key Vault, keys and their consumers (src/config/azure-keys.ts).
    ...azureKeySections({ credentialRef, twin: () => parsingTwinFile }),
    // The web console (its origin, its OIDC client) and webhook notifications (src/config/console-schema.ts).
    ...consoleSections({ credentialRef, twin: () => parsingTwinFile }),
  })
  .strict()
  .superRefine((fleet, ctx) => {
    checkCrossReferences(fleet, ctx);
    checkAzureKeyReferences(fleet, ctx);
  });

export type Fleet = z.infer<typeof fleetSchema>;
export type Device = Fleet["devices"][number];
export type Partition = Device["partitions"][number];
export type ClientHost = Fleet["clientHosts"][number];
export type HaGroup = Fleet["haGroups"][number];
export type MaintenanceWindow = Fleet["maintenanceWindows"][number];
export type DeviceSim = z.infer<typeof deviceSimSchema>;
export type ClientHostSim = z.infer<typeof clientHostSimSchema>;
export type Timeouts = z.infer<typeof timeoutsSchema>;
export type ManagedHsmDecl = Fleet["managedHsms"][number];
export type KeyVaultDecl = Fleet["keyVaults"][number];
export type KeyDecl = Fleet["keys"][number];
export type CmkConsumer = Fleet["cmkConsumers"][number];

type Ctx = z.RefinementCtx;

function checkCrossReferences(fleet: Fleet, ctx: Ctx): void {
  checkIdentity(fleet.identity, fleet.twin, ctx);
  const devicesByName = new Map<string, Device>();
  const endpoints = new Map<string, number>();
  fleet.devices.forEach((dev, i) => {
    if (devicesByName.has(dev.name))
      ctx.addIssue({
        code: "custom",
        path: ["devices", i, "name"],
        message: `duplicate device name '${dev.name}'`,
      });
    devicesByName.set(dev.name, dev);
    const endpoint = `${dev.host}:${dev.port}`;
    const other = endpoints.get(endpoint);
    if (other !== undefined)
      ctx.addIssue({
        code: "custom",
        path: ["devices", i, "host"],
        message: `${endpoint} is already used by devices[${other}]`,
      });
    endpoints.set(endpoint, i);
    const labels = new Set<string>();
    dev.partitions.forEach((par, j) => {
      if (labels.has(par.label))
        ctx.addIssue({
          code: "custom",
          path: ["devices", i, "partitions", j, "label"],
          message: `duplicate partition label '${par.label}' on device '${dev.name}'`,
        });
      labels.add(par.label);
    });
  });

  const serials = new Map<string, string>();
  for (const dev of fleet.devices) {
    for (const s of [dev.serial, ...dev.partitions.map((p) => p.serial)]) {
      const owner = serials.get(s);
      if (owner && owner !== dev.name)
        ctx.addIssue({
          code: "custom",
          path: ["devices"],
          message: `serial ${s} appears on '${owner}' and '${dev.name}'`,
        });
      serials.set(s, dev.name);
    }
  }

  const hostsByName = new Map<string, ClientHost>();
  fleet.clientHosts.forEach((ch, i) => {
    if (hostsByName.has(ch.name) || devicesByName.has(ch.name))
      ctx.addIssue({
        code: "custom",
        path: ["clientHosts", i, "name"],
        message: `duplicate name '${ch.name}'`,
      });
    hostsByName.set(ch.name, ch);
    ch.assignments.forEach((a, j) => {
      const dev = devicesByName.get(a.device);
      if (!dev)
        ctx.addIssue({
          code: "custom",
          path: ["clientHosts", i, "assignments", j, "device"],
          message: `unknown device '${a.device}'`,
        });
      else
        a.partitions.forEach((p, k) => {
          if (!dev.partitions.some((par) => par.label === p))
            ctx.addIssue({
              code: "custom",
              path: ["clientHosts", i, "assignments", j, "partitions", k],
              message: `device '${a.device}' has no partition '${p}'`,
            });
        });
    });
  });

  const groupLabels = new Set<string>();
  fleet.haGroups.forEach((g, i) => {
    if (groupLabels.has(g.label))
      ctx.addIssue({
        code: "custom",
        path: ["haGroups", i, "label"],
        message: `duplicate HA group '${g.label}'`,
      });
    groupLabels.add(g.label);
    if (!hostsByName.has(g.clientHost))
      ctx.addIssue({
        code: "custom",
        path: ["haGroups", i, "clientHost"],
        message: `unknown client host '${g.clientHost}'`,
      });
    const seen = new Set<string>();
    g.members.forEach((m, j) => {
      const dev = devicesByName.get(m.device);
      if (!dev) {
        ctx.addIssue({
          code: "custom",
          path: ["haGroups", i, "members", j, "device"],
          message: `unknown device '${m.device}'`,
        });
        return;
      }
      if (!dev.partitions.some((p) => p.label === m.partition))
        ctx.addIssue({
          code: "custom",
          path: ["haGroups", i, "members", j, "partition"],
          message: `device '${m.device}' has no partition '${m.partition}'`,
        });
      const key = `${m.device}/${m.partition}`;
      if (seen.has(key))
        ctx.addIssue({
          code: "custom",
          path: ["haGroups", i, "members", j],
          message: `member ${key} listed twice`,
        });
      seen.add(key);
    });
  });

  const windowNames = new Set<string>();
  fleet.maintenanceWindows.forEach((w, i) => {
    if (windowNames.has(w.name))
      ctx.addIssue({
        code: "custom",
        path: ["maintenanceWindows", i, "name"],
        message: `duplicate window '${w.name}'`,
      });
    windowNames.add(w.name);
  });

  if (fleet.approvals.principals && fleet.approvals.principals.length < fleet.approvals.required)
    ctx.addIssue({
      code: "custom",
      path: ["approvals", "principals"],
      message: `lists ${fleet.approvals.principals.length} principals but ${fleet.approvals.required} distinct approvals are required`,
    });
}
