// Construction of the clients for Managed HSM, Key Vault and the applications that use their keys. The SDK clients
// are used unchanged; this file only decides endpoint, token scope, trust and credential, and adds one recording
// policy (http-record.ts) after the SDK's own retry policy:
//
//   ARM      @azure/arm-keyvault 5 KeyVaultManagementClient (managed HSMs, deleted managed HSMs, purge, vaults) and
//            @azure/arm-monitor 7 MonitorClient (diagnostic settings). arm-keyvault's token scope follows `endpoint`
//            (`${endpoint}/.default`, reference/azure.md §4): it is given the fleet's tokenScope explicitly.
//   data     @azure/keyvault-keys KeyClient / CryptographyClient on the HSM URI: the Key Vault challenge-based
//            authentication (keyvault-common) learns tenant and resource from the service's 401, and checks that the
//            resource's domain matches the HSM's host.
//   RBAC     Managed HSM role assignments and definitions: the Key Vault administration package is NOT on the registry
//            here (`npm view @azure/keyvault-admin` answers E404), so they go through an Azure core pipeline
//            (createPipelineFromOptions: the SDK's retry, throttling and redirect policies) with the same Key Vault
//            challenge policy keyvault-keys uses (keyVaultAuthenticationPolicy from @azure/keyvault-common).
//   Graph    an app registration's password credentials (end dates), through a core pipeline with the bearer policy.
//
// Retries, 429 with Retry-After, 5xx and long-running operations are the SDK's own (core-rest-pipeline's default
// retry: 3 retries, exponential back-off, Retry-After honoured; core-lro pollers with `updateIntervalInMs`).

import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from "node:dns";
import { Agent } from "node:https";
import { KeyVaultManagementClient } from "@azure/arm-keyvault";
import { MonitorClient } from "@azure/arm-monitor";
import { ResourceManagementClient } from "@azure/arm-resources";
import type { TokenCredential } from "@azure/core-auth";
import {
  bearerTokenAuthenticationPolicy,
  createDefaultHttpClient,
  createPipelineFromOptions,
  type HttpClient,
  type Pipeline,
  type PipelineOptions,
  type PipelineRetryOptions,
} from "@azure/core-rest-pipeline";
import { keyVaultAuthenticationPolicy } from "@azure/keyvault-common";
import { CryptographyClient, KeyClient } from "@azure/keyvault-keys";
import type { AzureSettings } from "./clients.ts";
import { httpRecordPolicy } from "./http-record.ts";

export interface KeyVaultClientOptions {
  arm: AzureSettings;
  /** The daemon's own identity (ARM reads, data-plane audit, Graph). Default: DefaultAzureCredential, by the caller. */
  credential: TokenCredential;
  /** Microsoft Graph base (https://graph.microsoft.com). */
  graphEndpoint: string;
  /** Entra ID authority for application identities (https://login.microsoftonline.com). */
  authorityHost: string;
  /**
   * Twin fleets only: trust these CAs and resolve `*.localhost` names to the loopback address (RFC 6761 §6.3), so
   * the twin's per-HSM host names work without touching /etc/hosts. Production uses the system CA store and DNS.
   */
  twinTransport?: { ca: string[] };
  retryOptions?: PipelineRetryOptions;
}

export interface KeyVaultClients {
  settings: KeyVaultClientOptions;
  management: KeyVaultManagementClient;
  monitor: MonitorClient;
  /** Resource groups and the generic resource list (the resource-group guard). */
  resources: ResourceManagementClient;
  /** A KeyClient for one HSM URI with the daemon's identity (cached per URI). */
  keys(hsmUri: string): KeyClient;
  /** A CryptographyClient for a key id, with the given identity (the application's own, for the crypto gate). */
  crypto(keyId: string, credential: TokenCredential): CryptographyClient;
  /** A KeyClient with another identity (the application's, for the gate's key read). */
  keysAs(hsmUri: string, credential: TokenCredential): KeyClient;
  /** Core pipeline for Managed HSM RBAC on one HSM, Key Vault challenge authentication, daemon identity. */
  rbac: { pipeline: Pipeline; httpClient: HttpClient };
  /** Core pipeline for Microsoft Graph with the daemon identity. */
  graph: { pipeline: Pipeline; httpClient: HttpClient; scope: string };
  /** Options every identity credential built for an application must get (authority, trust). */
  identityOptions(): Record<string, unknown>;
}

/** RFC 6761 §6.3: names under `.localhost` are loopback. Everything else goes to the system resolver. */
function loopbackForLocalhostNames(
  hostname: string,
  options: LookupOptions,
  callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
): void {
  if (/^(.+\.)?localhost$/i.test(hostname)) {
    if (options.all) callback(null, [{ address: "127.0.0.1", family: 4 }]);
    else callback(null, "127.0.0.1", 4);
    return;
  }
  dnsLookup(hostname, options, callback as never);
}

export function createKeyVaultClients(options: KeyVaultClientOptions): KeyVaultClients {
  const { arm, credential } = options;
  const agent = options.twinTransport
    ? new Agent({ ca: options.twinTransport.ca, keepAlive: true, lookup: loopbackForLocalhostNames })
    : undefined;
  const transport = agent ? { agent } : {};
  const retry = options.retryOptions ? { retryOptions: options.retryOptions } : {};
  const recording = { additionalPolicies: [{ policy: httpRecordPolicy(), position: "perRetry" as const }] };
  const common = { ...transport, ...retry, ...recording };

  const management = new KeyVaultManagementClient(credential, arm.subscriptionId, {
    endpoint: arm.endpoint,
    credentials: { scopes: [arm.tokenScope] },
    ...common,
  });
  const monitor = new MonitorClient(credential, arm.subscriptionId, {
    endpoint: arm.endpoint,
    credentialScopes: [arm.tokenScope],
    ...common,
  });

  const resources = new ResourceManagementClient(credential, arm.subscriptionId, {
    endpoint: arm.endpoint,
    credentialScopes: [arm.tokenScope],
    ...common,
  });

  const keyClients = new Map<string, KeyClient>();
  const pipeline = (auth: "keyvault" | "graph") => {
    const p = createPipelineFromOptions({ ...transport, ...retry } as PipelineOptions);
    p.addPolicy(httpRecordPolicy(), { afterPhase: "Retry" });
    if (auth === "keyvault") p.addPolicy(keyVaultAuthenticationPolicy(credential), { phase: "Sign" });
    else
      p.addPolicy(
        bearerTokenAuthenticationPolicy({
          credential,
          scopes: `${trimSlash(options.graphEndpoint)}/.default`,
        }),
        { phase: "Sign" },
      );
    return p;
  };
  const httpClient = createDefaultHttpClient();

  return {
    settings: options,
    management,
    monitor,
    resources,
    keys(hsmUri) {
      const uri = trimSlash(hsmUri);
      let c = keyClients.get(uri);
      if (!c) {
        c = new KeyClient(uri, credential, common);
        keyClients.set(uri, c);
      }
      return c;
    },
    keysAs: (hsmUri, cred) => new KeyClient(trimSlash(hsmUri), cred, common),
    crypto: (keyId, cred) => new CryptographyClient(keyId, cred, common),
    rbac: { pipeline: pipeline("keyvault"), httpClient },
    graph: { pipeline: pipeline("graph"), httpClient, scope: `${trimSlash(options.graphEndpoint)}/.default` },
    identityOptions: () => ({
      authorityHost: options.authorityHost,
      ...transport,
      // A private authority (sovereign cloud proxy, the twin) cannot be validated against login.microsoft.com.
      ...(options.authorityHost.replace(/\/+$/, "") !== "https://login.microsoftonline.com"
        ? { disableInstanceDiscovery: true }
        : {}),
    }),
  };
}

export function trimSlash(uri: string): string {
  return uri.replace(/\/+$/, "");
}
