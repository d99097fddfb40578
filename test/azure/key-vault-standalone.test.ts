// A daemon started beside `lunafleet sim` reaches the Key Vault twin from the fleet FILE (hsmUris without a port):
// the sim's published CA bundle and `--azure-keyvault-port` are all it needs; nothing real is ever redirected.
import { afterAll, beforeAll, expect, it } from "vitest";
import { keyVaultAccessFor, pemCertificates, pointTwinKeyVaultAt } from "../../src/azure/key-vault-access.ts";
import { loadFleet } from "../../src/config/load.ts";
import { startTwin, type Twin } from "../../src/sim/twin.ts";
import { DEMO } from "../helpers/key-vault.ts";

let twin: Twin;
beforeAll(async () => {
  twin = await startTwin(loadFleet(DEMO), { rebase: true });
});
afterAll(async () => {
  await twin?.stop();
});

it("the fleet file plus the twin's port and CA bundle reach every pool, Entra ID and Graph", async () => {
  const fleet = structuredClone(loadFleet(DEMO));
  expect(fleet.managedHsms[0]!.hsmUri).toBe("https://mhsm-pay.managedhsm.localhost/");
  pointTwinKeyVaultAt(fleet, twin.keyVault!.server.port);
  expect(fleet.managedHsms[0]!.hsmUri).toBe(twin.fleet.managedHsms[0]!.hsmUri);
  expect(fleet.azureIdentity).toEqual(twin.fleet.azureIdentity);
  const bundle = twin.arm!.caPem + twin.keyVault!.caPem;
  expect(pemCertificates(bundle)).toHaveLength(2);
  const access = keyVaultAccessFor(fleet, { endpoint: twin.arm!.endpoint, caPems: pemCertificates(bundle) })!;
  const hsm = await access.arm.getManagedHsm(fleet.managedHsms[0]!.resourceId);
  expect(hsm?.activationStatus).toBe("Active");
  expect((await access.data.listKeys(fleet.managedHsms[0]!.hsmUri)).map((k) => k.name)).toContain(
    "payments-kek",
  );
});

it("refuses a production fleet and any URI that is not the twin's", () => {
  const production = structuredClone(loadFleet(DEMO));
  production.twin = false;
  expect(() => pointTwinKeyVaultAt(production, 4443)).toThrow(/twin fleets only/);
  const foreign = structuredClone(loadFleet(DEMO));
  foreign.managedHsms[0]!.hsmUri = "https://mhsm-pay.managedhsm.azure.net/";
  expect(() => pointTwinKeyVaultAt(foreign, 4443)).toThrow(/not a twin \(\.localhost\) URI/);
});
