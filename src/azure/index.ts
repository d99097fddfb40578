// The Azure side of lunafleet: ARM clients and the Dedicated HSM deprovisioning gateway.
export {
  type AzureClientOptions,
  type AzureClients,
  type AzureSettings,
  azureSettingsFrom,
  createAzureClients,
  DEFAULT_ARM_ENDPOINT,
  DEFAULT_POLL_INTERVAL_MS,
  DEFAULT_TOKEN_SCOPE,
} from "./clients.ts";
export {
  type CallOptions,
  DedicatedHsmGateway,
  type DedicatedHsmInfo,
  type HsmDeleteResult,
  type HsmGoneProof,
  type ResourceGroupDeleteResult,
  type ResourceGroupHsmScan,
} from "./dedicated-hsm.ts";
export {
  type AzureFailure,
  type AzureFailureKind,
  type AzureOperation,
  AzureOperationError,
  describeFailure,
  type HsmAfterFailure,
  HsmDeleteFailedError,
  HsmNotGoneError,
  InvalidResourceIdError,
  ResourceGroupDeleteRefusedError,
} from "./errors.ts";
export {
  HSM_RESOURCE_TYPE,
  type HsmResourceId,
  LUNA_SKU,
  parseHsmResourceId,
  sameResourceId,
} from "./resource-id.ts";
