// The Managed HSM / Key Vault port of the engine, on top of the context's Azure port, and its recorded form: what a
// step may ask of Managed HSM, Key Vault, Entra ID (as an application) and Graph.
//
// Every call is an `azure` evidence record (request, then result or error) that also carries the HTTP exchanges the
// SDK made for it, retries included (method, host, path, api-version, status, request id, Retry-After). Tokens, client
// secrets and key material never reach a record: the crypto gate resolves the application's secret here, from the
// fleet file, hands it to the credential and returns only the outcome. Changes (delete, purge, resource-group
// delete) are refused when the job is cancelled, no longer holds its locks, or did not lock that Managed HSM.
import { type HttpExchange, httpOf, withHttpRecord } from "../azure/http-record.ts";
import type { ClassifiedFailure } from "../azure/key-vault-errors.ts";
import type { ManagedHsmGateway } from "../azure/managed-hsm.ts";
import type { GateResult, ManagedHsmDataPlane, SecretExpiry } from "../azure/mhsm-data-plane.ts";
import type { CmkConsumer, Fleet } from "../config/schema.ts";
import { resolveSecret } from "../config/secret.ts";
import { CapabilityUnavailable, describeError, JobCancelled, TargetNotLocked } from "./errors.ts";
import type { StepRecorder } from "./ports.ts";

export type KeyVaultArmPort = Pick<
  ManagedHsmGateway,
  | "getManagedHsm"
  | "getDeletedManagedHsm"
  | "listDeletedManagedHsms"
  | "listDiagnosticSettings"
  | "getVault"
  | "deleteManagedHsm"
  | "purgeDeletedManagedHsm"
  | "resourceGroupManagedHsms"
  | "deleteResourceGroup"
>;

export type KeyVaultDataPort = Pick<
  ManagedHsmDataPlane,
  | "listKeys"
  | "readKey"
  | "listRoleDefinitions"
  | "listRoleAssignments"
  | "wrapRoundTrip"
  | "applicationCredential"
  | "secretExpiry"
>;

/** What the worker wires in (src/azure keyVaultAccessFor satisfies it). */
export interface KeyVaultPort {
  arm: KeyVaultArmPort;
  data: KeyVaultDataPort;
}

/** The gate's outcome as a step records it: passed, or the layer that failed and why (never key material). */
export type GateOutcome =
  | ({ consumer: string; passed: true } & GateResult)
  | {
      consumer: string;
      passed: false;
      layer: ClassifiedFailure["layer"];
      operation: string;
      failure: ClassifiedFailure;
    };

/** What a step calls: the gateway calls (recorded), plus the crypto gate and secret expiry by consumer name. */
export interface StepKeyVault {
  arm: KeyVaultArmPort;
  data: Pick<KeyVaultDataPort, "listKeys" | "readKey" | "listRoleDefinitions" | "listRoleAssignments">;
  /** A wrapKey/unwrapKey round trip as the consumer's own identity; never throws for a failed gate, says why. */
  cryptoGate(consumer: string, o?: { signal?: AbortSignal }): Promise<GateOutcome>;
  /** The consumer's client secret end date from Graph (matched by the configured secret's hint). */
  secretExpiry(consumer: string, o?: { signal?: AbortSignal }): Promise<SecretExpiry>;
}

export interface KeyVaultScope {
  stepId: string;
  fleet: Fleet;
  record: StepRecorder;
  signal: AbortSignal;
  assertLocked(): void;
  /** Managed HSM names the job locked (JobTargets.azure). */
  lockedAzure: readonly string[];
}

export function recordedKeyVault(port: KeyVaultPort, scope: KeyVaultScope): StepKeyVault {
  const call = async <T>(
    operation: string,
    on: string,
    change: boolean,
    fn: () => Promise<T>,
  ): Promise<T> => {
    if (change) {
      if (scope.signal.aborted) throw new JobCancelled(`job cancelled before ${operation} ${on}`);
      scope.assertLocked();
    }
    await scope.record("azure", { via: "azure", on, operation, event: "request" });
    let out: { value: T; http: HttpExchange[] };
    try {
      out = await withHttpRecord(fn);
    } catch (err) {
      await scope.record("azure", {
        via: "azure",
        on,
        operation,
        event: "error",
        error: describeError(err),
        ...failureOf(err),
        http: httpOf(err),
      });
      throw err;
    }
    await scope.record("azure", {
      via: "azure",
      on,
      operation,
      event: "result",
      result: out.value ?? null,
      http: out.http,
    });
    return out.value;
  };
  const lockedHsm = (resourceOrName: string, operation: string) => {
    const decl = scope.fleet.managedHsms.find(
      (h) =>
        h.name.toLowerCase() === resourceOrName.toLowerCase() ||
        h.resourceId.toLowerCase() === resourceOrName.toLowerCase(),
    );
    if (!decl || !scope.lockedAzure.includes(decl.name))
      throw new TargetNotLocked(
        `step '${scope.stepId}' asked to ${operation} '${resourceOrName}', which is not a Managed HSM this job locked (${
          scope.lockedAzure.join(", ") || "none"
        })`,
      );
  };
  const consumerOf = (name: string): CmkConsumer => {
    const c = scope.fleet.cmkConsumers.find((x) => x.name === name);
    if (!c)
      throw new CapabilityUnavailable(
        `step '${scope.stepId}': no cmkConsumers entry '${name}' in the fleet file`,
      );
    return c;
  };
  const hsmUriOf = (c: CmkConsumer) => {
    const key = scope.fleet.keys.find((k) => k.name === c.key);
    const hsm = scope.fleet.managedHsms.find((h) => h.name === key?.managedHsm);
    if (!hsm)
      throw new CapabilityUnavailable(`step '${scope.stepId}': consumer ${c.name}'s key has no Managed HSM`);
    return hsm.hsmUri;
  };
  const secretOf = (c: CmkConsumer) =>
    resolveSecret(c.credentials.clientSecret, {
      literalAllowed: scope.fleet.twin,
      what: `cmkConsumers.${c.name}.credentials.clientSecret`,
    });

  const { arm, data } = port;
  return {
    arm: {
      getManagedHsm: (id, o) => call("get-managed-hsm", id, false, () => arm.getManagedHsm(id, o)),
      getDeletedManagedHsm: (name, loc, o) =>
        call("get-deleted-managed-hsm", `deletedManagedHSMs/${loc}/${name}`, false, () =>
          arm.getDeletedManagedHsm(name, loc, o),
        ),
      listDeletedManagedHsms: (o) =>
        call("list-deleted-managed-hsms", "subscription", false, () => arm.listDeletedManagedHsms(o)),
      listDiagnosticSettings: (id, o) =>
        call("list-diagnostic-settings", id, false, () => arm.listDiagnosticSettings(id, o)),
      getVault: (id, o) => call("get-vault", id, false, () => arm.getVault(id, o)),
      resourceGroupManagedHsms: (rg, o) =>
        call("resource-group-managed-hsms", `resourceGroups/${rg}`, false, () =>
          arm.resourceGroupManagedHsms(rg, o),
        ),
      deleteManagedHsm: (id, o) => {
        lockedHsm(id, "delete");
        return call("delete-managed-hsm", id, true, () => arm.deleteManagedHsm(id, o));
      },
      purgeDeletedManagedHsm: (name, loc, o) => {
        lockedHsm(name, "purge");
        return call("purge-managed-hsm", `deletedManagedHSMs/${loc}/${name}`, true, () =>
          arm.purgeDeletedManagedHsm(name, loc, o),
        );
      },
      deleteResourceGroup: (rg, o) =>
        call("delete-resource-group", `resourceGroups/${rg}`, true, () => arm.deleteResourceGroup(rg, o)),
    },
    data: {
      listKeys: (uri, o) => call("list-keys", uri, false, () => data.listKeys(uri, o)),
      readKey: (uri, name, o) =>
        call("read-key", `${uri}keys/${name}`, false, () => data.readKey(uri, name, o)),
      listRoleDefinitions: (uri, o) =>
        call("list-role-definitions", uri, false, () => data.listRoleDefinitions(uri, o)),
      listRoleAssignments: (uri, defs, o) =>
        call("list-role-assignments", uri, false, () => data.listRoleAssignments(uri, defs, o)),
    },
    async cryptoGate(name, o = {}) {
      const c = consumerOf(name);
      const uri = hsmUriOf(c);
      const on = `${uri}keys/${c.key}`;
      try {
        const result = await call("crypto-gate", on, false, async () => {
          const credential = data.applicationCredential(c.tenantId, c.clientId, secretOf(c));
          return data.wrapRoundTrip(uri, c.key, credential, o);
        });
        return { consumer: name, passed: true, ...result };
      } catch (err) {
        const failure = (err as { failure?: ClassifiedFailure }).failure;
        if (!failure) throw err;
        return {
          consumer: name,
          passed: false,
          layer: failure.layer,
          operation: (err as { operation?: string }).operation ?? "crypto-gate",
          failure,
        };
      }
    },
    secretExpiry(name, o = {}) {
      const c = consumerOf(name);
      const graph = scope.fleet.azureIdentity.graphEndpoint.replace(/\/+$/, "");
      const on = `${graph}/v1.0/applications?$filter=appId eq '${c.clientId}'`;
      return call("secret-expiry", on, false, () => data.secretExpiry(c.clientId, secretOf(c), o));
    },
  };
}

function failureOf(err: unknown): { failure?: ClassifiedFailure } {
  const failure = (err as { failure?: ClassifiedFailure } | null)?.failure;
  return failure && typeof failure === "object" && "layer" in failure ? { failure } : {};
}
