// The Key Vault twin: Managed HSM pools, Key Vault vaults, their keys and role assignments, Entra ID app
// registrations and Microsoft Graph, built from a twin fleet's `managedHsms`, `keyVaults`, `keys` and
// `cmkConsumers` (with their `sim:` blocks planting the actual state). ARM routes ride on the ARM twin's front door;
// the data plane, Entra and Graph share one HTTPS listener (server.ts). Unchanged Azure SDK clients talk to both.
//
// ASSUMPTIONS ([I]: what the twin answers where Microsoft's documentation does not say; a product feature must not
// depend on one of these being exactly so):
//  [I] Managed HSM delete and purge: 202 + Location `.../locations/{l}/managedHsmOperationResults/{id}`, 202 while
//      running, 204 when done.
//  [I] Purge of a purge-protected pool: 409 Conflict (Azure refuses it; the code and wording are the twin's).
//  [I] A deleted record not found: 404 ResourceNotFound.
//  [I] The Crypto Auditor role also reads role assignments and definitions (the audit identity's role).
//  [I] RBAC refusal: 403 `{error:{code:"AccessDenied",message:"Not authorized to access <action> on '<scope>'
//      (Activity ID: …)"}}` (the Azure CLI shows this code and text; punctuation assumed).
//  [I] A disabled oct-HSM key version refuses wrapKey as well as unwrapKey (Key Vault is observed refusing unwrap,
//      decrypt and sign on a disabled key with innererror KeyDisabled).
//  [I] Public network access disabled: 403 innererror ForbiddenByConnection, Key Vault's wording. Callers reach a
//      pool through its private endpoint when it has an approved one (all twin callers are "inside"); without one,
//      the public-network rules apply (IP rules; 403 ForbiddenByFirewall with Key Vault's documented wording).
//  [I] Data-plane call before activation: 403 innererror HsmNotActivated.
//  [I] A key without a rotation policy answers the default policy (Notify 30 days before expiry).
//  [I] Listing role assignments at `/` returns every assignment of the pool.
//  [I] The daemon's own identity is a fixed placeholder token (as on the ARM twin) that the data plane and Graph map
//      to one principal; it holds Crypto Auditor at `/` and Graph Application.Read.All. Applications get real
//      tokens from the twin's Entra ID.
//  [I] A soft-deleted or purged pool's host name stops answering (connection dropped).

import { randomUUID } from "node:crypto";
import type { Fleet } from "../../config/schema.ts";
import { resolveSecret } from "../../config/secret.ts";
import { KeyVaultArmRoutes } from "./arm-routes.ts";
import {
  DAEMON_PRINCIPAL,
  hsmUri,
  KeyVaultTwinModel,
  type KvStatusFault,
  ROLE_ID,
  type TwinManagedHsm,
} from "./model.ts";
import { type KeyVaultDataServer, type KvRequestLogEntry, startKeyVaultDataServer } from "./server.ts";

export { DAEMON_PRINCIPAL, ROLE_ID } from "./model.ts";
export { TWIN_DAEMON_TOKEN } from "./server.ts";
export type { KvRequestLogEntry, KvStatusFault };

/** The tenant twin pools and apps live in unless a consumer names its own. */
const TWIN_TENANT = "00000000-0000-4000-8000-00000000e1a1";
/** Object id of the twin pools' initial administrator. */
const TWIN_ADMIN = "00000000-0000-4000-8000-00000000ad11";

export interface KeyVaultTwin {
  model: KeyVaultTwinModel;
  armRoutes: KeyVaultArmRoutes;
  /** Resource groups the ARM twin must hold at start. */
  groups: string[];
  server: KeyVaultDataServer;
  /** Data-plane, Entra and Graph requests, in the order answered. */
  requestLog: KvRequestLogEntry[];
  caPem: string;
  setFault(fault: KvStatusFault): void;
  clearFaults(): void;
  /** Remove a principal's role assignments on a pool (all, or of one role). */
  revokeRole(hsm: string, principalId: string, roleName?: string): number;
  /** Disable (or enable) the current version of a key. */
  setKeyEnabled(hsm: string, key: string, enabled: boolean): void;
  setNetwork(
    hsm: string,
    rules: Partial<Pick<TwinManagedHsm, "publicNetworkAccess" | "privateEndpoint">> & {
      defaultAction?: "Allow" | "Deny";
      ipRules?: string[];
    },
  ): void;
  /** Billing and lifecycle as Azure would report them. */
  poolState(hsm: string): { state: TwinManagedHsm["state"]; billed: boolean; purgeProtection: boolean };
  stop(): Promise<void>;
}

/** Whether a fleet declares anything the Key Vault twin serves. */
export function fleetHasKeyVault(fleet: Fleet): boolean {
  return fleet.managedHsms.length > 0 || fleet.keyVaults.length > 0;
}

/**
 * Builds the twin's state from the fleet and starts its data-plane listener. Rewrites the fleet copy it is given:
 * each pool's `hsmUri` and `azureIdentity` (authority, Graph) point at the twin. The ARM side is served by the
 * ARM twin: pass `armRoutes` and `groups` to `startArmTwin({ providers })`.
 */
export async function startKeyVaultTwin(
  fleet: Fleet,
  opts: { now?: () => Date } = {},
): Promise<KeyVaultTwin> {
  const subscriptionId =
    fleet.azure?.subscriptionId ??
    /^\/subscriptions\/([^/]+)\//i.exec(
      fleet.managedHsms[0]?.resourceId ?? fleet.keyVaults[0]?.resourceId ?? "",
    )?.[1] ??
    "00000000-0000-4000-8000-000000000000";
  const tenantId = fleet.cmkConsumers[0]?.tenantId ?? TWIN_TENANT;
  const model = new KeyVaultTwinModel(subscriptionId, tenantId, opts.now);
  const groups = new Set<string>();
  const now = model.now().getTime();

  for (const decl of fleet.managedHsms) {
    const parts = /resourceGroups\/([^/]+)\/providers\/Microsoft\.KeyVault\/managedHSMs\/([^/]+)$/i.exec(
      decl.resourceId,
    );
    if (!parts) continue;
    groups.add(parts[1]!);
    const sim = decl.sim;
    const hsm = model.addHsm({
      subscriptionId,
      resourceGroup: parts[1]!,
      name: parts[2]!,
      location: decl.location,
      tenantId,
      activated: sim?.activated ?? true,
      purgeProtection: sim?.purgeProtection ?? decl.expected.purgeProtection,
      softDeleteRetentionDays: sim?.softDeleteRetentionDays ?? decl.expected.softDeleteRetentionDays,
      publicNetworkAccess: sim?.publicNetworkAccess ?? decl.expected.publicNetworkAccess,
      networkAcls: {
        defaultAction: sim?.networkAcls?.defaultAction ?? "Deny",
        bypass: "None",
        ipRules: sim?.networkAcls?.ipRules ?? [],
      },
      privateEndpoint: sim?.privateEndpoint ?? decl.expected.privateEndpoint,
      initialAdminObjectIds: [TWIN_ADMIN],
    });
    if (sim?.diagnostics !== false)
      hsm.diagnostics.push({
        name: "audit-events",
        workspaceId: decl.expected.diagnosticDestination,
        categories: ["AuditEvent"],
      });
    model.assign(hsm, "/", ROLE_ID["Managed HSM Crypto Auditor"]!, DAEMON_PRINCIPAL.objectId);

    for (const k of fleet.keys.filter((x) => x.managedHsm === decl.name)) {
      const policy = k.sim?.rotationPolicy ?? (k.autoRotate ? { rotateAfter: "P1Y" } : undefined);
      model.addKey(hsm, {
        name: k.name,
        type: k.type,
        size: k.size ?? 256,
        ...(k.curve ? { curve: k.curve } : {}),
        operations: k.operations,
        versions: k.sim?.versions ?? 1,
        disabled: k.sim?.disabled ?? false,
        ...(policy ? { rotationPolicy: policy } : {}),
      });
    }
    for (const u of sim?.undeclaredKeys ?? [])
      model.addKey(hsm, {
        name: u.name,
        type: u.type as "oct-HSM",
        size: u.size,
        operations: u.operations,
        versions: 1,
      });

    for (const c of fleet.cmkConsumers.filter(
      (x) => fleet.keys.find((k) => k.name === x.key)?.managedHsm === decl.name,
    )) {
      if (!model.apps.has(c.clientId.toLowerCase())) {
        const secret = resolveSecret(c.credentials.clientSecret, {
          literalAllowed: true,
          what: `cmkConsumers.${c.name}.credentials.clientSecret`,
        });
        const days = c.sim?.secretExpiresInDays ?? 365;
        model.addApp({
          tenantId: c.tenantId,
          clientId: c.clientId,
          objectId: c.principalId,
          displayName: c.application,
          secrets: [
            {
              value: secret.reveal(),
              keyId: randomUUID(),
              start: new Date(now - 30 * 86_400_000),
              end: new Date(now + days * 86_400_000),
            },
          ],
        });
      }
      if (c.sim?.noRoleAssignment) continue;
      const roleId = ROLE_ID[c.role];
      if (!roleId) throw new Error(`Key Vault twin: cmkConsumers.${c.name}: unknown role '${c.role}'`);
      model.assign(hsm, c.sim?.roleScope ?? c.scope ?? `/keys/${c.key}`, roleId, c.principalId);
    }
  }

  for (const v of fleet.keyVaults) {
    const parts = /resourceGroups\/([^/]+)\/providers\/Microsoft\.KeyVault\/vaults\/([^/]+)$/i.exec(
      v.resourceId,
    );
    if (!parts) continue;
    groups.add(parts[1]!);
    model.vaults.set(parts[2]!.toLowerCase(), {
      subscriptionId,
      resourceGroup: parts[1]!,
      name: parts[2]!,
      location: fleet.managedHsms[0]?.location ?? "westeurope",
      tenantId,
      sku: v.sku,
      softDelete: v.sim?.softDelete ?? v.expected.softDelete,
      purgeProtection: v.sim?.purgeProtection ?? v.expected.purgeProtection,
    });
  }

  const server = await startKeyVaultDataServer(model);
  for (const decl of fleet.managedHsms) {
    const name = /managedHSMs\/([^/]+)$/i.exec(decl.resourceId)?.[1] ?? decl.name;
    decl.hsmUri = hsmUri(model, name);
  }
  fleet.azureIdentity = { authorityHost: server.entraBase, graphEndpoint: server.graphBase };

  const armRoutes = new KeyVaultArmRoutes(model);
  return {
    model,
    armRoutes,
    groups: [...groups],
    server,
    requestLog: server.requestLog,
    caPem: server.caPem,
    setFault: (f) => model.setFault(f),
    clearFaults: () => model.clearFaults(),
    revokeRole: (hsm, principal, role) => model.revoke(hsm, principal, role),
    setKeyEnabled(hsm, key, enabled) {
      const k = model.hsm(hsm).keys.get(key.toLowerCase());
      if (!k) throw new Error(`Key Vault twin: no key '${key}' in '${hsm}'`);
      k.versions[k.versions.length - 1]!.enabled = enabled;
    },
    setNetwork(hsm, rules) {
      const h = model.hsm(hsm);
      if (rules.publicNetworkAccess) h.publicNetworkAccess = rules.publicNetworkAccess;
      if (rules.privateEndpoint !== undefined) h.privateEndpoint = rules.privateEndpoint;
      if (rules.defaultAction) h.networkAcls.defaultAction = rules.defaultAction;
      if (rules.ipRules) h.networkAcls.ipRules = [...rules.ipRules];
    },
    poolState(hsm) {
      const h = model.hsm(hsm);
      return { state: h.state, billed: model.billed(hsm), purgeProtection: h.purgeProtection };
    },
    stop: () => server.stop(),
  };
}
