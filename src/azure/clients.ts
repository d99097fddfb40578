// Construction of the two ARM clients the daemon uses, from the fleet's `azure` settings.
//
// SDK traps handled here (reference/azure.md):
// - the base URL is `endpoint`; `$host` is ignored by both clients;
// - the token audience does NOT follow `endpoint` in the HSM client and follows it wrongly in arm-resources 7
//   (`${endpoint}/.default`): both get `credentialScopes` from the `tokenScope` setting explicitly;
// - bearer tokens are only sent over https, so a plain-http endpoint is refused here with a clear message instead of
//   failing on the first request;
// - a private endpoint (sovereign proxy, the twin) is trusted through `tlsOptions.ca`, which core-rest-pipeline
//   gives to the https.Agent. Note that it replaces the default CA list for that client.
import { AzureDedicatedHSMResourceProvider } from "@azure/arm-hardwaresecuritymodules";
import { ResourceManagementClient } from "@azure/arm-resources";
import type { TokenCredential } from "@azure/core-auth";
import type { PipelineRetryOptions } from "@azure/core-rest-pipeline";
import { DefaultAzureCredential } from "@azure/identity";

export const DEFAULT_ARM_ENDPOINT = "https://management.azure.com";
export const DEFAULT_TOKEN_SCOPE = "https://management.azure.com/.default";
/** Production poll interval for long-running operations (the SDK's own default is 2 s). */
export const DEFAULT_POLL_INTERVAL_MS = 10_000;

export interface AzureSettings {
  subscriptionId: string;
  /** ARM base URL; must be https. */
  endpoint: string;
  /** OAuth scope of the ARM token, e.g. `https://management.azure.com/.default`. */
  tokenScope: string;
  /** Delay between polls of a long-running operation (`updateIntervalInMs`). */
  pollIntervalMs: number;
}

export interface AzureClientOptions extends AzureSettings {
  /** Default: `DefaultAzureCredential` (set AZURE_TOKEN_CREDENTIALS=prod in production to keep dev fallbacks out). */
  credential?: TokenCredential;
  /** Trust for a private endpoint: the PEM CA(s) it chains to. */
  tls?: { ca: string | string[] };
  /** Passed to both clients; tests of error paths use `{ maxRetries: 0 }`. */
  retryOptions?: PipelineRetryOptions;
}

export interface AzureClients {
  hsm: AzureDedicatedHSMResourceProvider;
  resources: ResourceManagementClient;
  settings: AzureSettings;
}

export function createAzureClients(options: AzureClientOptions): AzureClients {
  const settings = checkSettings(options);
  const credential = options.credential ?? new DefaultAzureCredential();
  const common = {
    endpoint: settings.endpoint,
    credentialScopes: [settings.tokenScope],
    ...(options.tls ? { tlsOptions: { ca: options.tls.ca } } : {}),
    ...(options.retryOptions ? { retryOptions: options.retryOptions } : {}),
  };
  return {
    hsm: new AzureDedicatedHSMResourceProvider(credential, settings.subscriptionId, common),
    resources: new ResourceManagementClient(credential, settings.subscriptionId, common),
    settings,
  };
}

/** Settings from the fleet file's `azure` block (subscription may also come from the device's resource id). */
export function azureSettingsFrom(
  block:
    | { subscriptionId?: string; endpoint?: string; tokenScope?: string; pollIntervalMs?: number }
    | undefined,
  fallbackSubscriptionId?: string,
): AzureSettings {
  const subscriptionId = block?.subscriptionId ?? fallbackSubscriptionId;
  if (!subscriptionId)
    throw new Error("azure: no subscriptionId in the fleet file's azure block or the resource id");
  return checkSettings({
    subscriptionId,
    endpoint: block?.endpoint ?? DEFAULT_ARM_ENDPOINT,
    tokenScope: block?.tokenScope ?? DEFAULT_TOKEN_SCOPE,
    pollIntervalMs: block?.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS,
  });
}

function checkSettings(s: AzureSettings): AzureSettings {
  let url: URL;
  try {
    url = new URL(s.endpoint);
  } catch {
    throw new Error(`azure: endpoint ${JSON.stringify(s.endpoint)} is not a URL`);
  }
  if (url.protocol !== "https:")
    throw new Error(
      `azure: endpoint ${s.endpoint} must be https (the SDK never sends a bearer token over http)`,
    );
  if (!s.subscriptionId.trim()) throw new Error("azure: subscriptionId is empty");
  if (!Number.isInteger(s.pollIntervalMs) || s.pollIntervalMs < 1)
    throw new Error(`azure: pollIntervalMs must be a positive integer, got ${s.pollIntervalMs}`);
  if (!s.tokenScope.trim()) throw new Error("azure: tokenScope is empty");
  return {
    subscriptionId: s.subscriptionId,
    // No trailing slash: core-client joins it with paths that start with "/".
    endpoint: s.endpoint.replace(/\/+$/, ""),
    tokenScope: s.tokenScope,
    pollIntervalMs: s.pollIntervalMs,
  };
}
