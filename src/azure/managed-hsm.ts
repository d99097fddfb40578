// The ARM side of Managed HSM and Key Vault, as the runbooks need it: read a Managed HSM (activation, soft delete,
// purge protection, network, private endpoints, regions), its diagnostic settings, a vault; delete a Managed HSM and
// see it soft-deleted; purge it only when purge protection allows; and the resource-group guard.
//
// Rules kept here (reference/azure.md §7; learn.microsoft.com/azure/key-vault/managed-hsm/recovery):
// - a deleted Managed HSM is SOFT-deleted: it stays (and is billed) under deletedManagedHSMs until purged or until its
//   scheduled purge date. Only a 404 from both the HSM and its deleted record proves it is gone;
// - a purge is refused here while the deleted HSM has purge protection (Azure refuses it too);
// - a resource group is never deleted while it holds a Managed HSM, active OR soft-deleted (deleting the group does not
//   end the billing of the soft-deleted pool).
import type { DeletedManagedHsm, ManagedHsm, Vault } from "@azure/arm-keyvault";
import { isRestError } from "@azure/core-rest-pipeline";
import type { AzureSettings } from "./clients.ts";
import type { KeyVaultClients } from "./key-vault-clients.ts";
import { classifyFailure, KeyVaultChangeRefused, KeyVaultOperationError } from "./key-vault-errors.ts";
import { MANAGED_HSM_TYPE, parseKeyVaultId, parseManagedHsmId } from "./key-vault-ids.ts";

export interface CallOptions {
  signal?: AbortSignal;
}

export interface ManagedHsmInfo {
  id: string;
  name: string;
  resourceGroup: string;
  location: string | null;
  sku: string | null;
  provisioningState: string | null;
  statusMessage: string | null;
  hsmUri: string | null;
  /** `securityDomainProperties.activationStatus`: Active, NotActivated, Failed, Unknown. */
  activationStatus: string | null;
  activationStatusMessage: string | null;
  softDeleteEnabled: boolean | null;
  softDeleteRetentionDays: number | null;
  purgeProtection: boolean;
  publicNetworkAccess: string | null;
  networkAcls: {
    defaultAction: string | null;
    bypass: string | null;
    ipRules: string[];
    virtualNetworkRules: string[];
    serviceTags: string[];
  } | null;
  privateEndpointConnections: {
    id: string | null;
    status: string | null;
    provisioningState: string | null;
  }[];
  regions: { name: string | null; isPrimary: boolean; provisioningState: string | null }[];
}

export interface DeletedManagedHsmInfo {
  name: string;
  location: string | null;
  mhsmId: string | null;
  deletionDate: string | null;
  scheduledPurgeDate: string | null;
  purgeProtectionEnabled: boolean;
}

export interface VaultInfo {
  id: string;
  name: string;
  sku: string | null;
  softDeleteEnabled: boolean | null;
  softDeleteRetentionDays: number | null;
  purgeProtection: boolean;
  publicNetworkAccess: string | null;
  rbacAuthorization: boolean;
}

export interface DiagnosticSettingInfo {
  name: string;
  workspaceId: string | null;
  storageAccountId: string | null;
  eventHubAuthorizationRuleId: string | null;
  /** Log categories (or category groups) enabled. */
  enabledLogs: string[];
}

export interface ResourceGroupManagedHsms {
  resourceGroup: string;
  /** From the typed `managedHsms.listByResourceGroup`. */
  active: string[];
  /** Soft-deleted Managed HSMs whose id was in this group (from the subscription's deleted list). */
  softDeleted: string[];
}

export class ManagedHsmGateway {
  constructor(private readonly clients: KeyVaultClients) {}

  get settings(): AzureSettings {
    return this.clients.settings.arm;
  }

  /** The Managed HSM, or null when ARM answers 404 for it (deleted, soft-deleted or never there). */
  async getManagedHsm(resourceId: string, o: CallOptions = {}): Promise<ManagedHsmInfo | null> {
    const id = this.parse(resourceId);
    try {
      return toInfo(await this.clients.management.managedHsms.get(id.resourceGroup, id.name, abort(o)), id);
    } catch (e) {
      if (isRestError(e) && e.statusCode === 404) return null;
      throw new KeyVaultOperationError("get-managed-hsm", id.id, classifyFailure(e));
    }
  }

  /** The soft-deleted record of a Managed HSM, or null (404: never deleted, or purged). */
  async getDeletedManagedHsm(
    name: string,
    location: string,
    o: CallOptions = {},
  ): Promise<DeletedManagedHsmInfo | null> {
    try {
      return deletedInfo(await this.clients.management.managedHsms.getDeleted(name, location, abort(o)));
    } catch (e) {
      if (isRestError(e) && e.statusCode === 404) return null;
      throw new KeyVaultOperationError("get-deleted-managed-hsm", `${location}/${name}`, classifyFailure(e));
    }
  }

  async listDeletedManagedHsms(o: CallOptions = {}): Promise<DeletedManagedHsmInfo[]> {
    const out: DeletedManagedHsmInfo[] = [];
    try {
      for await (const d of this.clients.management.managedHsms.listDeleted(abort(o)))
        out.push(deletedInfo(d));
    } catch (e) {
      throw new KeyVaultOperationError(
        "list-deleted-managed-hsms",
        this.subscriptionScope(),
        classifyFailure(e),
      );
    }
    return out;
  }

  async listDiagnosticSettings(resourceId: string, o: CallOptions = {}): Promise<DiagnosticSettingInfo[]> {
    try {
      const list = await this.clients.monitor.diagnosticSettings.list(resourceId, abort(o));
      return (list.value ?? []).map((d) => ({
        name: d.name ?? "",
        workspaceId: d.workspaceId ?? null,
        storageAccountId: d.storageAccountId ?? null,
        eventHubAuthorizationRuleId: d.eventHubAuthorizationRuleId ?? null,
        enabledLogs: (d.logs ?? [])
          .filter((l) => l.enabled)
          .map((l) => l.category ?? (l as { categoryGroup?: string }).categoryGroup ?? "")
          .filter((c) => c !== ""),
      }));
    } catch (e) {
      throw new KeyVaultOperationError("list-diagnostic-settings", resourceId, classifyFailure(e));
    }
  }

  async getVault(resourceId: string, o: CallOptions = {}): Promise<VaultInfo | null> {
    const id = parseKeyVaultId(resourceId);
    this.checkSubscription(id.subscriptionId, id.id);
    try {
      return vaultInfo(await this.clients.management.vaults.get(id.resourceGroup, id.name, abort(o)), id.id);
    } catch (e) {
      if (isRestError(e) && e.statusCode === 404) return null;
      throw new KeyVaultOperationError("get-vault", id.id, classifyFailure(e));
    }
  }

  /**
   * Deletes the Managed HSM and waits for the long-running operation. Resolves when ARM reports success, which makes
   * the HSM soft-deleted (still billed), not gone: read `getDeletedManagedHsm` next.
   */
  async deleteManagedHsm(resourceId: string, o: CallOptions = {}): Promise<{ resourceId: string }> {
    const id = this.parse(resourceId);
    try {
      await this.clients.management.managedHsms.beginDeleteAndWait(id.resourceGroup, id.name, {
        updateIntervalInMs: this.settings.pollIntervalMs,
        ...abort(o),
      });
    } catch (e) {
      throw new KeyVaultOperationError("delete-managed-hsm", id.id, classifyFailure(e));
    }
    return { resourceId: id.id };
  }

  /**
   * Purges a soft-deleted Managed HSM (long-running). Refused without a request when the deleted record is missing
   * or says purge protection is on: the key material would be unrecoverable, and Azure forbids it anyway.
   */
  async purgeDeletedManagedHsm(
    name: string,
    location: string,
    o: CallOptions = {},
  ): Promise<{ name: string; location: string }> {
    const deleted = await this.getDeletedManagedHsm(name, location, o);
    if (!deleted)
      throw new KeyVaultChangeRefused(
        "purge-managed-hsm",
        `${location}/${name}`,
        "no soft-deleted Managed HSM by that name",
      );
    if (deleted.purgeProtectionEnabled)
      throw new KeyVaultChangeRefused(
        "purge-managed-hsm",
        `${location}/${name}`,
        `purge protection is on: it can only expire at its scheduled purge date ${deleted.scheduledPurgeDate ?? "(unknown)"}`,
      );
    try {
      await this.clients.management.managedHsms.beginPurgeDeletedAndWait(name, location, {
        updateIntervalInMs: this.settings.pollIntervalMs,
        ...abort(o),
      });
    } catch (e) {
      throw new KeyVaultOperationError("purge-managed-hsm", `${location}/${name}`, classifyFailure(e));
    }
    return { name, location };
  }

  /** Managed HSMs a resource group holds: active (typed list) and soft-deleted (deleted list, by their old id). */
  async resourceGroupManagedHsms(
    resourceGroup: string,
    o: CallOptions = {},
  ): Promise<ResourceGroupManagedHsms> {
    const rgPrefix =
      `/subscriptions/${this.settings.subscriptionId}/resourcegroups/${resourceGroup}/`.toLowerCase();
    const active: string[] = [];
    try {
      for await (const h of this.clients.management.managedHsms.listByResourceGroup(resourceGroup, abort(o)))
        active.push(h.id ?? h.name ?? "?");
    } catch (e) {
      // A group that no longer exists holds no active HSM; its soft-deleted ones are still listed below.
      if (!(isRestError(e) && e.statusCode === 404))
        throw new KeyVaultOperationError("list-managed-hsms", resourceGroup, classifyFailure(e));
    }
    const softDeleted = (await this.listDeletedManagedHsms(o))
      .filter((d) => (d.mhsmId ?? "").toLowerCase().startsWith(rgPrefix))
      .map((d) => d.mhsmId ?? d.name);
    return { resourceGroup, active, softDeleted };
  }

  /**
   * Deletes a resource group and waits. Refused, with nothing sent, while it holds a Managed HSM, active or
   * soft-deleted (deleting the group does not end a soft-deleted pool's billing), or any other resource unless
   * `allowOtherResources`: lunafleet deletes a group it has emptied, never one with something it did not look at.
   */
  async deleteResourceGroup(
    resourceGroup: string,
    o: CallOptions & { allowOtherResources?: boolean } = {},
  ): Promise<{ resourceGroup: string; deleted: boolean }> {
    const holds = await this.resourceGroupManagedHsms(resourceGroup, o);
    if (holds.active.length > 0 || holds.softDeleted.length > 0)
      throw new KeyVaultChangeRefused(
        "delete-resource-group",
        resourceGroup,
        `it still holds Managed HSM(s): active ${holds.active.join(", ") || "none"}; soft-deleted ${
          holds.softDeleted.join(", ") || "none"
        } (a soft-deleted HSM is billed until purged or its scheduled purge date)`,
      );
    const others: string[] = [];
    try {
      for await (const r of this.clients.resources.resources.listByResourceGroup(resourceGroup, abort(o)))
        others.push(r.id ?? r.name ?? "?");
    } catch (e) {
      if (isRestError(e) && e.statusCode === 404) return { resourceGroup, deleted: false };
      throw new KeyVaultOperationError("list-resources", resourceGroup, classifyFailure(e));
    }
    if (others.length > 0 && !o.allowOtherResources)
      throw new KeyVaultChangeRefused(
        "delete-resource-group",
        resourceGroup,
        `it still holds ${others.length} other resource(s): ${others.join(", ")}`,
      );
    try {
      const poller = await this.clients.resources.resourceGroups.beginDelete(resourceGroup, {
        updateIntervalInMs: this.settings.pollIntervalMs,
        ...abort(o),
      });
      await poller.pollUntilDone(abort(o));
    } catch (e) {
      throw new KeyVaultOperationError("delete-resource-group", resourceGroup, classifyFailure(e));
    }
    return { resourceGroup, deleted: true };
  }

  private parse(resourceId: string) {
    const id = parseManagedHsmId(resourceId);
    this.checkSubscription(id.subscriptionId, id.id);
    return id;
  }

  private checkSubscription(sub: string, id: string) {
    if (sub.toLowerCase() !== this.settings.subscriptionId.toLowerCase())
      throw new KeyVaultChangeRefused(
        "parse",
        id,
        `subscription ${sub} is not the configured subscription ${this.settings.subscriptionId}`,
      );
  }

  private subscriptionScope() {
    return `/subscriptions/${this.settings.subscriptionId}`;
  }
}

function abort(o: CallOptions): { abortSignal?: AbortSignal } {
  return o.signal ? { abortSignal: o.signal } : {};
}

function toInfo(h: ManagedHsm, id: { id: string; name: string; resourceGroup: string }): ManagedHsmInfo {
  const p = h.properties ?? {};
  return {
    id: h.id ?? id.id,
    name: h.name ?? id.name,
    resourceGroup: id.resourceGroup,
    location: h.location ?? null,
    sku: h.sku?.name ?? null,
    provisioningState: p.provisioningState ?? null,
    statusMessage: p.statusMessage ?? null,
    hsmUri: p.hsmUri ?? null,
    activationStatus: p.securityDomainProperties?.activationStatus ?? null,
    activationStatusMessage: p.securityDomainProperties?.activationStatusMessage ?? null,
    softDeleteEnabled: p.enableSoftDelete ?? null,
    softDeleteRetentionDays: p.softDeleteRetentionInDays ?? null,
    purgeProtection: p.enablePurgeProtection === true,
    publicNetworkAccess: p.publicNetworkAccess ?? null,
    networkAcls: p.networkAcls
      ? {
          defaultAction: p.networkAcls.defaultAction ?? null,
          bypass: p.networkAcls.bypass ?? null,
          ipRules: (p.networkAcls.ipRules ?? []).map((r) => r.value),
          virtualNetworkRules: (p.networkAcls.virtualNetworkRules ?? []).map((r) => r.id),
          serviceTags: (p.networkAcls.serviceTags ?? []).map((r) => r.tag),
        }
      : null,
    privateEndpointConnections: (p.privateEndpointConnections ?? []).map((c) => ({
      id: c.privateEndpoint?.id ?? c.id ?? null,
      status: c.privateLinkServiceConnectionState?.status ?? null,
      provisioningState: c.provisioningState ?? null,
    })),
    regions: (p.regions ?? []).map((r) => ({
      name: r.name ?? null,
      isPrimary: r.isPrimary === true,
      provisioningState: r.provisioningState ?? null,
    })),
  };
}

function deletedInfo(d: DeletedManagedHsm): DeletedManagedHsmInfo {
  const p = d.properties ?? {};
  return {
    name: d.name ?? "",
    location: p.location ?? null,
    mhsmId: p.mhsmId ?? null,
    deletionDate: p.deletionDate ? p.deletionDate.toISOString() : null,
    scheduledPurgeDate: p.scheduledPurgeDate ? p.scheduledPurgeDate.toISOString() : null,
    purgeProtectionEnabled: p.purgeProtectionEnabled === true,
  };
}

function vaultInfo(v: Vault, id: string): VaultInfo {
  const p = v.properties;
  return {
    id: v.id ?? id,
    name: v.name ?? "",
    sku: p?.sku?.name ?? null,
    softDeleteEnabled: p?.enableSoftDelete ?? null,
    softDeleteRetentionDays: p?.softDeleteRetentionInDays ?? null,
    purgeProtection: p?.enablePurgeProtection === true,
    publicNetworkAccess: p?.publicNetworkAccess ?? null,
    rbacAuthorization: p?.enableRbacAuthorization === true,
  };
}

export { MANAGED_HSM_TYPE };
