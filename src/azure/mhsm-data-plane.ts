// The Managed HSM data plane, read as the daemon's identity (keys, versions, rotation policies, role assignments and
// definitions), the application crypto gate (a wrapKey/unwrapKey round trip as the application's own identity), and
// an app registration's secret end date from Microsoft Graph.
//
// Key material never leaves this file: the gate wraps 32 fresh random bytes, compares the unwrapped bytes with them
// in constant time, and returns only the outcome, the key id and the algorithm.
import { randomBytes, timingSafeEqual } from "node:crypto";
import type { TokenCredential } from "@azure/core-auth";
import {
  createPipelineRequest,
  isRestError,
  type PipelineResponse,
  RestError,
} from "@azure/core-rest-pipeline";
import { ClientSecretCredential } from "@azure/identity";
import type { KeyVaultKey } from "@azure/keyvault-keys";
import type { Secret } from "../config/secret.ts";
import { type KeyVaultClients, trimSlash } from "./key-vault-clients.ts";
import {
  BUILT_IN_ROLES,
  type ClassifiedFailure,
  classifyFailure,
  KeyVaultOperationError,
} from "./key-vault-errors.ts";
import { normaliseRoleScope } from "./key-vault-ids.ts";

const A = "Microsoft.KeyVault/managedHsm";
const READ_KEYS = `${A}/keys/read/action`;

/** Managed HSM RBAC REST api-version (the Key Vault 7.4 data plane; learn.microsoft.com/rest/api/keyvault). */
const MHSM_RBAC_API_VERSION = "7.4";

export interface CallOptions {
  signal?: AbortSignal;
}

export interface HsmKeyVersionInfo {
  version: string;
  enabled: boolean;
  expiresOn: string | null;
  createdOn: string | null;
}

export interface HsmKeyInfo {
  name: string;
  /** The current version's id (what an application wraps with). */
  keyId: string;
  currentVersion: string;
  type: string | null;
  /** Bits for RSA (from the modulus); null for oct-HSM, whose size the service does not expose. */
  size: number | null;
  curve: string | null;
  operations: string[];
  enabled: boolean;
  expiresOn: string | null;
  notBefore: string | null;
  exportable: boolean | null;
  recoveryLevel: string | null;
  versions: HsmKeyVersionInfo[];
  rotationPolicy: HsmRotationPolicy | null;
}

export interface HsmRotationPolicy {
  /** ISO 8601 durations from the policy's lifetime actions (absent = none of that kind). */
  rotateAfterCreate: string | null;
  rotateBeforeExpiry: string | null;
  notifyBeforeExpiry: string | null;
  /** `attributes.expiryTime`: every version the policy creates expires this long after creation. */
  expiresIn: string | null;
}

export interface RoleAssignmentInfo {
  id: string;
  name: string;
  scope: string;
  roleDefinitionId: string;
  /** The role's name from the HSM's own definitions (or the built-in table), else the id's last segment. */
  roleName: string;
  principalId: string;
}

export interface RoleDefinitionInfo {
  id: string;
  name: string;
  roleName: string;
  dataActions: string[];
}

export interface GateResult {
  ok: true;
  keyId: string;
  algorithm: string;
  /** Bytes wrapped (the size of the random test key, never the key). */
  bytes: number;
}

export interface SecretExpiry {
  appId: string;
  /** End date of the password credential whose hint matches the configured secret (or the latest when none matches). */
  endDateTime: string | null;
  /** How the credential was matched: its hint, or no match (then the latest end date is reported). */
  matchedBy: "hint" | "latest" | "none";
  credentials: number;
}

export class ManagedHsmDataPlane {
  constructor(private readonly clients: KeyVaultClients) {}

  /** Every key with its current version, versions and rotation policy (daemon identity). */
  async listKeys(hsmUri: string, o: CallOptions = {}): Promise<HsmKeyInfo[]> {
    const client = this.clients.keys(hsmUri);
    const names: string[] = [];
    try {
      for await (const k of client.listPropertiesOfKeys(abort(o))) if (!k.managed) names.push(k.name);
    } catch (e) {
      throw new KeyVaultOperationError("list-keys", hsmUri, classifyFailure(e, READ_KEYS));
    }
    const out: HsmKeyInfo[] = [];
    for (const name of names.sort()) out.push(await this.readKey(hsmUri, name, o));
    return out;
  }

  async readKey(hsmUri: string, name: string, o: CallOptions = {}): Promise<HsmKeyInfo> {
    const client = this.clients.keys(hsmUri);
    const on = `${trimSlash(hsmUri)}/keys/${name}`;
    let key: KeyVaultKey;
    try {
      key = await client.getKey(name, abort(o));
    } catch (e) {
      throw new KeyVaultOperationError("get-key", on, classifyFailure(e, READ_KEYS));
    }
    const versions: HsmKeyVersionInfo[] = [];
    try {
      for await (const v of client.listPropertiesOfKeyVersions(name, abort(o)))
        versions.push({
          version: v.version ?? "",
          enabled: v.enabled !== false,
          expiresOn: iso(v.expiresOn),
          createdOn: iso(v.createdOn),
        });
    } catch (e) {
      throw new KeyVaultOperationError("list-key-versions", on, classifyFailure(e, READ_KEYS));
    }
    let rotationPolicy: HsmRotationPolicy | null = null;
    try {
      const p = await client.getKeyRotationPolicy(name, abort(o));
      const action = (kind: string, trigger: "timeAfterCreate" | "timeBeforeExpiry") =>
        p.lifetimeActions?.find((a) => a.action.toLowerCase() === kind && a[trigger])?.[trigger] ?? null;
      rotationPolicy = {
        rotateAfterCreate: action("rotate", "timeAfterCreate"),
        rotateBeforeExpiry: action("rotate", "timeBeforeExpiry"),
        notifyBeforeExpiry: action("notify", "timeBeforeExpiry"),
        expiresIn: p.expiresIn ?? null,
      };
    } catch (e) {
      if (!(isRestError(e) && e.statusCode === 404))
        throw new KeyVaultOperationError("get-rotation-policy", on, classifyFailure(e, READ_KEYS));
    }
    const jwk = key.key;
    const n = jwk?.n;
    return {
      name,
      keyId: key.id ?? on,
      currentVersion: key.properties.version ?? "",
      type: key.keyType ?? null,
      size: n ? n.length * 8 : null,
      curve: jwk?.crv ?? null,
      operations: [...(key.keyOperations ?? [])],
      enabled: key.properties.enabled !== false,
      expiresOn: iso(key.properties.expiresOn),
      notBefore: iso(key.properties.notBefore),
      exportable: key.properties.exportable ?? null,
      recoveryLevel: key.properties.recoveryLevel ?? null,
      versions: versions.sort((a, b) => (a.createdOn ?? "").localeCompare(b.createdOn ?? "")),
      rotationPolicy,
    };
  }

  async listRoleDefinitions(hsmUri: string, o: CallOptions = {}): Promise<RoleDefinitionInfo[]> {
    const items = await this.rbacList(hsmUri, "/", "roleDefinitions", "list-role-definitions", o);
    return items.map((d) => {
      const props = (d.properties ?? {}) as {
        roleName?: string;
        permissions?: { dataActions?: string[] }[];
      };
      return {
        id: String(d.id ?? ""),
        name: String(d.name ?? ""),
        roleName: props.roleName ?? String(d.name ?? ""),
        dataActions: (props.permissions ?? []).flatMap((p) => p.dataActions ?? []),
      };
    });
  }

  /** Every role assignment of the HSM (scope `/` lists those at `/`, `/keys` and each key). */
  async listRoleAssignments(
    hsmUri: string,
    definitions: RoleDefinitionInfo[],
    o: CallOptions = {},
  ): Promise<RoleAssignmentInfo[]> {
    const names = new Map(definitions.map((d) => [d.name.toLowerCase(), d.roleName]));
    const items = await this.rbacList(hsmUri, "/", "roleAssignments", "list-role-assignments", o);
    return items.map((a) => {
      const props = (a.properties ?? {}) as {
        scope?: string;
        roleDefinitionId?: string;
        principalId?: string;
      };
      const defId = props.roleDefinitionId ?? "";
      const defName = defId.split("/").pop() ?? defId;
      return {
        id: String(a.id ?? ""),
        name: String(a.name ?? ""),
        scope: normaliseRoleScope(props.scope ?? "/"),
        roleDefinitionId: defId,
        roleName: names.get(defName.toLowerCase()) ?? BUILT_IN_ROLES[defName.toLowerCase()] ?? defName,
        principalId: props.principalId ?? "",
      };
    });
  }

  /**
   * The application crypto gate: as `credential` (the application's own identity), read the key's current version
   * and wrap, then unwrap, 32 random bytes with it. Resolves only when the unwrapped bytes equal the wrapped ones.
   * Throws a KeyVaultOperationError whose `failure.layer` names identity, role, key or network.
   */
  async wrapRoundTrip(
    hsmUri: string,
    keyName: string,
    credential: TokenCredential,
    o: CallOptions = {},
  ): Promise<GateResult> {
    const on = `${trimSlash(hsmUri)}/keys/${keyName}`;
    let key: KeyVaultKey;
    try {
      key = await this.clients.keysAs(hsmUri, credential).getKey(keyName, abort(o));
    } catch (e) {
      throw new KeyVaultOperationError("gate-get-key", on, classifyFailure(e, READ_KEYS));
    }
    const keyId = key.id ?? on;
    const algorithm = wrapAlgorithm(key);
    const crypto = this.clients.crypto(keyId, credential);
    const testKey = randomBytes(32);
    try {
      const wrapped = await crypto.wrapKey(algorithm as never, testKey, abort(o)).catch((e: unknown) => {
        throw new KeyVaultOperationError("gate-wrap-key", keyId, classifyFailure(e, `${A}/keys/wrap/action`));
      });
      const unwrapped = await crypto
        .unwrapKey(algorithm as never, wrapped.result, abort(o))
        .catch((e: unknown) => {
          throw new KeyVaultOperationError(
            "gate-unwrap-key",
            keyId,
            classifyFailure(e, `${A}/keys/unwrap/action`),
          );
        });
      const back = Buffer.from(unwrapped.result);
      if (back.length !== testKey.length || !timingSafeEqual(back, testKey))
        throw new KeyVaultOperationError("gate-compare", keyId, {
          kind: "other",
          layer: "key",
          message: "the unwrapped bytes differ from the wrapped ones",
        } satisfies ClassifiedFailure);
      return { ok: true, keyId, algorithm, bytes: testKey.length };
    } finally {
      testKey.fill(0);
    }
  }

  /** The application's own credential, built with the fleet's authority and trust. */
  applicationCredential(tenantId: string, clientId: string, secret: Secret): TokenCredential {
    return new ClientSecretCredential(tenantId, clientId, secret.reveal(), this.clients.identityOptions());
  }

  /** An app registration's secret end date from Microsoft Graph (`Application.Read.All` for the daemon identity). */
  async secretExpiry(appId: string, secret: Secret | undefined, o: CallOptions = {}): Promise<SecretExpiry> {
    const base = trimSlash(this.clients.settings.graphEndpoint);
    const url =
      `${base}/v1.0/applications?$filter=${encodeURIComponent(`appId eq '${appId}'`)}` +
      `&$select=${encodeURIComponent("appId,passwordCredentials")}`;
    const body = await this.send(this.clients.graph, url, "graph-application", appId, o);
    const app = (
      body.value as { passwordCredentials?: { hint?: string; endDateTime?: string }[] }[] | undefined
    )?.[0];
    if (!app)
      throw new KeyVaultOperationError("graph-application", appId, {
        kind: "http",
        statusCode: 404,
        layer: "identity",
        message: `no app registration with appId ${appId} is visible to the daemon`,
      });
    const creds = app.passwordCredentials ?? [];
    // Graph's `hint` is the secret's first three characters: enough to tell which credential is in use, and it is
    // compared here only, never recorded.
    const hint = secret?.reveal().slice(0, 3);
    const byHint = hint ? creds.filter((c) => c.hint === hint) : [];
    const pick = (list: typeof creds) =>
      list
        .map((c) => c.endDateTime ?? "")
        .sort()
        .at(-1) || null;
    if (byHint.length > 0)
      return { appId, endDateTime: pick(byHint), matchedBy: "hint", credentials: creds.length };
    return {
      appId,
      endDateTime: pick(creds),
      matchedBy: creds.length > 0 ? "latest" : "none",
      credentials: creds.length,
    };
  }

  private async rbacList(
    hsmUri: string,
    scope: string,
    kind: "roleAssignments" | "roleDefinitions",
    operation: string,
    o: CallOptions,
  ): Promise<Record<string, unknown>[]> {
    const s = normaliseRoleScope(scope);
    let url: string | undefined =
      `${trimSlash(hsmUri)}${s === "/" ? "" : s}/providers/Microsoft.Authorization/${kind}?api-version=${MHSM_RBAC_API_VERSION}`;
    const out: Record<string, unknown>[] = [];
    for (let page = 0; url && page < 100; page++) {
      const action = `${A}/${kind}/read/action`;
      const body = await this.send(this.clients.rbac, url, operation, trimSlash(hsmUri), o, action);
      out.push(...((body.value as Record<string, unknown>[] | undefined) ?? []));
      url = typeof body.nextLink === "string" && body.nextLink ? body.nextLink : undefined;
    }
    return out;
  }

  private async send(
    via: KeyVaultClients["rbac"],
    url: string,
    operation: string,
    target: string,
    o: CallOptions,
    action?: string,
  ): Promise<Record<string, unknown>> {
    const request = createPipelineRequest({
      url,
      method: "GET",
      ...(o.signal ? { abortSignal: o.signal } : {}),
    });
    request.headers.set("accept", "application/json");
    let response: PipelineResponse;
    try {
      response = await via.pipeline.sendRequest(via.httpClient, request);
    } catch (e) {
      throw new KeyVaultOperationError(operation, target, classifyFailure(e, action));
    }
    let body: Record<string, unknown> = {};
    try {
      body = response.bodyAsText ? (JSON.parse(response.bodyAsText) as Record<string, unknown>) : {};
    } catch {
      body = {};
    }
    if (response.status < 200 || response.status >= 300) {
      const error = (body.error ?? {}) as { code?: string; message?: string };
      const rest = new RestError(error.message ?? `Unexpected status code: ${response.status}`, {
        statusCode: response.status,
        ...(error.code ? { code: error.code } : {}),
        response,
      });
      throw new KeyVaultOperationError(operation, target, classifyFailure(rest, action));
    }
    return body;
  }
}

/** AES key wrap for oct keys (RFC 3394, A256KW), RSA-OAEP-256 for RSA keys. */
function wrapAlgorithm(key: KeyVaultKey): string {
  const kty = (key.keyType ?? "").toUpperCase();
  if (kty.startsWith("OCT")) return "A256KW";
  return "RSA-OAEP-256";
}

function iso(d: Date | undefined): string | null {
  return d ? d.toISOString() : null;
}

function abort(o: CallOptions): { abortSignal?: AbortSignal } {
  return o.signal ? { abortSignal: o.signal } : {};
}
