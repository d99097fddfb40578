// Dedicated HSM resource ids: the one parser every Azure call goes through, so a malformed or foreign id is refused
// before any request is sent.
import { InvalidResourceIdError } from "./errors.ts";

export const HSM_RESOURCE_TYPE = "Microsoft.HardwareSecurityModules/dedicatedHSMs";
/** The Thales Luna 7 SKU. Payment HSMs (payShield 10K) share the resource type and must never be treated as Luna. */
export const LUNA_SKU = "SafeNet Luna Network HSM A790";

export interface HsmResourceId {
  subscriptionId: string;
  resourceGroup: string;
  name: string;
  /** The id in canonical form: `/subscriptions/{s}/resourceGroups/{rg}/providers/…/dedicatedHSMs/{name}`. */
  id: string;
}

const HSM_ID =
  /^\/subscriptions\/([^/\s]+)\/resourceGroups\/([^/\s]+)\/providers\/Microsoft\.HardwareSecurityModules\/dedicatedHSMs\/([^/\s]+)$/i;

/** Parses a `Microsoft.HardwareSecurityModules/dedicatedHSMs` resource id; throws `InvalidResourceIdError` otherwise. */
export function parseHsmResourceId(id: string): HsmResourceId {
  const m = HSM_ID.exec(id.trim());
  if (!m) throw new InvalidResourceIdError(id, `not a ${HSM_RESOURCE_TYPE} resource id`);
  const [, subscriptionId, resourceGroup, name] = m as unknown as [string, string, string, string];
  return {
    subscriptionId,
    resourceGroup,
    name,
    id: `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroup}/providers/${HSM_RESOURCE_TYPE}/${name}`,
  };
}

/** ARM compares ids case-insensitively. */
export function sameResourceId(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}
