// One Managed HSM pool's data plane, as the Key Vault REST API answers it (keys 7.x / 2025-07-01, local RBAC 7.4):
// keys and versions with real key material (AES key wrap RFC 3394 through node's `id-aes*-wrap`, RSA-OAEP), rotation
// policies, role assignments and definitions. Authentication, network rules and faults are decided before this
// (server.ts); here every operation checks local RBAC for its data action at its scope.
import {
  constants,
  createCipheriv,
  createDecipheriv,
  createPublicKey,
  type KeyObject,
  privateDecrypt,
  publicEncrypt,
  randomUUID,
} from "node:crypto";
import type { Reply } from "./entra.ts";
import {
  type KeyVaultTwinModel,
  ROLE_DEFINITIONS,
  type TwinKey,
  type TwinKeyVersion,
  type TwinManagedHsm,
} from "./model.ts";

const KEYS_API_VERSIONS = ["7.2", "7.3", "7.4", "7.5", "7.6", "2025-07-01"];
const RBAC_API_VERSIONS = ["7.2", "7.3", "7.4", "7.5", "7.6", "2025-07-01"];
const A = "Microsoft.KeyVault/managedHsm";
const AES_KW_IV = Buffer.from("A6A6A6A6A6A6A6A6", "hex");

export interface DataPlaneRequest {
  method: string;
  /** Path with duplicate slashes collapsed. */
  path: string;
  query: URLSearchParams;
  body: unknown;
  principalId: string;
  /** `https://<host>` of this pool, for kids and next links. */
  base: string;
}

export function dataPlane(model: KeyVaultTwinModel, hsm: TwinManagedHsm, req: DataPlaneRequest): Reply {
  const seg = req.path.split("/").filter(Boolean).map(decodeURIComponent);
  const lower = seg.map((s) => s.toLowerCase());
  const providerAt = lower.indexOf("providers");
  if (providerAt >= 0 && lower[providerAt + 1] === "microsoft.authorization") {
    const bad = checkVersion(req.query, RBAC_API_VERSIONS);
    if (bad) return bad;
    const scope = `/${seg.slice(0, providerAt).join("/")}`;
    const kind = lower[providerAt + 2];
    if (req.method === "GET" && seg.length === providerAt + 3 && kind === "roleassignments") {
      const denied = authorize(hsm, req.principalId, `${A}/roleAssignments/read/action`, scope);
      if (denied) return denied;
      // [I] Listing at `/` returns every assignment of the pool (what `az keyvault role assignment list` shows).
      const under = scope === "/" ? "" : scope.toLowerCase();
      return ok({
        value: hsm.roleAssignments
          .filter((a) => a.scope.toLowerCase().startsWith(under))
          .map((a) => ({
            id: `${a.scope === "/" ? "" : a.scope}/providers/Microsoft.Authorization/roleAssignments/${a.name}`,
            name: a.name,
            type: "Microsoft.Authorization/roleAssignments",
            properties: {
              scope: a.scope,
              roleDefinitionId: `Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/${a.roleDefinitionId}`,
              principalId: a.principalId,
            },
          })),
        nextLink: null,
      });
    }
    if (req.method === "GET" && seg.length === providerAt + 3 && kind === "roledefinitions") {
      const denied = authorize(hsm, req.principalId, `${A}/roleDefinitions/read/action`, scope);
      if (denied) return denied;
      return ok({
        value: ROLE_DEFINITIONS.map((d) => ({
          id: `Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/${d.id}`,
          name: d.id,
          type: "Microsoft.Authorization/roleDefinitions",
          properties: {
            roleName: d.roleName,
            type: "AKVBuiltInRole",
            description: "",
            permissions: [{ actions: [], notActions: [], dataActions: d.dataActions, notDataActions: [] }],
            assignableScopes: ["/"],
          },
        })),
        nextLink: null,
      });
    }
    return notFound(req);
  }

  if (lower[0] !== "keys") return notFound(req);
  const bad = checkVersion(req.query, KEYS_API_VERSIONS);
  if (bad) return bad;

  // GET /keys
  if (seg.length === 1 && req.method === "GET") {
    const denied = authorize(hsm, req.principalId, `${A}/keys/read/action`, "/keys");
    if (denied) return denied;
    return ok({
      value: [...hsm.keys.values()].map((k) => ({
        kid: `${req.base}/keys/${k.name}`,
        attributes: attributes(hsm, current(k)),
        tags: {},
      })),
      nextLink: null,
    });
  }
  const key = hsm.keys.get((seg[1] ?? "").toLowerCase());
  const scope = `/keys/${key?.name ?? seg[1]}`;
  const readDenied = () => authorize(hsm, req.principalId, `${A}/keys/read/action`, scope);

  if (req.method === "GET" && (seg.length === 2 || seg.length === 3)) {
    const denied = readDenied();
    if (denied) return denied;
    if (!key) return keyNotFound(seg[1] ?? "");
    if (lower[2] === "versions")
      return ok({
        value: key.versions.map((v) => ({ kid: kid(req.base, key, v), attributes: attributes(hsm, v) })),
        nextLink: null,
      });
    if (lower[2] === "rotationpolicy") return ok(rotationPolicy(req.base, key));
    const v = seg.length === 3 ? key.versions.find((x) => x.version === seg[2]) : current(key);
    if (!v) return keyNotFound(`${seg[1]}/${seg[2]}`);
    return ok(bundle(req.base, hsm, key, v));
  }

  // POST /keys/{name}/{version}/wrapkey|unwrapkey (an empty version = the current one)
  const op = lower.at(-1);
  if (
    req.method === "POST" &&
    (op === "wrapkey" || op === "unwrapkey") &&
    (seg.length === 3 || seg.length === 4)
  ) {
    const action = op === "wrapkey" ? "wrap" : "unwrap";
    const denied = authorize(hsm, req.principalId, `${A}/keys/${action}/action`, scope);
    if (denied) return denied;
    if (!key) return keyNotFound(seg[1] ?? "");
    const v = seg.length === 4 ? key.versions.find((x) => x.version === seg[2]) : current(key);
    if (!v) return keyNotFound(`${seg[1]}/${seg[2]}`);
    const opName = op === "wrapkey" ? "wrapKey" : "unwrapKey";
    // Observed on Key Vault: unwrap/decrypt/sign with a disabled key are refused with KeyDisabled. [I] For oct-HSM
    // keys (no public half) the twin refuses wrapKey too.
    if (!v.enabled && (opName === "unwrapKey" || key.type === "oct-HSM"))
      return forbidden(`Operation ${opName} is not allowed on a disabled key.`, "KeyDisabled");
    if (!key.operations.includes(opName))
      return badParameter(`Operation ${opName} is not permitted for this key.`);
    const body = (req.body ?? {}) as { alg?: string; value?: string };
    if (typeof body.alg !== "string" || typeof body.value !== "string")
      return badParameter("The request body must name 'alg' and 'value'.");
    const input = Buffer.from(body.value, "base64url");
    const result = transform(key, v, body.alg, input, opName);
    if ("error" in result) return badParameter(result.error);
    const value = result.value.toString("base64url");
    model.sensitive.wrapValues.push(body.value, value);
    return ok({ kid: kid(req.base, key, v), value });
  }
  return notFound(req);
}

/** Local RBAC: a role assignment of the principal, at or above `scope`, whose role grants `action`. */
export function authorize(
  hsm: TwinManagedHsm,
  principalId: string,
  action: string,
  scope: string,
): Reply | undefined {
  const target = scope.toLowerCase().replace(/\/+$/, "") || "/";
  const granted = hsm.roleAssignments.some((a) => {
    if (a.principalId.toLowerCase() !== principalId.toLowerCase()) return false;
    const s = a.scope.toLowerCase().replace(/\/+$/, "") || "/";
    const covers = s === "/" || s === target || target.startsWith(`${s}/`);
    if (!covers) return false;
    const role = ROLE_DEFINITIONS.find((d) => d.id === a.roleDefinitionId);
    return role?.dataActions.some((d) => matches(d, action)) === true;
  });
  if (granted) return undefined;
  // Managed HSM's refusal as the Azure CLI shows it: "(AccessDenied) Not authorized to access <action> on <scope>".
  // [I] The exact punctuation and the Activity ID's form.
  return {
    status: 403,
    body: {
      error: {
        code: "AccessDenied",
        message: `Not authorized to access ${action} on '${scope}' (Activity ID: ${randomUUID()})`,
      },
    },
  };
}

function matches(granted: string, action: string): boolean {
  const g = granted.toLowerCase();
  const a = action.toLowerCase();
  return g.endsWith("/*") ? a.startsWith(g.slice(0, -1)) : g === a;
}

function current(k: TwinKey): TwinKeyVersion {
  return k.versions[k.versions.length - 1]!;
}

function kid(base: string, k: TwinKey, v: TwinKeyVersion): string {
  return `${base}/keys/${k.name}/${v.version}`;
}

function attributes(hsm: TwinManagedHsm, v: TwinKeyVersion) {
  const s = (d: Date) => Math.floor(d.getTime() / 1000);
  const customized = hsm.softDeleteRetentionDays < 90 ? "Customized" : "";
  return {
    enabled: v.enabled,
    created: s(v.created),
    updated: s(v.created),
    ...(v.expires ? { exp: s(v.expires) } : {}),
    recoveryLevel: `${customized}Recoverable${hsm.purgeProtection ? "" : "+Purgeable"}`,
    recoverableDays: hsm.softDeleteRetentionDays,
    exportable: false,
  };
}

function bundle(base: string, hsm: TwinManagedHsm, k: TwinKey, v: TwinKeyVersion) {
  const jwk: Record<string, unknown> = { kid: kid(base, k, v), kty: k.type, key_ops: k.operations };
  if (k.type !== "oct-HSM") {
    // The public half only, as the service returns it.
    const pub = createPublicKey(v.material as KeyObject).export({ format: "jwk" }) as Record<string, string>;
    if (k.type === "RSA-HSM") Object.assign(jwk, { n: pub.n, e: pub.e });
    else Object.assign(jwk, { crv: k.curve, x: pub.x, y: pub.y });
  }
  return { key: jwk, attributes: attributes(hsm, v), tags: {} };
}

function rotationPolicy(base: string, k: TwinKey) {
  const p = k.rotationPolicy;
  // [I] A key without a policy answers the service's default: notify 30 days before expiry, no rotation.
  const lifetimeActions = p?.rotateAfter
    ? [{ trigger: { timeAfterCreate: p.rotateAfter }, action: { type: "Rotate" } }]
    : [{ trigger: { timeBeforeExpiry: "P30D" }, action: { type: "Notify" } }];
  return {
    id: `${base}/keys/${k.name}/rotationpolicy`,
    lifetimeActions,
    attributes: {
      ...(p?.expiresIn ? { expiryTime: p.expiresIn } : {}),
      created: 1_700_000_000,
      updated: 1_700_000_000,
    },
  };
}

function transform(
  k: TwinKey,
  v: TwinKeyVersion,
  alg: string,
  input: Buffer,
  op: "wrapKey" | "unwrapKey",
): { value: Buffer } | { error: string } {
  const aes = /^A(128|192|256)KW$/.exec(alg);
  if (aes) {
    if (k.type !== "oct-HSM") return { error: `Algorithm ${alg} is not supported for key type ${k.type}.` };
    const bits = Number(aes[1]);
    if (bits !== k.size)
      return { error: `Algorithm ${alg} requires a ${bits}-bit key; this key has ${k.size} bits.` };
    if (input.length < 16 || input.length % 8 !== 0)
      return { error: "The key to wrap must be a multiple of 8 bytes, at least 16." };
    try {
      const c =
        op === "wrapKey"
          ? createCipheriv(`id-aes${bits}-wrap`, v.material as Buffer, AES_KW_IV)
          : createDecipheriv(`id-aes${bits}-wrap`, v.material as Buffer, AES_KW_IV);
      return { value: Buffer.concat([c.update(input), c.final()]) };
    } catch {
      return { error: "The wrapped key could not be unwrapped with this key (integrity check failed)." };
    }
  }
  if (alg === "RSA-OAEP-256" || alg === "RSA-OAEP") {
    if (k.type !== "RSA-HSM") return { error: `Algorithm ${alg} is not supported for key type ${k.type}.` };
    const oaepHash = alg === "RSA-OAEP" ? "sha1" : "sha256";
    const key = v.material as KeyObject;
    try {
      const padding = constants.RSA_PKCS1_OAEP_PADDING;
      return {
        value:
          op === "wrapKey"
            ? publicEncrypt({ key: createPublicKey(key), padding, oaepHash }, input)
            : privateDecrypt({ key, padding, oaepHash }, input),
      };
    } catch {
      return { error: "The value could not be decrypted with this key." };
    }
  }
  return { error: `Algorithm ${alg} is not supported by this key.` };
}

function checkVersion(query: URLSearchParams, accepted: string[]): Reply | undefined {
  const v = query.get("api-version");
  if (v && accepted.includes(v)) return undefined;
  return {
    status: 400,
    body: {
      error: {
        code: "BadParameter",
        message: v
          ? `The specified version (${v}) is not recognized. Consider using the latest supported version (${accepted.at(-1)}).`
          : "The request URI contains an invalid or missing api-version parameter.",
      },
    },
  };
}

function ok(body: unknown): Reply {
  return { status: 200, body };
}

function forbidden(message: string, inner: string): Reply {
  return { status: 403, body: { error: { code: "Forbidden", message, innererror: { code: inner } } } };
}

function badParameter(message: string): Reply {
  return { status: 400, body: { error: { code: "BadParameter", message } } };
}

function keyNotFound(name: string): Reply {
  return {
    status: 404,
    body: {
      error: { code: "KeyNotFound", message: `A key with (name/id) ${name} was not found in this HSM.` },
    },
  };
}

function notFound(req: DataPlaneRequest): Reply {
  // [I] The twin implements keys (read, versions, rotation policy, wrap/unwrap) and RBAC reads only.
  return {
    status: 404,
    body: {
      error: { code: "NotFound", message: `The twin has no data-plane route for ${req.method} ${req.path}.` },
    },
  };
}
