// mhsm-audit: what each Managed HSM pool really is, against what the fleet file declares. Findings, never changes.
//
//   read-arm:<pool>         ARM: provisioning, activation (security domain), soft delete and retention, purge
//                           protection, public network access and rules, private endpoint connections, regions,
//                           location; diagnostic settings (AuditEvent to the declared destination). A pool that
//                           answers 404 is looked for among the soft-deleted ones (still billed).
//   read-data-plane:<pool>  as the daemon's identity: keys (type, size, operations, enabled, expiry, versions,
//                           rotation policy), role definitions and assignments. Skipped for a pool that is not
//                           activated (its data plane is unusable). A 403 is a finding naming the missing role.
//   findings                keys against declarations (an undeclared key has no owner), broad key-using roles at `/`
//                           or `/keys`, each consumer's required role missing or wider than its key.
import { z } from "zod";
import { KeyVaultOperationError } from "../src/azure/key-vault-errors.ts";
import type {
  DeletedManagedHsmInfo,
  DiagnosticSettingInfo,
  ManagedHsmInfo,
} from "../src/azure/managed-hsm.ts";
import type { HsmKeyInfo, RoleAssignmentInfo, RoleDefinitionInfo } from "../src/azure/mhsm-data-plane.ts";
import type { Fleet } from "../src/config/schema.ts";
import { findingsVerdict } from "../src/engine/outcome.ts";
import { defineRunbook, type Step } from "../src/engine/runbook.ts";
import type { StepContext } from "../src/engine/step-context.ts";
import type { FactStatus, JsonValue } from "../src/facts/model.ts";
import {
  ARM_FACTS,
  azureCommand,
  DATA_PLANE_FACTS,
  factRefs,
  findingLine,
  type KvFinding,
  managedHsm,
  observationsFor,
  poolSubject,
  resolveKvTarget,
} from "./lib/key-vault.ts";
import { armFindings, keyFindings, roleFindings } from "./lib/mhsm-rules.ts";

const params = z
  .object({
    /** A managed HSM (fleet name) or `fleet`. */
    target: z.string().min(1).default("fleet"),
    /** A key expiring within this many days is a finding. */
    keyExpiryWarnDays: z.number().int().min(1).max(365).default(30),
  })
  .strict();
type Params = z.output<typeof params>;

export interface ArmRead {
  pool: string;
  hsm: ManagedHsmInfo | null;
  deleted: DeletedManagedHsmInfo | null;
  diagnostics: DiagnosticSettingInfo[] | null;
  readAt: string;
}

export interface DataPlaneRead {
  pool: string;
  /** Why the data plane was not (fully) read: not activated, or what the daemon identity was refused. */
  skipped?: string;
  refused?: {
    operation: string;
    missingRole: string | null;
    missingAction: string | null;
    message: string;
  }[];
  keys: HsmKeyInfo[] | null;
  definitions: RoleDefinitionInfo[] | null;
  assignments: RoleAssignmentInfo[] | null;
  readAt: string;
}

export interface AuditResult {
  pools: { pool: string; arm: ArmRead; dataPlane: DataPlaneRead }[];
  findings: KvFinding[];
}

const readArmStep = {
  id: "read-arm",
  title: (pool) => `Read ${pool} from Azure Resource Manager (properties, diagnostic settings)`,
  kind: "read",
  forEach: "azure",
  observes: (_p, fleet, pool) => factRefs(poolSubject(fleet, pool!), ARM_FACTS),
  commands: (_p, fleet, pool) => {
    const h = managedHsm(fleet, pool!);
    return [
      azureCommand(h.resourceId, "GET (properties, securityDomainProperties)"),
      azureCommand(h.resourceId, "GET providers/Microsoft.Insights/diagnosticSettings"),
      azureCommand(`deletedManagedHSMs/${h.location}/${h.name}`, "GET (only when the pool answers 404)"),
    ];
  },
  async run(ctx): Promise<ArmRead> {
    const decl = managedHsm(ctx.fleet, ctx.target!);
    const o = { signal: ctx.signal };
    const hsm = await ctx.keyVault.arm.getManagedHsm(decl.resourceId, o);
    const deleted = hsm ? null : await ctx.keyVault.arm.getDeletedManagedHsm(decl.name, decl.location, o);
    const diagnostics = hsm ? await ctx.keyVault.arm.listDiagnosticSettings(decl.resourceId, o) : null;
    await ctx.facts.observe(
      ...observationsFor(
        poolSubject(ctx.fleet, decl.name),
        ARM_FACTS,
        armFindings(decl, hsm, deleted, diagnostics),
        (fact) => armSeen(fact, hsm, deleted, diagnostics),
      ),
    );
    return { pool: decl.name, hsm, deleted, diagnostics, readAt: new Date().toISOString() };
  },
} satisfies Step<Params>;

const readDataPlaneStep = {
  id: "read-data-plane",
  title: (pool) => `Read ${pool}'s keys, rotation policies and role assignments as the daemon's identity`,
  kind: "read",
  forEach: "azure",
  observes: (_p, fleet, pool) => factRefs(poolSubject(fleet, pool!), DATA_PLANE_FACTS),
  commands: (_p, fleet, pool) => {
    const uri = managedHsm(fleet, pool!).hsmUri;
    return [
      azureCommand(uri, "GET keys, each key, its versions and rotation policy (skipped unless activated)"),
      azureCommand(uri, "GET providers/Microsoft.Authorization/roleDefinitions, roleAssignments"),
    ];
  },
  async run(ctx) {
    const read = await readDataPlane(ctx);
    const decl = managedHsm(ctx.fleet, read.pool);
    const declaredKeys = ctx.fleet.keys.filter((k) => k.managedHsm === decl.name);
    const consumers = ctx.fleet.cmkConsumers.filter((c) => declaredKeys.some((k) => k.name === c.key));
    await ctx.facts.observe(
      ...observationsFor(
        poolSubject(ctx.fleet, decl.name),
        DATA_PLANE_FACTS,
        dataPlaneFindings(decl.name, read, ctx.fleet, ctx.params.keyExpiryWarnDays, new Date()),
        (fact) => dataPlaneSeen(fact, read, consumers.length),
      ),
    );
    return read;
  },
} satisfies Step<Params>;

const findingsStep = {
  id: "findings",
  title: "Compare with the fleet file: pool settings, keys, role assignments",
  kind: "read",
  async run(ctx): Promise<AuditResult> {
    const now = new Date();
    const pools = (ctx.targets.azure ?? []).map((pool) => ({
      pool,
      arm: ctx.resultOf(readArmStep, pool),
      dataPlane: ctx.resultOf(readDataPlaneStep, pool),
    }));
    const findings = pools.flatMap(({ pool, arm, dataPlane }) => [
      ...armFindings(managedHsm(ctx.fleet, pool), arm.hsm, arm.deleted, arm.diagnostics),
      ...dataPlaneFindings(pool, dataPlane, ctx.fleet, ctx.params.keyExpiryWarnDays, now),
    ]);
    return { pools, findings };
  },
} satisfies Step<Params>;

export const mhsmAudit = defineRunbook({
  name: "mhsm-audit",
  description:
    "Audit Managed HSM pools against the fleet file: activation, soft delete, purge protection, network, diagnostics, keys, role assignments (findings only)",
  params,
  targets(p, fleet) {
    const t = resolveKvTarget(fleet, p.target, ["fleet", "managedHsm"]);
    return { devices: [], clientHosts: [], azure: t.managedHsms };
  },
  verdict: ({ resultOf }) => findingsVerdict((resultOf(findingsStep)?.findings ?? []).map(findingLine)),
  steps: [readArmStep, readDataPlaneStep, findingsStep],
});

async function readDataPlane(ctx: StepContext<Params>): Promise<DataPlaneRead> {
  const decl = managedHsm(ctx.fleet, ctx.target!);
  const arm = ctx.resultOf(readArmStep, decl.name);
  const base = {
    pool: decl.name,
    keys: null,
    definitions: null,
    assignments: null,
    readAt: new Date().toISOString(),
  };
  if (!arm.hsm) return { ...base, skipped: "the pool is not in Azure (see read-arm)" };
  if (arm.hsm.activationStatus !== "Active")
    return {
      ...base,
      skipped: `not activated (${arm.hsm.activationStatus ?? "unknown"}): no data plane to read`,
    };
  const o = { signal: ctx.signal };
  const refused: NonNullable<DataPlaneRead["refused"]> = [];
  // A 403 is a finding (the daemon's identity lacks a role), never a reason to stop the other reads.
  const attempt = async <T>(operation: string, read: () => Promise<T>): Promise<T | null> => {
    try {
      return await read();
    } catch (err) {
      if (err instanceof KeyVaultOperationError && err.failure.layer === "role") {
        refused.push({
          operation,
          missingRole: err.failure.missingRole ?? null,
          missingAction: err.failure.missingAction ?? null,
          message: err.failure.message,
        });
        return null;
      }
      throw err;
    }
  };
  const keys = await attempt("listing keys", () => ctx.keyVault.data.listKeys(decl.hsmUri, o));
  const definitions = await attempt("reading role definitions", () =>
    ctx.keyVault.data.listRoleDefinitions(decl.hsmUri, o),
  );
  const assignments = definitions
    ? await attempt("reading role assignments", () =>
        ctx.keyVault.data.listRoleAssignments(decl.hsmUri, definitions, o),
      )
    : null;
  return { ...base, keys, definitions, assignments, ...(refused.length > 0 ? { refused } : {}) };
}

/** Data-plane findings of one pool: what the daemon identity was refused, keys, role assignments. */
function dataPlaneFindings(
  pool: string,
  dataPlane: DataPlaneRead,
  fleet: Fleet,
  warnDays: number,
  now: Date,
): KvFinding[] {
  const decl = managedHsm(fleet, pool);
  const declaredKeys = fleet.keys.filter((k) => k.managedHsm === pool);
  const consumers = fleet.cmkConsumers.filter((c) => declaredKeys.some((k) => k.name === c.key));
  return [
    ...(dataPlane.refused ?? []).map(
      (r): KvFinding => ({
        subject: pool,
        check: "access",
        message: `the daemon's identity was refused ${r.operation}: it needs ${r.missingRole ?? "a data-plane role"}${r.missingAction ? ` (${r.missingAction})` : ""}`,
      }),
    ),
    ...(dataPlane.keys ? keyFindings(pool, declaredKeys, dataPlane.keys, now, warnDays) : []),
    ...(dataPlane.assignments && dataPlane.definitions
      ? roleFindings(decl, consumers, dataPlane.assignments, dataPlane.definitions)
      : []),
  ];
}

/** What was seen of an ARM fact (the state model's summary and value). */
function armSeen(
  fact: string,
  hsm: ManagedHsmInfo | null,
  deleted: DeletedManagedHsmInfo | null,
  diagnostics: DiagnosticSettingInfo[] | null,
): { status?: FactStatus; summary: string; value?: JsonValue } {
  if (fact === "lifecycle")
    return hsm
      ? { summary: "active", value: { state: "active", provisioningState: hsm.provisioningState } }
      : deleted
        ? {
            summary: `soft-deleted, billed until ${deleted.scheduledPurgeDate ?? "?"}`,
            value: { state: "soft-deleted", scheduledPurgeDate: deleted.scheduledPurgeDate },
          }
        : { summary: "not found", value: { state: "not found" } };
  if (!hsm) return { status: "unknown", summary: "not in Azure" };
  switch (fact) {
    case "activation":
      return {
        summary: hsm.activationStatus ?? "unknown",
        value: { activationStatus: hsm.activationStatus },
      };
    case "declaration":
      return { summary: `${hsm.location ?? "?"}, ${hsm.hsmUri ?? "?"}` };
    case "soft-delete":
      return {
        summary: `${hsm.softDeleteEnabled === false ? "off" : "on"}, ${hsm.softDeleteRetentionDays ?? "?"} days`,
        value: { enabled: hsm.softDeleteEnabled, retentionDays: hsm.softDeleteRetentionDays },
      };
    case "purge-protection":
      return { summary: hsm.purgeProtection ? "on" : "off", value: { on: hsm.purgeProtection } };
    case "network": {
      const approved = hsm.privateEndpointConnections.filter((c) => c.status === "Approved").length;
      return {
        summary: `public network ${hsm.publicNetworkAccess ?? "?"}, default ${hsm.networkAcls?.defaultAction ?? "?"}, ${approved} approved private endpoint(s)`,
        value: { publicNetworkAccess: hsm.publicNetworkAccess, privateEndpoints: approved },
      };
    }
    case "regions":
      return {
        summary:
          hsm.regions.map((r) => `${r.name ?? "?"}:${r.provisioningState ?? "?"}`).join(", ") ||
          "primary only",
      };
    case "diagnostics": {
      const logs = (diagnostics ?? []).filter((d) => d.enabledLogs.length > 0);
      return {
        summary:
          logs.length > 0
            ? `audit logs to ${logs.map((d) => d.workspaceId ?? d.storageAccountId ?? d.eventHubAuthorizationRuleId ?? d.name).join(", ")}`
            : "no audit logs",
        value: { auditLogs: logs.length > 0 },
      };
    }
    default:
      return { summary: "seen" };
  }
}

function dataPlaneSeen(
  fact: string,
  read: DataPlaneRead,
  consumers: number,
): { status?: FactStatus; summary: string; value?: JsonValue } {
  if (read.skipped) return { status: "unknown", summary: read.skipped };
  switch (fact) {
    case "keys":
      return read.keys
        ? { summary: `${read.keys.length} key(s)`, value: { keys: read.keys.map((k) => k.name) } }
        : { status: "unknown", summary: "not readable (see data-plane-access)" };
    case "roles":
      return read.assignments
        ? {
            summary: `${read.assignments.length} role assignment(s), ${consumers} consumer(s)`,
            value: { assignments: read.assignments.length },
          }
        : { status: "unknown", summary: "not readable (see data-plane-access)" };
    default:
      return { summary: read.refused?.length ? "refused" : "keys and role assignments readable" };
  }
}
