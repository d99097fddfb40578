// Which Managed HSM / Key Vault endpoints the daemon talks to, trusting what, as whom (the same rules as access.ts):
// - production fleets: the fleet's `azure` block and `azureIdentity` (public cloud by default), the system CA store and
//   DNS, DefaultAzureCredential for the daemon's own reads (set AZURE_TOKEN_CREDENTIALS=prod). A custom CA is refused.
// - twin fleets: only the twin, on loopback: ARM at 127.0.0.1, pools and Entra/Graph under `.localhost`; its CAs; the
//   twin's placeholder token for the daemon (applications still get real tokens from the twin's Entra ID).
import type { TokenCredential } from "@azure/core-auth";
import type { PipelineRetryOptions } from "@azure/core-rest-pipeline";
import { DefaultAzureCredential } from "@azure/identity";
import type { Fleet } from "../config/schema.ts";
import { ArmAccessError, twinCredential } from "./access.ts";
import { azureSettingsFrom } from "./clients.ts";
import { createKeyVaultClients } from "./key-vault-clients.ts";
import { ManagedHsmGateway } from "./managed-hsm.ts";
import { ManagedHsmDataPlane } from "./mhsm-data-plane.ts";

export interface KeyVaultAccessOptions {
  /** ARM endpoint instead of the fleet's (the twin's `https://127.0.0.1:<port>`). */
  endpoint?: string;
  /** PEM CAs to trust (the twin's ARM and data-plane CAs). Twin fleets only. */
  caPems?: string[];
  credential?: TokenCredential;
  retryOptions?: PipelineRetryOptions;
}

export interface KeyVaultAccess {
  arm: ManagedHsmGateway;
  data: ManagedHsmDataPlane;
}

/** The Managed HSM / Key Vault access of a fleet, or undefined when it declares none. Throws ArmAccessError if unsafe. */
export function keyVaultAccessFor(
  fleet: Fleet,
  opts: KeyVaultAccessOptions = {},
): KeyVaultAccess | undefined {
  if (fleet.managedHsms.length === 0 && fleet.keyVaults.length === 0 && fleet.cmkConsumers.length === 0)
    return undefined;
  const twin = fleet.twin === true;
  if (opts.caPems && !twin)
    throw new ArmAccessError(
      "azure: a custom CA is for twin fleets only; a production fleet trusts the system CA store",
    );
  const first = fleet.managedHsms[0]?.resourceId ?? fleet.keyVaults[0]?.resourceId;
  const fromResource = first ? /^\/subscriptions\/([^/]+)\//i.exec(first)?.[1] : undefined;
  const arm = azureSettingsFrom(
    { ...fleet.azure, ...(opts.endpoint !== undefined ? { endpoint: opts.endpoint } : {}) },
    fromResource,
  );
  if (twin) {
    const loopback = (u: string) =>
      /^(127(?:\.\d{1,3}){3}|\[::1\]|localhost|.+\.localhost)$/i.test(new URL(u).hostname);
    const outside = [
      arm.endpoint,
      fleet.azureIdentity.authorityHost,
      fleet.azureIdentity.graphEndpoint,
      ...fleet.managedHsms.map((h) => h.hsmUri),
    ].filter((u) => !loopback(u));
    if (outside.length > 0)
      throw new ArmAccessError(
        `azure: twin fleet, but ${outside.join(", ")} is not the twin's (loopback); start the twin and pass its endpoints`,
      );
  }
  const clients = createKeyVaultClients({
    arm,
    credential: opts.credential ?? (twin ? twinCredential : new DefaultAzureCredential()),
    authorityHost: fleet.azureIdentity.authorityHost,
    graphEndpoint: fleet.azureIdentity.graphEndpoint,
    ...(opts.caPems ? { twinTransport: { ca: opts.caPems } } : {}),
    ...(opts.retryOptions ? { retryOptions: opts.retryOptions } : {}),
  });
  return { arm: new ManagedHsmGateway(clients), data: new ManagedHsmDataPlane(clients) };
}

export const KEYVAULT_PORT_ENV = "LUNAFLEET_AZURE_KEYVAULT_PORT";

/**
 * A daemon started beside `lunafleet sim`: the Key Vault twin listens on one loopback port for every pool, Entra ID and
 * Graph (names under `.localhost`). Points a twin fleet's hsmUris and azureIdentity at that port. Refused for a
 * production fleet, and for any URI not under `.localhost`: nothing real is ever redirected.
 */
export function pointTwinKeyVaultAt(fleet: Fleet, port: number): void {
  if (fleet.twin !== true) throw new ArmAccessError("azure: --azure-keyvault-port is for twin fleets only");
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new ArmAccessError(`azure: --azure-keyvault-port ${port} is not a port`);
  const at = (uri: string) => {
    const u = new URL(uri);
    if (!/(^|\.)localhost$/i.test(u.hostname))
      throw new ArmAccessError(`azure: ${uri} is not a twin (.localhost) URI; refusing to redirect it`);
    u.port = String(port);
    return u.toString();
  };
  for (const h of fleet.managedHsms) h.hsmUri = at(h.hsmUri);
  fleet.azureIdentity = {
    authorityHost: at("https://login.localhost/").replace(/\/$/, ""),
    graphEndpoint: at("https://graph.localhost/").replace(/\/$/, ""),
  };
}

/** Split a PEM bundle into its certificates (the twin publishes its ARM and Key Vault CAs in one file). */
export function pemCertificates(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
}
