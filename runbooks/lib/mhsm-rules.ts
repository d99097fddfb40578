// The rules the Managed HSM runbooks apply, as pure functions of what was declared and what Azure answered: the
// same facts always give the same findings (tested without a network), and nothing here decides by reading text.

import { normaliseRoleScope, scopeCovers } from "../../src/azure/key-vault-ids.ts";
import type {
  DeletedManagedHsmInfo,
  DiagnosticSettingInfo,
  ManagedHsmInfo,
} from "../../src/azure/managed-hsm.ts";
import type { HsmKeyInfo, RoleAssignmentInfo, RoleDefinitionInfo } from "../../src/azure/mhsm-data-plane.ts";
import type { CmkConsumer, KeyDecl, ManagedHsmDecl } from "../../src/config/schema.ts";
import { type KvFinding, requiredScope } from "./key-vault.ts";

const DAY_MS = 86_400_000;
const KEY_USE = /\/keys\/(wrap|unwrap|encrypt|decrypt|sign|verify)\/action$|\/keys\/\*$|\/managedhsm\/\*$/i;

/** ARM: provisioning, activation, soft delete, purge protection, network, private endpoints, regions, diagnostics. */
export function armFindings(
  decl: ManagedHsmDecl,
  hsm: ManagedHsmInfo | null,
  deleted: DeletedManagedHsmInfo | null,
  diagnostics: DiagnosticSettingInfo[] | null,
): KvFinding[] {
  const f: KvFinding[] = [];
  const add = (check: string, message: string) => f.push({ subject: decl.name, check, message });
  if (!hsm) {
    add(
      "exists",
      deleted
        ? `soft-deleted on ${deleted.deletionDate ?? "?"}, billed until purged or its scheduled purge date ${deleted.scheduledPurgeDate ?? "?"}`
        : "not found in Azure (404) and not soft-deleted",
    );
    return f;
  }
  const x = decl.expected;
  if (hsm.provisioningState !== "Succeeded")
    add(
      "provisioning",
      `provisioning state ${hsm.provisioningState ?? "unknown"}${hsm.statusMessage ? ` (${hsm.statusMessage})` : ""}`,
    );
  if (hsm.activationStatus !== "Active")
    add(
      "activation",
      `not activated (security domain ${hsm.activationStatus ?? "status unknown"}): the data plane stays unusable until the security domain is downloaded with ${decl.securityDomain.custodians.length} custodian RSA keys, quorum ${decl.securityDomain.quorum}`,
    );
  if (
    hsm.location &&
    hsm.location.replace(/\s/g, "").toLowerCase() !== decl.location.replace(/\s/g, "").toLowerCase()
  )
    add("location", `in ${hsm.location}, declared ${decl.location}`);
  if (hsm.hsmUri && trim(hsm.hsmUri) !== trim(decl.hsmUri))
    add("hsm-uri", `ARM reports HSM URI ${hsm.hsmUri}, the fleet file declares ${decl.hsmUri}`);
  if (hsm.softDeleteEnabled === false) add("soft-delete", "soft delete is off");
  if (hsm.softDeleteRetentionDays !== x.softDeleteRetentionDays)
    add(
      "soft-delete-retention",
      `soft-delete retention ${hsm.softDeleteRetentionDays ?? "unknown"} days, expected ${x.softDeleteRetentionDays}`,
    );
  if (hsm.purgeProtection !== x.purgeProtection)
    add(
      "purge-protection",
      hsm.purgeProtection
        ? "purge protection is on, the fleet file expects it off"
        : "purge protection is off: a deleted HSM (and every key in it) can be purged before its retention ends",
    );
  if ((hsm.publicNetworkAccess ?? "Enabled") !== x.publicNetworkAccess)
    add(
      "public-network-access",
      `public network access ${hsm.publicNetworkAccess ?? "unknown"}, expected ${x.publicNetworkAccess}`,
    );
  else if (x.publicNetworkAccess === "Enabled" && hsm.networkAcls?.defaultAction !== "Deny")
    add(
      "network-rules",
      "public network access is enabled with no deny-by-default network rule: any address may reach it",
    );
  const approved = hsm.privateEndpointConnections.filter((c) => c.status === "Approved");
  if (x.privateEndpoint && approved.length === 0)
    add(
      "private-endpoint",
      `no approved private endpoint connection${hsm.privateEndpointConnections.length > 0 ? ` (${hsm.privateEndpointConnections.map((c) => c.status ?? "?").join(", ")})` : ""}`,
    );
  for (const r of hsm.regions)
    if (r.provisioningState && r.provisioningState !== "Succeeded")
      add("regions", `region ${r.name ?? "?"} is ${r.provisioningState}`);
  if (diagnostics) {
    const dest = x.diagnosticDestination.toLowerCase();
    const audit = diagnostics.filter((d) =>
      d.enabledLogs.some((c) => /^(auditevent|audit|alllogs)$/i.test(c)),
    );
    const toDest = audit.filter((d) =>
      [d.workspaceId, d.storageAccountId, d.eventHubAuthorizationRuleId].some(
        (v) => v?.toLowerCase() === dest,
      ),
    );
    if (audit.length === 0) add("diagnostics", "no diagnostic setting sends AuditEvent logs anywhere");
    else if (toDest.length === 0)
      add(
        "diagnostics",
        `AuditEvent logs go to ${audit.map(destination).join(", ")}, not to ${x.diagnosticDestination}`,
      );
  }
  return f;
}

/** Data plane keys against their declarations. `warnDays`: a key expiring within it is a finding. */
export function keyFindings(
  pool: string,
  declared: KeyDecl[],
  keys: HsmKeyInfo[],
  now: Date,
  warnDays = 30,
): KvFinding[] {
  const f: KvFinding[] = [];
  const add = (key: string, check: string, message: string) =>
    f.push({ subject: `${pool}/keys/${key}`, check, message });
  const byName = new Map(keys.map((k) => [k.name.toLowerCase(), k]));
  for (const k of keys)
    if (!declared.some((d) => d.name.toLowerCase() === k.name.toLowerCase()))
      add(
        k.name,
        "undeclared-key",
        `${k.type ?? "key"} found in the HSM with no declaration: no owner, purpose or environment`,
      );
  for (const d of declared) {
    const k = byName.get(d.name.toLowerCase());
    if (!k) {
      add(d.name, "missing-key", "declared, but the HSM holds no such key");
      continue;
    }
    if (k.type !== d.type) add(d.name, "key-type", `type ${k.type ?? "unknown"}, declared ${d.type}`);
    if (d.type === "RSA-HSM" && k.size !== null && d.size !== undefined && k.size !== d.size)
      add(d.name, "key-size", `${k.size}-bit, declared ${d.size}`);
    if (d.type === "EC-HSM" && d.curve && k.curve && k.curve !== d.curve)
      add(d.name, "key-curve", `curve ${k.curve}, declared ${d.curve}`);
    const have = new Set(k.operations);
    const want = new Set<string>(d.operations);
    const missing = [...want].filter((o) => !have.has(o));
    const extra = [...have].filter((o) => !want.has(o));
    if (missing.length > 0 || extra.length > 0)
      add(
        d.name,
        "key-operations",
        `operations ${[...have].join(", ") || "none"}, declared ${[...want].join(", ")}${missing.length ? ` (missing ${missing.join(", ")})` : ""}${extra.length ? ` (extra ${extra.join(", ")})` : ""}`,
      );
    if (!k.enabled) add(d.name, "key-enabled", `current version ${k.currentVersion} is disabled`);
    if (k.expiresOn) {
      const left = (Date.parse(k.expiresOn) - now.getTime()) / DAY_MS;
      // Versions created by an auto-rotation policy with an expiry are judged by that rule (cmk-health), not twice.
      const byPolicy = k.rotationPolicy?.expiresIn && hasRotation(k);
      if (left <= 0) add(d.name, "key-expiry", `current version expired on ${k.expiresOn}`);
      else if (left <= warnDays && !byPolicy)
        add(d.name, "key-expiry", `current version expires on ${k.expiresOn} (${Math.floor(left)} days)`);
    }
    if (d.autoRotate === true && !hasRotation(k))
      add(d.name, "rotation", "declared auto-rotating, but its rotation policy has no Rotate action");
    if (d.autoRotate === false && hasRotation(k))
      add(d.name, "rotation", "declared not auto-rotating, but its rotation policy rotates it");
  }
  return f;
}

function hasRotation(k: HsmKeyInfo): boolean {
  return Boolean(k.rotationPolicy?.rotateAfterCreate || k.rotationPolicy?.rotateBeforeExpiry);
}

/** Whether a role (by definition) lets its holder use keys: wrap, unwrap, encrypt, decrypt, sign, verify. */
function usesKeys(roleDefinitionId: string, definitions: RoleDefinitionInfo[], roleName: string): boolean {
  const id = roleDefinitionId.split("/").pop()?.toLowerCase();
  const def = definitions.find((d) => d.name.toLowerCase() === id);
  if (def) return def.dataActions.some((a) => KEY_USE.test(a));
  return /crypto user|encryption user|release user/i.test(roleName);
}

/**
 * Role assignments: broad key-using roles at `/` or `/keys` (other than declared consumers, judged below, and
 * declared exceptions), and for each consumer its required role at exactly its scope.
 */
export function roleFindings(
  decl: ManagedHsmDecl,
  consumers: CmkConsumer[],
  assignments: RoleAssignmentInfo[],
  definitions: RoleDefinitionInfo[],
): KvFinding[] {
  const f: KvFinding[] = [];
  const consumerPrincipals = new Set(consumers.map((c) => c.principalId.toLowerCase()));
  for (const a of assignments) {
    const scope = normaliseRoleScope(a.scope);
    if (scope !== "/" && scope !== "/keys") continue;
    if (consumerPrincipals.has(a.principalId.toLowerCase())) continue;
    if (!usesKeys(a.roleDefinitionId, definitions, a.roleName)) continue;
    const allowed = decl.broadRoleHolders.some(
      (b) =>
        b.principalId.toLowerCase() === a.principalId.toLowerCase() &&
        b.role.toLowerCase() === a.roleName.toLowerCase(),
    );
    if (!allowed)
      f.push({
        subject: decl.name,
        check: "broad-role",
        message: `${a.roleName} at ${scope} for principal ${a.principalId}: every key of the HSM is usable by it (not a declared consumer or broadRoleHolder)`,
      });
  }
  for (const c of consumers) f.push(...consumerRoleFindings(c, assignments));
  return f;
}

/** A consumer's required role: missing, or (also) assigned wider than its scope. */
export function consumerRoleFindings(c: CmkConsumer, assignments: RoleAssignmentInfo[]): KvFinding[] {
  const want = normaliseRoleScope(requiredScope(c));
  const mine = assignments.filter(
    (a) =>
      a.principalId.toLowerCase() === c.principalId.toLowerCase() &&
      a.roleName.toLowerCase() === c.role.toLowerCase(),
  );
  const covering = mine.filter((a) => scopeCovers(a.scope, want));
  const subject = `consumer ${c.name}`;
  if (covering.length === 0)
    return [
      {
        subject,
        check: "role-missing",
        message: `no ${c.role} role assignment covering ${want} for its principal ${c.principalId}: ${c.application} cannot use its key`,
      },
    ];
  const wider = covering.filter((a) => normaliseRoleScope(a.scope).toLowerCase() !== want.toLowerCase());
  if (wider.length > 0)
    return [
      {
        subject,
        check: "role-scope",
        message: `${c.role} is assigned at ${wider.map((a) => normaliseRoleScope(a.scope)).join(", ")} instead of ${want}: ${c.application} can use every key there`,
      },
    ];
  return [];
}

/** cmk-health's rules on one consumer's key and secret (the role is judged by consumerRoleFindings). */
export function consumerKeyFindings(
  c: CmkConsumer,
  declared: KeyDecl,
  key: HsmKeyInfo | null,
  secret: { endDateTime: string | null; source: "graph" | "fleet file" } | null,
  now: Date,
): KvFinding[] {
  const f: KvFinding[] = [];
  const subject = `consumer ${c.name}`;
  const add = (check: string, message: string) => f.push({ subject, check, message });
  if (declared.type !== "oct-HSM" || (declared.size !== undefined && declared.size !== 256))
    add(
      "aes-256",
      `its key ${declared.name} is declared ${declared.type}${declared.size ? ` ${declared.size}-bit` : ""}, not AES-256 (oct-HSM 256)`,
    );
  if (!key) add("key", `its key ${declared.name} is not in the HSM`);
  else {
    if (key.type !== "oct-HSM")
      add("aes-256", `its key ${key.name} is ${key.type ?? "of unknown type"}, not AES (oct-HSM)`);
    const ops = new Set(key.operations);
    const missing = ["wrapKey", "unwrapKey"].filter((o) => !ops.has(o));
    if (missing.length > 0) add("operations", `its key ${key.name} does not allow ${missing.join(" and ")}`);
    if (!key.enabled) add("key-enabled", `its key's current version ${key.currentVersion} is disabled`);
    if (hasRotation(key) && key.rotationPolicy?.expiresIn)
      add(
        "rotation-expiry",
        `its key ${key.name} auto-rotates (${key.rotationPolicy.rotateAfterCreate ?? `${key.rotationPolicy.rotateBeforeExpiry} before expiry`}) with an expiry of ${key.rotationPolicy.expiresIn}: each version disables itself at expiry, including the one ${c.application} wrapped with (current version expires ${key.expiresOn ?? "?"})`,
      );
  }
  if (!secret || secret.endDateTime === null)
    add(
      "secret-expiry",
      `no end date found for the app registration's client secret (${secret?.source ?? "unread"})`,
    );
  else {
    const left = (Date.parse(secret.endDateTime) - now.getTime()) / DAY_MS;
    if (left <= 0) add("secret-expiry", `its client secret expired on ${secret.endDateTime.slice(0, 10)}`);
    else if (left <= c.secretExpiryWarnDays)
      add(
        "secret-expiry",
        `its client secret expires on ${secret.endDateTime.slice(0, 10)}, in ${Math.ceil(left)} days (threshold ${c.secretExpiryWarnDays})`,
      );
  }
  return f;
}

function destination(d: DiagnosticSettingInfo): string {
  return d.workspaceId ?? d.storageAccountId ?? d.eventHubAuthorizationRuleId ?? d.name;
}

function trim(uri: string): string {
  return uri.replace(/\/+$/, "").toLowerCase();
}
