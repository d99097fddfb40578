// Which ARM the daemon's worker talks to, trusting which CA, with which credential.
// - Production fleets: the fleet's `azure` block (endpoint default https://management.azure.com), the system CA
//   store and DefaultAzureCredential. A custom CA is refused: a production daemon must never be talked into trusting
//   a twin's (or anyone's) private CA for the API that deletes HSMs (a corporate CA goes through NODE_EXTRA_CA_CERTS).
// - Twin fleets (`twin: true`): only an ARM twin on loopback, whose endpoint and CA come from the in-process twin
//   (`npm start`) or from what `lunafleet sim` publishes (sim.json, twin-arm-ca.pem) via `--azure-endpoint` /
//   `--azure-ca` (or LUNAFLEET_AZURE_ENDPOINT / LUNAFLEET_AZURE_CA_FILE). The bearer token is a fixed placeholder:
//   the twin only checks that one is sent, and a twin fleet has no business holding real Azure credentials.
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import type { AccessToken, TokenCredential } from "@azure/core-auth";
import type { Fleet } from "../config/schema.ts";
import { type AzureClientOptions, azureSettingsFrom, createAzureClients } from "./clients.ts";
import { DedicatedHsmGateway } from "./dedicated-hsm.ts";

const AZURE_ENDPOINT_ENV = "LUNAFLEET_AZURE_ENDPOINT";
const AZURE_CA_FILE_ENV = "LUNAFLEET_AZURE_CA_FILE";

export interface ArmAccessOptions {
  /** Replaces the fleet's `azure.endpoint` (the twin's `https://127.0.0.1:<port>`). */
  endpoint?: string;
  /** PEM of the CA to trust for ARM instead of the system store. Twin fleets only. */
  caPem?: string;
  /** Replaces the subscription of the fleet's `azure` block / first resource id. */
  subscriptionId?: string;
  /** Default: DefaultAzureCredential (production), a placeholder token (twin fleets). */
  credential?: TokenCredential;
  retryOptions?: AzureClientOptions["retryOptions"];
}

export class ArmAccessError extends Error {
  override name = "ArmAccessError";
}

/** The twin's ARM accepts any bearer token; this one says what it is if it ever shows up in a log. */
export const twinCredential: TokenCredential = {
  getToken: async (): Promise<AccessToken> => ({
    token: "lunafleet-twin-placeholder-token",
    expiresOnTimestamp: Date.now() + 3_600_000,
  }),
};

/**
 * The Dedicated HSM gateway the worker hands to deprovisioning jobs (ctx.azure), or undefined when no device names
 * a Dedicated HSM resource. Throws ArmAccessError when the combination is unsafe (see the header).
 */
export function armGatewayFor(fleet: Fleet, opts: ArmAccessOptions = {}): DedicatedHsmGateway | undefined {
  const first = fleet.devices.find((d) => d.azure?.resourceId)?.azure?.resourceId;
  if (!first) return undefined;
  const twin = fleet.twin === true;
  if (opts.caPem !== undefined && !twin)
    throw new ArmAccessError(
      "azure: a custom ARM CA (--azure-ca / LUNAFLEET_AZURE_CA_FILE) is for twin fleets only; a production fleet trusts the system CA store",
    );
  const fromResource = /^\/subscriptions\/([^/]+)\//i.exec(first)?.[1];
  const block = {
    ...fleet.azure,
    ...(opts.endpoint !== undefined ? { endpoint: opts.endpoint } : {}),
    ...(opts.subscriptionId !== undefined ? { subscriptionId: opts.subscriptionId } : {}),
  };
  const settings = azureSettingsFrom(block, fromResource);
  if (twin && !isLoopback(settings.endpoint))
    throw new ArmAccessError(
      `azure: twin fleet, but the ARM endpoint ${settings.endpoint} is not the twin's (loopback); start \`lunafleet sim\` and pass the --azure-endpoint and --azure-ca it prints`,
    );
  return new DedicatedHsmGateway(
    createAzureClients({
      ...settings,
      ...(opts.credential ? { credential: opts.credential } : twin ? { credential: twinCredential } : {}),
      ...(opts.caPem !== undefined ? { tls: { ca: opts.caPem } } : {}),
      ...(opts.retryOptions ? { retryOptions: opts.retryOptions } : {}),
    }),
  );
}

/**
 * `lunafleet daemon --azure-endpoint <url> --azure-ca <file>`, each falling back to its environment variable.
 * The CA file is read and checked here, so a wrong path or a non-certificate fails the daemon's start.
 */
export function armAccessFromFlags(
  flags: { azureEndpoint?: string; azureCa?: string },
  env: Record<string, string | undefined>,
): ArmAccessOptions {
  const endpoint = flags.azureEndpoint ?? nonEmpty(env[AZURE_ENDPOINT_ENV]);
  const caFile = flags.azureCa ?? nonEmpty(env[AZURE_CA_FILE_ENV]);
  return {
    ...(endpoint !== undefined ? { endpoint } : {}),
    ...(caFile !== undefined ? { caPem: readArmCaFile(caFile) } : {}),
  };
}

/** A PEM file holding at least one certificate (nothing else is accepted as a trust anchor). */
function readArmCaFile(file: string): string {
  let pem: string;
  try {
    pem = readFileSync(file, "utf8");
  } catch (err) {
    throw new ArmAccessError(`azure: cannot read the ARM CA file ${file}: ${(err as Error).message}`);
  }
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new ArmAccessError(`azure: ${file} holds no PEM certificate`);
  for (const b of blocks) {
    try {
      new X509Certificate(b);
    } catch (err) {
      throw new ArmAccessError(`azure: ${file}: unreadable certificate: ${(err as Error).message}`);
    }
  }
  return pem;
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === "" ? undefined : v.trim();
}

function isLoopback(endpoint: string): boolean {
  const host = new URL(endpoint).hostname.replace(/^\[|\]$/g, "");
  return host === "localhost" || host === "::1" || /^127(?:\.\d{1,3}){3}$/.test(host);
}
