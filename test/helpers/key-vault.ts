// Shared wiring for the Managed HSM / Key Vault tests: the ARM twin with the Key Vault provider, the data-plane /
// Entra / Graph twin, both over real HTTPS with their own CAs, and the product's access built for a fleet copy that
// points at them (the unchanged SDK clients, the daemon's placeholder identity, applications' real twin tokens).

import { type KeyVaultAccess, keyVaultAccessFor } from "../../src/azure/key-vault-access.ts";
import { loadFleet } from "../../src/config/load.ts";
import type { Fleet } from "../../src/config/schema.ts";
import { type ArmTwin, startArmTwin } from "../../src/sim/arm/index.ts";
import { type KeyVaultTwin, startKeyVaultTwin } from "../../src/sim/mhsm/index.ts";

export const DEMO = new URL("../../config/demo.yaml", import.meta.url).pathname;

export interface KvHarness {
  fleet: Fleet;
  arm: ArmTwin;
  kv: KeyVaultTwin;
  access: KeyVaultAccess;
  /** Access with the SDK's retries off (error-path tests). */
  accessNoRetry: KeyVaultAccess;
  stop(): Promise<void>;
}

/** The demo fleet (or `edit` of it) on a fresh Key Vault twin. */
export async function startKvHarness(
  edit?: (fleet: Fleet) => void,
  opts: { pollMs?: number } = {},
): Promise<KvHarness> {
  const fleet = structuredClone(loadFleet(DEMO));
  edit?.(fleet);
  const kv = await startKeyVaultTwin(fleet);
  const arm = await startArmTwin({
    subscriptionId: kv.model.subscriptionId,
    hsms: [],
    resourceGroups: [],
    providers: [{ routes: kv.armRoutes, resources: kv.model, groups: kv.groups }],
  });
  kv.armRoutes.groupExists = (rg) => arm.groupExists(rg);
  fleet.azure = {
    subscriptionId: kv.model.subscriptionId,
    endpoint: arm.endpoint,
    tokenScope: "https://management.azure.com/.default",
    pollIntervalMs: opts.pollMs ?? 5,
  };
  const caPems = [arm.caPem, kv.caPem];
  const access = keyVaultAccessFor(fleet, { caPems })!;
  const accessNoRetry = keyVaultAccessFor(fleet, { caPems, retryOptions: { maxRetries: 0 } })!;
  return {
    fleet,
    arm,
    kv,
    access,
    accessNoRetry,
    async stop() {
      await kv.stop();
      await arm.stop();
    },
  };
}
