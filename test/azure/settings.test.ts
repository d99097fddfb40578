// Settings and resource ids: checked before any client exists or any request is sent.
import { describe, expect, it } from "vitest";
import {
  azureSettingsFrom,
  createAzureClients,
  DEFAULT_POLL_INTERVAL_MS,
  InvalidResourceIdError,
  parseHsmResourceId,
} from "../../src/azure/index.ts";
import { LUNA_ID, recordingCredential, SUB } from "../helpers/azure.ts";

describe("parseHsmResourceId", () => {
  it("parses a dedicatedHSMs id and canonicalises its type segment", () => {
    const id = parseHsmResourceId(
      `/subscriptions/${SUB}/resourcegroups/rg1/providers/microsoft.hardwaresecuritymodules/dedicatedhsms/h1`,
    );
    expect(id).toEqual({
      subscriptionId: SUB,
      resourceGroup: "rg1",
      name: "h1",
      id: `/subscriptions/${SUB}/resourceGroups/rg1/providers/Microsoft.HardwareSecurityModules/dedicatedHSMs/h1`,
    });
    expect(parseHsmResourceId(LUNA_ID).id).toBe(LUNA_ID);
  });

  it.each([
    "",
    `/subscriptions/${SUB}/resourceGroups/rg1`,
    `/subscriptions/${SUB}/resourceGroups/rg1/providers/Microsoft.KeyVault/managedHSMs/h1`,
    `/subscriptions/${SUB}/resourceGroups/rg1/providers/Microsoft.HardwareSecurityModules/dedicatedHSMs/h1/extra`,
    `subscriptions/${SUB}/resourceGroups/rg1/providers/Microsoft.HardwareSecurityModules/dedicatedHSMs/h1`,
  ])("refuses %j", (bad) => {
    expect(() => parseHsmResourceId(bad)).toThrow(InvalidResourceIdError);
  });
});

describe("settings", () => {
  const base = {
    subscriptionId: SUB,
    tokenScope: "https://management.azure.com/.default",
    pollIntervalMs: 5,
  };

  it("refuses a plain-http endpoint (the SDK would never send the token) and a zero poll interval", () => {
    const credential = recordingCredential();
    expect(() => createAzureClients({ ...base, endpoint: "http://127.0.0.1:1", credential })).toThrow(
      /must be https/,
    );
    expect(() =>
      createAzureClients({ ...base, endpoint: "https://x.invalid", pollIntervalMs: 0, credential }),
    ).toThrow(/pollIntervalMs/);
  });

  it("takes the fleet file's azure block, with the production defaults", () => {
    expect(azureSettingsFrom({ subscriptionId: SUB })).toEqual({
      subscriptionId: SUB,
      endpoint: "https://management.azure.com",
      tokenScope: "https://management.azure.com/.default",
      pollIntervalMs: DEFAULT_POLL_INTERVAL_MS,
    });
    expect(azureSettingsFrom({ endpoint: "https://arm.example/" }, SUB).endpoint).toBe("https://arm.example");
    expect(() => azureSettingsFrom(undefined)).toThrow(/subscriptionId/);
  });

  it("builds both clients on the configured endpoint", () => {
    const c = createAzureClients({
      ...base,
      endpoint: "https://arm.example",
      credential: recordingCredential(),
    });
    expect(c.hsm.subscriptionId).toBe(SUB);
    expect(c.resources.subscriptionId).toBe(SUB);
    expect(c.settings.endpoint).toBe("https://arm.example");
  });
});
