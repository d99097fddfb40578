// Over 400 lines: one object by design (see below): a change made through one side is seen by the others at once.
// The Key Vault twin's state: Managed HSM pools (ARM view and data plane), their keys with real key material, local
// RBAC role assignments, network rules and activation; Key Vault vaults; diagnostic settings; Entra ID app
// registrations. One object, read by the ARM routes (arm-routes.ts), the data plane (data-plane.ts), the token
// issuer (entra.ts) and Microsoft Graph (graph.ts), so a change on one side is seen by the others at once (a role
// revoked is refused at the next wrapKey; a pool deleted through ARM is gone from the data plane).
import { createHash, generateKeyPairSync, type KeyObject, randomBytes, randomUUID } from "node:crypto";

export const DAEMON_PRINCIPAL = {
  /** Object id the twin gives the daemon's own identity (the placeholder token, see ASSUMPTIONS in index.ts). */
  objectId: "00000000-0000-4000-8000-0000000da3a0",
  clientId: "00000000-0000-4000-8000-0000000da3a1",
};

/** Managed HSM local RBAC built-in roles and the data actions the twin grants them ([I] where the docs are silent). */
export const ROLE_DEFINITIONS: { id: string; roleName: string; dataActions: string[] }[] = [
  {
    id: "a290e904-7015-4bba-90c8-60543313cdb4",
    roleName: "Managed HSM Administrator",
    dataActions: [
      "Microsoft.KeyVault/managedHsm/securitydomain/*",
      "Microsoft.KeyVault/managedHsm/backup/*",
      "Microsoft.KeyVault/managedHsm/restore/*",
      "Microsoft.KeyVault/managedHsm/roleAssignments/*",
      "Microsoft.KeyVault/managedHsm/roleDefinitions/*",
    ],
  },
  {
    id: "515eb02d-2335-4d2d-92f2-b1cbdf9c3778",
    roleName: "Managed HSM Crypto Officer",
    dataActions: [
      "Microsoft.KeyVault/managedHsm/roleAssignments/*",
      "Microsoft.KeyVault/managedHsm/roleDefinitions/read/action",
      "Microsoft.KeyVault/managedHsm/keys/deletedKeys/*",
      "Microsoft.KeyVault/managedHsm/keys/export/action",
      "Microsoft.KeyVault/managedHsm/keys/read/action",
    ],
  },
  {
    id: "21dbd100-6940-42c2-9190-5d6cb909625b",
    roleName: "Managed HSM Crypto User",
    dataActions: [
      "Microsoft.KeyVault/managedHsm/keys/read/action",
      "Microsoft.KeyVault/managedHsm/keys/write/action",
      "Microsoft.KeyVault/managedHsm/keys/create",
      "Microsoft.KeyVault/managedHsm/keys/delete",
      "Microsoft.KeyVault/managedHsm/keys/encrypt/action",
      "Microsoft.KeyVault/managedHsm/keys/decrypt/action",
      "Microsoft.KeyVault/managedHsm/keys/wrap/action",
      "Microsoft.KeyVault/managedHsm/keys/unwrap/action",
      "Microsoft.KeyVault/managedHsm/keys/sign/action",
      "Microsoft.KeyVault/managedHsm/keys/verify/action",
      "Microsoft.KeyVault/managedHsm/keys/backup/action",
      "Microsoft.KeyVault/managedHsm/keys/restore/action",
      "Microsoft.KeyVault/managedHsm/keys/import/action",
      "Microsoft.KeyVault/managedHsm/keys/deletedKeys/read/action",
      "Microsoft.KeyVault/managedHsm/rng/action",
    ],
  },
  {
    id: "4bd23610-cdcf-4971-bdee-bdc562cc28e4",
    roleName: "Managed HSM Policy Administrator",
    dataActions: [
      "Microsoft.KeyVault/managedHsm/roleAssignments/*",
      "Microsoft.KeyVault/managedHsm/roleDefinitions/read/action",
    ],
  },
  {
    id: "2c18b078-7c48-4d3a-af88-5a3a1b3f82b3",
    roleName: "Managed HSM Crypto Auditor",
    // [I] The built-in role grants reading key attributes; the twin also lets it read role assignments and
    // definitions (what an auditor needs, and what lunafleet's audit identity is meant to hold).
    dataActions: [
      "Microsoft.KeyVault/managedHsm/keys/read/action",
      "Microsoft.KeyVault/managedHsm/keys/deletedKeys/read/action",
      "Microsoft.KeyVault/managedHsm/roleAssignments/read/action",
      "Microsoft.KeyVault/managedHsm/roleDefinitions/read/action",
    ],
  },
  {
    id: "33413926-3206-4cdd-b39a-83574fe37a17",
    roleName: "Managed HSM Crypto Service Encryption User",
    dataActions: [
      "Microsoft.KeyVault/managedHsm/keys/read/action",
      "Microsoft.KeyVault/managedHsm/keys/wrap/action",
      "Microsoft.KeyVault/managedHsm/keys/unwrap/action",
    ],
  },
];

export const ROLE_ID = Object.fromEntries(ROLE_DEFINITIONS.map((r) => [r.roleName, r.id])) as Record<
  string,
  string
>;

export interface TwinKeyVersion {
  version: string;
  enabled: boolean;
  created: Date;
  expires?: Date;
  /** AES key (oct-HSM) or RSA/EC private key. Never leaves the twin: only wrap/unwrap results do. */
  material: Buffer | KeyObject;
}

export interface TwinKey {
  name: string;
  type: "oct-HSM" | "RSA-HSM" | "EC-HSM";
  size: number;
  curve?: string;
  operations: string[];
  versions: TwinKeyVersion[];
  rotationPolicy?: { rotateAfter?: string; expiresIn?: string };
}

export interface TwinRoleAssignment {
  name: string;
  scope: string;
  roleDefinitionId: string;
  principalId: string;
}

export type PoolState = "active" | "soft-deleted" | "purged";

export interface TwinManagedHsm {
  subscriptionId: string;
  resourceGroup: string;
  name: string;
  location: string;
  tenantId: string;
  activated: boolean;
  purgeProtection: boolean;
  softDeleteRetentionDays: number;
  publicNetworkAccess: "Enabled" | "Disabled";
  networkAcls: { defaultAction: "Allow" | "Deny"; bypass: "AzureServices" | "None"; ipRules: string[] };
  privateEndpoint: boolean;
  provisioningState: string;
  state: PoolState;
  deletionDate?: Date;
  scheduledPurgeDate?: Date;
  keys: Map<string, TwinKey>;
  roleAssignments: TwinRoleAssignment[];
  diagnostics: { name: string; workspaceId: string; categories: string[] }[];
  initialAdminObjectIds: string[];
}

export interface TwinVault {
  subscriptionId: string;
  resourceGroup: string;
  name: string;
  location: string;
  tenantId: string;
  sku: "standard" | "premium";
  softDelete: boolean;
  purgeProtection: boolean;
}

export interface TwinApp {
  tenantId: string;
  clientId: string;
  objectId: string;
  displayName: string;
  secrets: { value: string; keyId: string; start: Date; end: Date }[];
}

export interface KvOperation {
  id: string;
  kind: "mhsm-delete" | "mhsm-purge";
  hsm: string;
  location: string;
  pollsLeft: number;
  done?: { ok: true } | { ok: false; status: number; code: string; message: string };
}

/** Faults the data plane, Graph, Entra or the Key Vault ARM routes answer with (429/5xx/403), `count` times. */
export interface KvStatusFault {
  on: "data-plane" | "arm" | "graph" | "entra";
  status: number;
  count: number;
  /** Only requests whose path matches (case-insensitive substring); default any. */
  path?: string;
  retryAfterSeconds?: number;
  code?: string;
  message?: string;
}

const DAY_MS = 86_400_000;

export class KeyVaultTwinModel {
  readonly hsms = new Map<string, TwinManagedHsm>();
  readonly vaults = new Map<string, TwinVault>();
  readonly apps = new Map<string, TwinApp>();
  readonly operations = new Map<string, KvOperation>();
  readonly faults: KvStatusFault[] = [];
  /** LRO polls answered "running" before an operation completes. */
  asyncPolls = 1;
  /** `:<port>` of the data-plane server once it listens ("" before): part of every pool's hsmUri. */
  dataPlanePort = "";
  /**
   * Sensitive values the twin handed out or saw (access tokens it issued, wrap/unwrap inputs and outputs), kept so
   * tests can prove none of them reaches a log, evidence, job data or output. Key material is in each key version.
   */
  readonly sensitive: { tokens: string[]; wrapValues: string[] } = { tokens: [], wrapValues: [] };
  private opCounter = 0;

  constructor(
    readonly subscriptionId: string,
    readonly tenantId: string,
    readonly now: () => Date = () => new Date(),
  ) {}

  addHsm(
    h: Omit<TwinManagedHsm, "state" | "keys" | "roleAssignments" | "diagnostics" | "provisioningState">,
  ) {
    const hsm: TwinManagedHsm = {
      ...h,
      state: "active",
      provisioningState: h.activated ? "Succeeded" : "Succeeded",
      keys: new Map(),
      roleAssignments: [],
      diagnostics: [],
    };
    // Every pool starts with its initial administrators at `/` (what creating one with --administrators does).
    for (const admin of h.initialAdminObjectIds)
      this.assign(hsm, "/", ROLE_ID["Managed HSM Administrator"]!, admin);
    this.hsms.set(h.name.toLowerCase(), hsm);
    return hsm;
  }

  hsm(name: string): TwinManagedHsm {
    const h = this.hsms.get(name.toLowerCase());
    if (!h) throw new Error(`Key Vault twin: unknown managed HSM '${name}'`);
    return h;
  }

  assign(
    hsm: TwinManagedHsm,
    scope: string,
    roleDefinitionId: string,
    principalId: string,
  ): TwinRoleAssignment {
    const a = { name: randomUUID(), scope, roleDefinitionId, principalId };
    hsm.roleAssignments.push(a);
    return a;
  }

  /** Remove every assignment of `principalId` (optionally only of one role); returns how many went. */
  revoke(hsmName: string, principalId: string, roleName?: string): number {
    const hsm = this.hsm(hsmName);
    const before = hsm.roleAssignments.length;
    const roleId = roleName ? ROLE_ID[roleName] : undefined;
    hsm.roleAssignments = hsm.roleAssignments.filter(
      (a) =>
        !(
          a.principalId.toLowerCase() === principalId.toLowerCase() &&
          (!roleId || a.roleDefinitionId === roleId)
        ),
    );
    return before - hsm.roleAssignments.length;
  }

  /** Creates a key with `versions` versions (the last is current), real key material in each. */
  addKey(
    hsm: TwinManagedHsm,
    spec: Omit<TwinKey, "versions"> & { versions: number; disabled?: boolean },
  ): TwinKey {
    const now = this.now().getTime();
    const versions: TwinKeyVersion[] = [];
    for (let i = 0; i < spec.versions; i++) {
      const created = new Date(now - (spec.versions - 1 - i) * 30 * DAY_MS - DAY_MS);
      const v: TwinKeyVersion = {
        version: randomBytes(16).toString("hex"),
        enabled: true,
        created,
        material: newMaterial(spec.type, spec.size, spec.curve),
      };
      const exp = spec.rotationPolicy?.expiresIn;
      if (exp) v.expires = new Date(created.getTime() + durationMs(exp));
      versions.push(v);
    }
    if (spec.disabled) versions[versions.length - 1]!.enabled = false;
    const { versions: _n, disabled: _d, ...rest } = spec;
    const key: TwinKey = { ...rest, versions };
    hsm.keys.set(spec.name.toLowerCase(), key);
    return key;
  }

  addApp(app: Omit<TwinApp, "tenantId"> & { tenantId?: string }): TwinApp {
    const a: TwinApp = { tenantId: app.tenantId ?? this.tenantId, ...app };
    this.apps.set(a.clientId.toLowerCase(), a);
    return a;
  }

  // ---- faults ----

  setFault(f: KvStatusFault): void {
    this.faults.push({ ...f });
  }

  clearFaults(): void {
    this.faults.length = 0;
  }

  takeFault(on: KvStatusFault["on"], path: string): KvStatusFault | undefined {
    const f = this.faults.find(
      (x) => x.on === on && (!x.path || path.toLowerCase().includes(x.path.toLowerCase())),
    );
    if (!f) return undefined;
    f.count -= 1;
    if (f.count <= 0) this.faults.splice(this.faults.indexOf(f), 1);
    return f;
  }

  // ---- ARM lifecycle ----

  /** Starts the delete of an active pool; returns the operation (a repeated DELETE re-attaches to it). */
  startDelete(hsm: TwinManagedHsm): KvOperation {
    const running = [...this.operations.values()].find(
      (o) => o.hsm === hsm.name && !o.done && o.kind === "mhsm-delete",
    );
    if (running) return running;
    hsm.provisioningState = "Deleting";
    return this.startOperation("mhsm-delete", hsm);
  }

  startPurge(hsm: TwinManagedHsm): KvOperation {
    const running = [...this.operations.values()].find(
      (o) => o.hsm === hsm.name && !o.done && o.kind === "mhsm-purge",
    );
    if (running) return running;
    return this.startOperation("mhsm-purge", hsm);
  }

  poll(op: KvOperation): KvOperation["done"] | undefined {
    if (op.done) return op.done;
    if (op.pollsLeft > 0) {
      op.pollsLeft -= 1;
      return undefined;
    }
    const hsm = this.hsm(op.hsm);
    if (op.kind === "mhsm-delete") this.softDelete(hsm);
    else hsm.state = "purged";
    op.done = { ok: true };
    return op.done;
  }

  /** What deleting a pool (or its resource group) does: soft-deleted, billed, purgeable only after its date. */
  softDelete(hsm: TwinManagedHsm): void {
    if (hsm.state !== "active") return;
    const now = this.now();
    hsm.state = "soft-deleted";
    hsm.provisioningState = "Deleted";
    hsm.deletionDate = now;
    hsm.scheduledPurgeDate = new Date(now.getTime() + hsm.softDeleteRetentionDays * DAY_MS);
  }

  /** The resource group was deleted around its pools and vaults (arm/model.ts calls this). */
  groupDeleted(resourceGroup: string): void {
    for (const h of this.hsms.values())
      if (h.resourceGroup.toLowerCase() === resourceGroup.toLowerCase()) this.softDelete(h);
    for (const [k, v] of this.vaults)
      if (v.resourceGroup.toLowerCase() === resourceGroup.toLowerCase()) this.vaults.delete(k);
  }

  /** Resources the generic `resources` list shows in a group (active pools and vaults). */
  genericResources(resourceGroup: string): { id: string; name: string; type: string; location: string }[] {
    const rg = resourceGroup.toLowerCase();
    return [
      ...[...this.hsms.values()]
        .filter((h) => h.state === "active" && h.resourceGroup.toLowerCase() === rg)
        .map((h) => ({
          id: mhsmId(h),
          name: h.name,
          type: "Microsoft.KeyVault/managedHSMs",
          location: h.location,
        })),
      ...[...this.vaults.values()]
        .filter((v) => v.resourceGroup.toLowerCase() === rg)
        .map((v) => ({
          id: vaultId(v),
          name: v.name,
          type: "Microsoft.KeyVault/vaults",
          location: v.location,
        })),
    ];
  }

  /** Billing, as Azure sees it: an active or soft-deleted pool is billed; a purged one is not. */
  billed(name: string): boolean {
    return this.hsm(name).state !== "purged";
  }

  private startOperation(kind: KvOperation["kind"], hsm: TwinManagedHsm): KvOperation {
    this.opCounter += 1;
    const id = `${randomUUID()}`;
    const op: KvOperation = { id, kind, hsm: hsm.name, location: hsm.location, pollsLeft: this.asyncPolls };
    this.operations.set(id, op);
    return op;
  }
}

/** The pool's data-plane URI on the twin (`https://<name>.managedhsm.localhost:<port>/`). */
export function hsmUri(model: { dataPlanePort: string }, name: string): string {
  return `https://${name.toLowerCase()}.managedhsm.localhost${model.dataPlanePort}/`;
}

export function mhsmId(h: { subscriptionId: string; resourceGroup: string; name: string }): string {
  return `/subscriptions/${h.subscriptionId}/resourceGroups/${h.resourceGroup}/providers/Microsoft.KeyVault/managedHSMs/${h.name}`;
}

export function vaultId(v: { subscriptionId: string; resourceGroup: string; name: string }): string {
  return `/subscriptions/${v.subscriptionId}/resourceGroups/${v.resourceGroup}/providers/Microsoft.KeyVault/vaults/${v.name}`;
}

function newMaterial(type: TwinKey["type"], size: number, curve?: string): Buffer | KeyObject {
  if (type === "oct-HSM") return randomBytes(size / 8);
  if (type === "RSA-HSM") return generateKeyPairSync("rsa", { modulusLength: size }).privateKey;
  const named = { "P-256": "prime256v1", "P-384": "secp384r1", "P-521": "secp521r1", "P-256K": "secp256k1" };
  return generateKeyPairSync("ec", { namedCurve: named[(curve ?? "P-256") as keyof typeof named] })
    .privateKey;
}

/** ISO 8601 duration → milliseconds (years 365 days, months 30 days, as Key Vault's rotation arithmetic is coarse). */
export function durationMs(iso: string): number {
  const m = /^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$/.exec(
    iso,
  );
  if (!m) throw new Error(`not an ISO 8601 duration: ${iso}`);
  const n = (i: number) => Number(m[i] ?? 0);
  return (n(1) * 365 + n(2) * 30 + n(3) * 7 + n(4)) * DAY_MS + n(5) * 3_600_000 + n(6) * 60_000 + n(7) * 1000;
}

/** A stable short digest (for ids the twin derives from names). */
export function digest(s: string): string {
  return createHash("sha256").update(s).digest("hex").slice(0, 32);
}
