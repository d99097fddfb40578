// Errors of the Managed HSM / Key Vault side, and the classification of a failed data-plane call into the layer an
// operator must look at: identity (no token: app registration, secret, tenant), role (the HSM's local RBAC said no),
// key (the key or its version: disabled, missing, expired, wrong operations), network (no connection, or the HSM's
// firewall / private-link rule refused the caller), service (throttled or failing after the SDK's own retries).
//
// Like errors.ts, nothing from the SDK error is kept but status, codes, message and request id: a RestError's
// `request` holds the bearer token's headers.
import { isRestError } from "@azure/core-rest-pipeline";
import { type AzureFailure, describeFailure } from "./errors.ts";

export type FailureLayer = "identity" | "role" | "key" | "network" | "service";

/** Managed HSM local RBAC built-in roles (learn.microsoft.com/azure/key-vault/managed-hsm/built-in-roles). */
export const BUILT_IN_ROLES: Record<string, string> = {
  "a290e904-7015-4bba-90c8-60543313cdb4": "Managed HSM Administrator",
  "515eb02d-2335-4d2d-92f2-b1cbdf9c3778": "Managed HSM Crypto Officer",
  "21dbd100-6940-42c2-9190-5d6cb909625b": "Managed HSM Crypto User",
  "4bd23610-cdcf-4971-bdee-bdc562cc28e4": "Managed HSM Policy Administrator",
  "2c18b078-7c48-4d3a-af88-5a3a1b3f82b3": "Managed HSM Crypto Auditor",
  "33413926-3206-4cdd-b39a-83574fe37a17": "Managed HSM Crypto Service Encryption User",
  "21dbd100-6940-42c2-9190-5d6cb909625c": "Managed HSM Crypto Service Release User",
  "7b127d3c-77bd-4e3e-bbe0-dbb8971fa7f8": "Managed HSM Backup",
  "6efe6056-5259-49d2-8b3d-d3d73544b20b": "Managed HSM Restore",
};

/**
 * The least built-in role that grants a data action, for a 403's finding. Read-only actions name the Crypto Auditor
 * (reads key attributes and, as lunafleet assumes, role assignments), key use the Crypto User.
 */
function roleForAction(action: string): string {
  const a = action.toLowerCase();
  if (/\/keys\/(wrap|unwrap|encrypt|decrypt|sign|verify)\/action$/.test(a)) return "Managed HSM Crypto User";
  if (/\/keys\/(create|delete|write\/action|import\/action|backup\/action|restore\/action)$/.test(a))
    return "Managed HSM Crypto User";
  if (/\/keys\/(read\/action|deletedkeys\/read\/action)$/.test(a)) return "Managed HSM Crypto Auditor";
  if (/\/(roleassignments|roledefinitions)\/read\/action$/.test(a)) return "Managed HSM Crypto Auditor";
  if (/\/(roleassignments|roledefinitions)\//.test(a)) return "Managed HSM Policy Administrator";
  if (/\/securitydomain\//.test(a)) return "Managed HSM Administrator";
  return "a role granting this data action";
}

export interface ClassifiedFailure extends AzureFailure {
  layer: FailureLayer;
  /** The Key Vault `innererror.code` (KeyDisabled, ForbiddenByFirewall, …) when the service sent one. */
  innerCode?: string;
  /** For a 403 from local RBAC: the data action refused and the least role that grants it. */
  missingAction?: string;
  missingRole?: string;
  /** Entra ID's AADSTS error number for an identity failure (e.g. AADSTS7000215: invalid client secret). */
  aadsts?: string;
}

const KEY_INNER = new Set([
  "keydisabled",
  "keynotfound",
  "keyexpired",
  "keynotyetvalid",
  "keyoperationnotallowed",
]);
const NETWORK_INNER = new Set(["forbiddenbyfirewall", "forbiddenbyconnection", "forbiddenbypolicy"]);

/**
 * Classify anything an Azure SDK client, the core pipeline or @azure/identity threw. `action` is the data action the
 * call needs: named in a role failure when the service's own text is not available (paged listings drop it).
 */
export function classifyFailure(e: unknown, action?: string): ClassifiedFailure {
  const base = describeFailure(e);
  const err = e as { name?: string; message?: string; errorResponse?: { error?: string } };
  // @azure/identity: AuthenticationError (Entra answered: bad secret, disabled app, wrong tenant),
  // CredentialUnavailableError (no credential at all), AggregateAuthenticationError (every one of a chain failed).
  if (
    err?.name === "AuthenticationError" ||
    err?.name === "CredentialUnavailableError" ||
    err?.name === "AggregateAuthenticationError" ||
    err?.name === "AuthenticationRequiredError"
  ) {
    const aadsts = /AADSTS\d+/.exec(err.message ?? "")?.[0];
    return {
      kind: "other",
      // Entra's text names the app and a trace id; keep the code and the first sentence only.
      message: firstSentence(err.message ?? "authentication failed"),
      layer: "identity",
      ...(aadsts ? { aadsts, code: aadsts } : {}),
    };
  }
  if (isRestError(e)) {
    if (e.statusCode === undefined) return { ...base, layer: "network" };
    const body = errorBody(e);
    // Paged operations replace the service's words with "Pagination failed with unexpected statusCode N".
    if (body?.message) base.message = body.message.slice(0, 500);
    if (body?.code && !base.code) base.code = body.code;
    const inner = body?.innererror?.code ?? body?.innerError?.code;
    const innerLower = inner?.toLowerCase();
    const withInner = inner ? { innerCode: inner } : {};
    if (e.statusCode === 401) return { ...base, ...withInner, layer: "identity" };
    if (e.statusCode === 403) {
      if (innerLower && NETWORK_INNER.has(innerLower)) return { ...base, ...withInner, layer: "network" };
      if (innerLower && KEY_INNER.has(innerLower)) return { ...base, ...withInner, layer: "key" };
      const refused =
        /Not authorized to access (\S+?)(?: on|$)/i.exec(base.message)?.[1] ??
        /Action: '([^']+)'/i.exec(base.message)?.[1] ??
        action;
      return {
        ...base,
        ...withInner,
        layer: "role",
        ...(refused ? { missingAction: refused, missingRole: roleForAction(refused) } : {}),
      };
    }
    if (e.statusCode === 404 || (innerLower && KEY_INNER.has(innerLower)))
      return { ...base, ...withInner, layer: "key" };
    if (e.statusCode === 400 && /key|algorithm|operation/i.test(base.message))
      return { ...base, ...withInner, layer: "key" };
    return { ...base, ...withInner, layer: "service" };
  }
  // CryptographyClient's own checks on the key it fetched (keyvault-keys cryptographyClient.js ensureValid).
  if (
    /can't be used before|expired at|is not supported on key|Unable to support operation/i.test(
      err?.message ?? "",
    )
  )
    return { ...base, layer: "key" };
  // Node transport errors that escaped the pipeline (socket reset after the answer began, TLS).
  const code = (e as { code?: unknown })?.code;
  if (typeof code === "string" && /^(E[A-Z]+|ERR_TLS|DEPTH_ZERO|UNABLE_TO|CERT_|SELF_SIGNED)/.test(code))
    return { ...base, code, layer: "network" };
  return { ...base, layer: "service" };
}

interface KeyVaultErrorBody {
  code?: string;
  message?: string;
  innererror?: { code?: string };
  innerError?: { code?: string };
}

function errorBody(e: {
  details?: unknown;
  response?: { bodyAsText?: string | null };
}): KeyVaultErrorBody | undefined {
  const fromDetails = (e.details as { error?: KeyVaultErrorBody } | undefined)?.error;
  if (fromDetails && (fromDetails.innererror || fromDetails.innerError)) return fromDetails;
  const text = e.response?.bodyAsText;
  if (!text) return fromDetails;
  try {
    return (JSON.parse(text) as { error?: KeyVaultErrorBody }).error ?? fromDetails;
  } catch {
    return fromDetails;
  }
}

function firstSentence(text: string): string {
  const line = text.split(/\r?\n/)[0] ?? text;
  const aad = /AADSTS\d+:[^.]*\./.exec(line)?.[0];
  return (aad ?? line).slice(0, 300);
}

/** A Managed HSM / Key Vault call failed; carries the classified failure (safe to log) and the operation. */
export class KeyVaultOperationError extends Error {
  /** Only a throttled/failing service or a network fault may pass by itself; identity, role and key need a person. */
  readonly retryable: boolean;
  constructor(
    readonly operation: string,
    readonly target: string,
    readonly failure: ClassifiedFailure,
    detail?: string,
  ) {
    super(
      `${operation} ${target}: ${failure.layer} layer: ${failure.code ? `${failure.code}: ` : ""}${failure.message}` +
        (failure.statusCode !== undefined ? ` (HTTP ${failure.statusCode}` : "") +
        (failure.statusCode !== undefined && failure.requestId
          ? `, x-ms-request-id ${failure.requestId})`
          : "") +
        (failure.statusCode !== undefined && !failure.requestId ? ")" : "") +
        (failure.missingRole ? `; needs ${failure.missingRole} (${failure.missingAction})` : "") +
        (detail ? `; ${detail}` : ""),
    );
    this.name = "KeyVaultOperationError";
    this.retryable = failure.layer === "service" || failure.layer === "network";
  }
}

/** A change the gateway refuses before sending anything (purge under purge protection, group still holding an HSM). */
export class KeyVaultChangeRefused extends Error {
  readonly retryable = false;
  constructor(
    readonly operation: string,
    readonly target: string,
    readonly reason: string,
  ) {
    super(`${operation} ${target} refused: ${reason}`);
    this.name = "KeyVaultChangeRefused";
  }
}
