// Managed HSM and Key Vault resource ids, and Managed HSM role scopes: parsed in one place so a malformed or foreign
// id is refused before any request is sent.
import { InvalidResourceIdError } from "./errors.ts";

export const MANAGED_HSM_TYPE = "Microsoft.KeyVault/managedHSMs";
const KEY_VAULT_TYPE = "Microsoft.KeyVault/vaults";

export interface KeyVaultResourceId {
  subscriptionId: string;
  resourceGroup: string;
  name: string;
  /** Canonical form. */
  id: string;
}

const MHSM_ID =
  /^\/subscriptions\/([^/\s]+)\/resourceGroups\/([^/\s]+)\/providers\/Microsoft\.KeyVault\/managedHSMs\/([^/\s]+)$/i;
const VAULT_ID =
  /^\/subscriptions\/([^/\s]+)\/resourceGroups\/([^/\s]+)\/providers\/Microsoft\.KeyVault\/vaults\/([^/\s]+)$/i;

function parse(id: string, re: RegExp, type: string): KeyVaultResourceId {
  const m = re.exec(id.trim());
  if (!m) throw new InvalidResourceIdError(id, `not a ${type} resource id`);
  const [, subscriptionId, resourceGroup, name] = m as unknown as [string, string, string, string];
  return {
    subscriptionId,
    resourceGroup,
    name,
    id: `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroup}/providers/${type}/${name}`,
  };
}

export function parseManagedHsmId(id: string): KeyVaultResourceId {
  return parse(id, MHSM_ID, MANAGED_HSM_TYPE);
}

export function parseKeyVaultId(id: string): KeyVaultResourceId {
  return parse(id, VAULT_ID, KEY_VAULT_TYPE);
}

/** `/`, `/keys` or `/keys/<name>` (Managed HSM local RBAC scopes); trailing slashes and case are normalised. */
export function normaliseRoleScope(scope: string): string {
  const s = `/${scope.trim().replace(/^\/+|\/+$/g, "")}`;
  const m = /^\/(keys)(\/(.+))?$/i.exec(s);
  if (s === "/") return "/";
  if (!m) return s;
  return m[3] ? `/keys/${m[3]}` : "/keys";
}

/** Whether an assignment at `assigned` covers `target` (a role at `/` or `/keys` covers every key). */
export function scopeCovers(assigned: string, target: string): boolean {
  const a = normaliseRoleScope(assigned).toLowerCase();
  const t = normaliseRoleScope(target).toLowerCase();
  return a === "/" || a === t || (a === "/keys" && t.startsWith("/keys/"));
}
