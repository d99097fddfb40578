// The ARM twin linked to the fleet's appliances (and the Key Vault twin's providers when the fleet declares them).
import type { Fleet } from "../config/index.ts";
import { type ArmTwin, startArmTwin } from "./arm/index.ts";
import type { KeyVaultTwin } from "./mhsm/index.ts";
import type { ApplianceState } from "./state.ts";

/**
 * One ARM twin for the devices that name a Dedicated HSM resource in the fleet's subscription (the `azure` block's,
 * else the first resource id's); each resource's `zeroized` is read from its appliance's live state.
 */
export async function startLinkedArmTwin(
  fleet: Fleet,
  states: Map<string, ApplianceState>,
  keyVault?: KeyVaultTwin,
): Promise<ArmTwin | undefined> {
  const withIds = fleet.devices.filter((d) => d.azure?.resourceId);
  if (withIds.length === 0 && !keyVault) return undefined;
  const subOf = (id: string) => /^\/subscriptions\/([^/]+)\//i.exec(id)?.[1] ?? "";
  const subscriptionId =
    fleet.azure?.subscriptionId ??
    (withIds[0] ? subOf(withIds[0].azure!.resourceId) : keyVault!.model.subscriptionId);
  const hsms = withIds
    .filter((d) => subOf(d.azure!.resourceId).toLowerCase() === subscriptionId.toLowerCase())
    .map((d) => ({
      resourceId: d.azure!.resourceId,
      location: "westeurope",
      zeroized: () => states.get(d.name)?.zeroized === true,
    }));
  const arm = await startArmTwin({
    subscriptionId,
    hsms,
    resourceGroups: [],
    ...(keyVault
      ? { providers: [{ routes: keyVault.armRoutes, resources: keyVault.model, groups: keyVault.groups }] }
      : {}),
  });
  if (keyVault) keyVault.armRoutes.groupExists = (rg) => arm.groupExists(rg);
  if (fleet.azure) fleet.azure.endpoint = arm.endpoint;
  else if (keyVault)
    fleet.azure = {
      subscriptionId,
      endpoint: arm.endpoint,
      tokenScope: "https://management.azure.com/.default",
      pollIntervalMs: 50,
    };
  return arm;
}
