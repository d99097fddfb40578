// Typed errors of the Azure side. Each names the resource, the operation and the cause, and carries only what is
// safe to log: status, ARM error code, message and request ids. The SDK's RestError is NOT kept as `cause`: its
// `request` holds the bearer token's headers, and a structured logger that walks non-enumerable properties could
// print them.
import { isRestError } from "@azure/core-rest-pipeline";

export type AzureOperation =
  | "get-hsm"
  | "delete-hsm"
  | "verify-hsm-gone"
  | "list-hsms"
  | "list-resources"
  | "delete-resource-group";

export type AzureFailureKind =
  /** An HTTP answer outside the operation's accepted statuses (a RestError). */
  | "http"
  /** A long-running operation that reported `Failed` (the SDK rejects with a plain Error). */
  | "async-operation"
  /** The caller's AbortSignal fired; the operation may still be running in Azure. */
  | "aborted"
  /** No HTTP answer at all: DNS, TLS, connection reset, timeout. */
  | "transport"
  | "other";

export interface AzureFailure {
  kind: AzureFailureKind;
  message: string;
  statusCode?: number;
  /** ARM `error.code`, or the code a failed async operation reported. */
  code?: string;
  /** `x-ms-request-id` of the failing answer, when there was one. */
  requestId?: string;
}

export class AzureOperationError extends Error {
  constructor(
    readonly operation: AzureOperation,
    readonly resourceId: string,
    readonly failure: AzureFailure,
    detail?: string,
  ) {
    super(`${operation} ${resourceId}: ${describe(failure)}${detail ? `; ${detail}` : ""}`);
    this.name = "AzureOperationError";
  }
}

/** What a re-read of the HSM showed after a failed delete. */
export interface HsmAfterFailure {
  /** The GET answered 200: the resource is still there. */
  exists: boolean;
  provisioningState?: string;
  statusMessage?: string;
  /** `x-ms-request-id` of the re-read. */
  requestId?: string;
  /** The re-read answered 404 for the resource group or subscription: the HSM may be orphaned, still billed. */
  orphanSuspected?: boolean;
  /** Why the re-read itself failed, if it did (then `exists` is unknown and reported as true: never assume gone). */
  readError?: string;
}

/** The DELETE of a Dedicated HSM failed, synchronously (RestError) or as a Failed async operation. */
export class HsmDeleteFailedError extends AzureOperationError {
  constructor(
    resourceId: string,
    failure: AzureFailure,
    readonly afterFailure: HsmAfterFailure,
    /** `x-ms-request-id` of every answer the delete received (DELETE, then each poll). */
    readonly requestIds: string[],
  ) {
    super("delete-hsm", resourceId, failure, describeAfter(afterFailure));
    this.name = "HsmDeleteFailedError";
  }
}

/** A check for deletion found no proof: the HSM answered, or the 404 came from a missing parent, not the resource. */
export class HsmNotGoneError extends AzureOperationError {
  constructor(resourceId: string, failure: AzureFailure, detail: string) {
    super("verify-hsm-gone", resourceId, failure, detail);
    this.name = "HsmNotGoneError";
  }
}

/** `deleteResourceGroup` refused before sending anything: the group still holds HSMs (or other resources). */
export class ResourceGroupDeleteRefusedError extends AzureOperationError {
  constructor(
    resourceGroupId: string,
    readonly hsmIds: string[],
    readonly otherResourceIds: string[],
    reason: string,
  ) {
    super("delete-resource-group", resourceGroupId, { kind: "other", message: reason });
    this.name = "ResourceGroupDeleteRefusedError";
  }
}

export class InvalidResourceIdError extends Error {
  constructor(
    readonly resourceId: string,
    reason: string,
  ) {
    super(`invalid resource id ${JSON.stringify(resourceId)}: ${reason}`);
    this.name = "InvalidResourceIdError";
  }
}

// "The long-running operation has failed. <code>. <message>" — core-lro 2.x, http/operation.js getErrorFromResponse.
const LRO_FAILED = /^The long-running operation has failed(?:\. ([^.\s]+)\. ([\s\S]*))?/;

/** Reduces anything the SDK throws to a loggable `AzureFailure`. */
export function describeFailure(e: unknown): AzureFailure {
  if (isRestError(e)) {
    const failure: AzureFailure = {
      kind: e.statusCode === undefined ? "transport" : "http",
      message: e.message,
    };
    if (e.statusCode !== undefined) failure.statusCode = e.statusCode;
    if (e.code !== undefined) failure.code = e.code;
    const requestId = e.response?.headers.get("x-ms-request-id");
    if (requestId) failure.requestId = requestId;
    return failure;
  }
  if (e instanceof Error) {
    if (e.name === "AbortError") return { kind: "aborted", message: e.message };
    const lro = LRO_FAILED.exec(e.message);
    if (lro) {
      const failure: AzureFailure = { kind: "async-operation", message: lro[2] ?? e.message };
      if (lro[1]) failure.code = lro[1];
      return failure;
    }
    return { kind: "other", message: e.message };
  }
  return { kind: "other", message: String(e) };
}

function describe(f: AzureFailure): string {
  const parts: string[] = [];
  if (f.kind === "async-operation") parts.push("the long-running operation failed:");
  if (f.kind === "aborted") parts.push("aborted:");
  if (f.code) parts.push(`${f.code}:`);
  parts.push(f.message);
  const extra: string[] = [];
  if (f.statusCode !== undefined) extra.push(`HTTP ${f.statusCode}`);
  if (f.requestId) extra.push(`x-ms-request-id ${f.requestId}`);
  return parts.join(" ") + (extra.length > 0 ? ` (${extra.join(", ")})` : "");
}

function describeAfter(a: HsmAfterFailure): string {
  if (a.readError) return `re-read failed (${a.readError}); the HSM must be assumed present`;
  if (a.orphanSuspected)
    return "a re-read found its resource group or subscription missing: the HSM may be orphaned and still billed";
  if (!a.exists) return "a re-read answered 404, but that is not proof of deletion: verify it";
  return (
    `the HSM is still there: provisioningState=${a.provisioningState ?? "?"}, ` +
    `statusMessage=${JSON.stringify(a.statusMessage ?? "")}` +
    (a.requestId ? `, x-ms-request-id ${a.requestId}` : "")
  );
}
