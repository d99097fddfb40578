// The Key Vault resource provider (and Microsoft.Insights diagnostic settings) on the ARM twin's front door, as the
// unchanged @azure/arm-keyvault 5 and @azure/arm-monitor 7 clients call it:
//
//   GET|DELETE /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.KeyVault/managedHSMs/{name}
//   GET        /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.KeyVault/managedHSMs
//   GET        /subscriptions/{s}/providers/Microsoft.KeyVault/managedHSMs
//   GET        /subscriptions/{s}/providers/Microsoft.KeyVault/deletedManagedHSMs
//   GET        /subscriptions/{s}/providers/Microsoft.KeyVault/locations/{l}/deletedManagedHSMs/{name}
//   POST       /subscriptions/{s}/providers/Microsoft.KeyVault/locations/{l}/deletedManagedHSMs/{name}/purge
//   GET        /subscriptions/{s}/providers/Microsoft.KeyVault/locations/{l}/managedHsmOperationResults/{op}
//   GET        /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{name}
//   GET        {resource id}/providers/Microsoft.Insights/diagnosticSettings
//
// Long-running operations (delete, purge): 202 with a `Location` on the twin's own base; that URL answers 202 while
// running and 204 when done ([I] the exact operation-result route: Azure's Managed HSM contributor role lists
// `Microsoft.KeyVault/locations/managedHsmOperationResults/read`, which names it).
import type { ArmExtension, ArmReply } from "../arm/index.ts";
import {
  hsmUri,
  type KeyVaultTwinModel,
  mhsmId,
  type TwinManagedHsm,
  type TwinVault,
  vaultId,
} from "./model.ts";

const KEYVAULT_API_VERSIONS = ["2026-02-01", "2025-05-01", "2024-11-01", "2023-07-01", "2023-02-01"];
const DIAGNOSTIC_API_VERSIONS = ["2017-05-01-preview", "2021-05-01-preview"];

export class KeyVaultArmRoutes implements ArmExtension {
  /** Set by whoever starts the ARM twin: whether a resource group exists. */
  groupExists: (rg: string) => boolean = () => true;

  constructor(private readonly model: KeyVaultTwinModel) {}

  route(method: string, url: URL, base: string): ArmReply | undefined {
    const seg = url.pathname
      .split("/")
      .filter((s) => s.length > 0)
      .map((s) => decodeURIComponent(s));
    const lower = seg.map((s) => s.toLowerCase());
    const v = url.searchParams.get("api-version");

    // {resource id}/providers/Microsoft.Insights/diagnosticSettings
    const insights = lower.lastIndexOf("microsoft.insights");
    if (insights > 0 && lower[insights - 1] === "providers" && lower[insights + 1] === "diagnosticsettings") {
      const target = `/${seg.slice(0, insights - 1).join("/")}`;
      const hsm = [...this.model.hsms.values()].find((h) => mhsmId(h).toLowerCase() === target.toLowerCase());
      if (!hsm) return undefined;
      const bad = version(v, DIAGNOSTIC_API_VERSIONS);
      if (bad) return bad;
      const fault = this.fault(url);
      if (fault) return fault;
      if (hsm.state !== "active")
        return notFoundResource("Microsoft.KeyVault/managedHSMs", hsm.name, hsm.resourceGroup);
      return ok({
        value: hsm.diagnostics.map((d) => ({
          id: `${mhsmId(hsm)}/providers/microsoft.insights/diagnosticSettings/${d.name}`,
          type: "Microsoft.Insights/diagnosticSettings",
          name: d.name,
          properties: {
            workspaceId: d.workspaceId,
            logs: d.categories.map((category) => ({
              category,
              enabled: true,
              retentionPolicy: { enabled: false, days: 0 },
            })),
            metrics: [],
          },
        })),
      });
    }

    if (lower[0] !== "subscriptions" || !seg[1]) return undefined;
    if (seg[1].toLowerCase() !== this.model.subscriptionId.toLowerCase()) return undefined;
    const kv = lower.indexOf("microsoft.keyvault");
    if (kv < 0 || lower[kv - 1] !== "providers") return undefined;
    const bad = version(v, KEYVAULT_API_VERSIONS);
    if (bad) return bad;
    const fault = this.fault(url);
    if (fault) return fault;

    // Subscription-level: /subscriptions/{s}/providers/Microsoft.KeyVault/...
    if (kv === 3) {
      const rest = lower.slice(4);
      if (method === "GET" && rest.length === 1 && rest[0] === "managedhsms")
        return ok({ value: this.active().map((h) => this.hsmBody(h)) });
      if (method === "GET" && rest.length === 1 && rest[0] === "deletedmanagedhsms")
        return ok({ value: this.deleted().map((h) => this.deletedBody(h)) });
      if (rest[0] === "locations" && rest[2] === "deletedmanagedhsms" && rest.length >= 4) {
        const hsm = this.deleted().find(
          (h) => h.name.toLowerCase() === rest[3] && h.location.toLowerCase() === rest[1],
        );
        if (!hsm)
          return error(
            404,
            "ResourceNotFound",
            `The Resource 'Microsoft.KeyVault/locations/${seg[5]}/deletedManagedHSMs/${seg[7]}' under subscription '${seg[1]}' was not found.`,
          );
        if (method === "GET" && rest.length === 4) return ok(this.deletedBody(hsm));
        if (method === "POST" && rest.length === 5 && rest[4] === "purge") {
          // [I] Azure refuses to purge a purge-protected pool before its date; the twin's code and wording.
          if (hsm.purgeProtection)
            return error(
              409,
              "Conflict",
              `The managed HSM '${hsm.name}' has purge protection enabled and cannot be purged before ${hsm.scheduledPurgeDate?.toISOString()}.`,
            );
          return this.accepted(base, this.model.startPurge(hsm), v!);
        }
      }
      if (
        method === "GET" &&
        rest[0] === "locations" &&
        rest[2] === "managedhsmoperationresults" &&
        rest.length === 4
      ) {
        const op = this.model.operations.get(seg[7] ?? "");
        if (!op) return error(404, "OperationNotFound", `The operation '${seg[7]}' could not be found.`);
        const done = this.model.poll(op);
        if (!done) return { status: 202, headers: { location: this.opUrl(base, op.location, op.id, v!) } };
        // [I] 200 without a body when done (the SDK accepts 200/204 for a delete, 200/201 for a purge).
        if (done.ok) return { status: 200 };
        return error(done.status, done.code, done.message);
      }
      return error(404, "NotFound", `The ARM twin has no route for ${method} ${url.pathname}.`);
    }

    // Resource-group level: /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.KeyVault/...
    if (lower[2] !== "resourcegroups" || kv !== 5) return undefined;
    const rg = seg[3]!;
    if (!this.groupExists(rg))
      return error(404, "ResourceGroupNotFound", `Resource group '${rg}' could not be found.`);
    const type = lower[6];
    const name = seg[7];
    if (type === "managedhsms") {
      if (method === "GET" && seg.length === 7)
        return ok({
          value: this.active()
            .filter((h) => h.resourceGroup.toLowerCase() === rg.toLowerCase())
            .map((h) => this.hsmBody(h)),
        });
      if (seg.length !== 8 || !name) return undefined;
      const hsm = this.active().find(
        (h) =>
          h.name.toLowerCase() === name.toLowerCase() && h.resourceGroup.toLowerCase() === rg.toLowerCase(),
      );
      if (method === "GET")
        return hsm ? ok(this.hsmBody(hsm)) : notFoundResource("Microsoft.KeyVault/managedHSMs", name, rg);
      if (method === "DELETE") {
        if (!hsm) return { status: 204 };
        return this.accepted(base, this.model.startDelete(hsm), v!);
      }
    }
    if (type === "vaults" && method === "GET" && seg.length === 8 && name) {
      const vault = [...this.model.vaults.values()].find(
        (x) =>
          x.name.toLowerCase() === name.toLowerCase() && x.resourceGroup.toLowerCase() === rg.toLowerCase(),
      );
      return vault ? ok(this.vaultBody(vault)) : notFoundResource("Microsoft.KeyVault/vaults", name, rg);
    }
    return error(404, "NotFound", `The ARM twin has no route for ${method} ${url.pathname}.`);
  }

  private fault(url: URL): ArmReply | undefined {
    const f = this.model.takeFault("arm", url.pathname);
    if (!f) return undefined;
    return {
      ...error(f.status, f.code ?? defaultCode(f.status), f.message ?? "Injected by the twin."),
      ...(f.retryAfterSeconds !== undefined
        ? { headers: { "retry-after": String(f.retryAfterSeconds) } }
        : {}),
    };
  }

  private active(): TwinManagedHsm[] {
    return [...this.model.hsms.values()].filter((h) => h.state === "active");
  }

  private deleted(): TwinManagedHsm[] {
    return [...this.model.hsms.values()].filter((h) => h.state === "soft-deleted");
  }

  private accepted(base: string, op: { id: string; location: string }, v: string): ArmReply {
    return { status: 202, headers: { location: this.opUrl(base, op.location, op.id, v) } };
  }

  private opUrl(base: string, location: string, id: string, v: string): string {
    return `${base}/subscriptions/${this.model.subscriptionId}/providers/Microsoft.KeyVault/locations/${encodeURIComponent(
      location,
    )}/managedHsmOperationResults/${id}?api-version=${v}`;
  }

  hsmBody(h: TwinManagedHsm): Record<string, unknown> {
    return {
      id: mhsmId(h),
      name: h.name,
      type: "Microsoft.KeyVault/managedHSMs",
      location: h.location,
      sku: { family: "B", name: "Standard_B1" },
      tags: {},
      properties: {
        tenantId: h.tenantId,
        initialAdminObjectIds: h.initialAdminObjectIds,
        hsmUri: hsmUri(this.model, h.name),
        enableSoftDelete: true,
        softDeleteRetentionInDays: h.softDeleteRetentionDays,
        enablePurgeProtection: h.purgeProtection,
        createMode: "default",
        statusMessage: h.activated
          ? "The Managed HSM is provisioned and ready to use."
          : "The Managed HSM is provisioned; download the security domain to activate it.",
        provisioningState: h.provisioningState,
        networkAcls: {
          bypass: h.networkAcls.bypass,
          defaultAction: h.networkAcls.defaultAction,
          ipRules: h.networkAcls.ipRules.map((value) => ({ value })),
          virtualNetworkRules: [],
        },
        publicNetworkAccess: h.publicNetworkAccess,
        privateEndpointConnections: h.privateEndpoint
          ? [
              {
                id: `${mhsmId(h)}/privateEndpointConnections/${h.name}-pe`,
                etag: "",
                properties: {
                  privateEndpoint: {
                    id: `/subscriptions/${h.subscriptionId}/resourceGroups/${h.resourceGroup}/providers/Microsoft.Network/privateEndpoints/${h.name}-pe`,
                  },
                  privateLinkServiceConnectionState: {
                    status: "Approved",
                    description: "Auto-approved",
                    actionsRequired: "None",
                  },
                  provisioningState: "Succeeded",
                },
              },
            ]
          : [],
        regions: [{ name: h.location, isPrimary: true, provisioningState: "Succeeded" }],
        securityDomainProperties: h.activated
          ? {
              activationStatus: "Active",
              activationStatusMessage:
                "Your HSM has been activated and can be used for cryptographic operations.",
            }
          : {
              activationStatus: "NotActivated",
              activationStatusMessage: "Your HSM is provisioned and ready for security domain download.",
            },
      },
    };
  }

  private deletedBody(h: TwinManagedHsm): Record<string, unknown> {
    return {
      id: `/subscriptions/${h.subscriptionId}/providers/Microsoft.KeyVault/locations/${h.location}/deletedManagedHSMs/${h.name}`,
      name: h.name,
      type: "Microsoft.KeyVault/deletedManagedHSMs",
      properties: {
        mhsmId: mhsmId(h),
        location: h.location,
        deletionDate: h.deletionDate?.toISOString(),
        scheduledPurgeDate: h.scheduledPurgeDate?.toISOString(),
        purgeProtectionEnabled: h.purgeProtection,
        tags: {},
      },
    };
  }

  private vaultBody(vault: TwinVault): Record<string, unknown> {
    return {
      id: vaultId(vault),
      name: vault.name,
      type: "Microsoft.KeyVault/vaults",
      location: vault.location,
      tags: {},
      properties: {
        sku: { family: "A", name: vault.sku },
        tenantId: vault.tenantId,
        accessPolicies: [],
        enabledForDeployment: false,
        enableSoftDelete: vault.softDelete,
        softDeleteRetentionInDays: 90,
        enableRbacAuthorization: true,
        ...(vault.purgeProtection ? { enablePurgeProtection: true } : {}),
        vaultUri: `https://${vault.name}.vault.azure.net/`,
        provisioningState: "Succeeded",
        publicNetworkAccess: "Disabled",
      },
    };
  }
}

function version(actual: string | null, accepted: string[]): ArmReply | undefined {
  if (actual === null)
    return error(
      400,
      "MissingApiVersionParameter",
      "The api-version query parameter (?api-version=) is required.",
    );
  if (!accepted.includes(actual))
    return error(
      400,
      "InvalidApiVersionParameter",
      `The api-version '${actual}' is invalid. The supported versions are '${accepted.join(",")}'.`,
    );
  return undefined;
}

function ok(body: unknown): ArmReply {
  return { status: 200, body };
}

function error(status: number, code: string, message: string): ArmReply {
  return { status, body: { error: { code, message } } };
}

function notFoundResource(type: string, name: string, rg: string): ArmReply {
  return error(
    404,
    "ResourceNotFound",
    `The Resource '${type}/${name}' under resource group '${rg}' was not found.`,
  );
}

export function defaultCode(status: number): string {
  if (status === 429) return "TooManyRequests";
  if (status === 403) return "Forbidden";
  if (status === 503) return "ServiceUnavailable";
  if (status >= 500) return "InternalServerError";
  return "BadRequest";
}
