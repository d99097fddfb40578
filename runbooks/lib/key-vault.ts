// What the Managed HSM / Key Vault runbooks share: which pools, consumers and vaults a target names, and findings.
// A finding is one thing an operator must look at, with the subject it is about and a stable check name (so the
// report, tests and dashboards can tell "purge protection off" from "no diagnostic setting" without parsing text).

import { UnknownTargetError } from "../../src/config/model.ts";
import type { CmkConsumer, Fleet, KeyDecl, ManagedHsmDecl } from "../../src/config/schema.ts";
import type { PlannedCommand } from "../../src/engine/runbook.ts";
import type { FactRef, FactStatus, JsonValue, ObservationInput } from "../../src/facts/model.ts";

export interface KvFinding {
  /** A pool, `pool/keys/<key>`, `consumer <name>`, `vault <name>`. */
  subject: string;
  /** Stable name of the rule that found it (e.g. `purge-protection`, `undeclared-key`, `role-scope`). */
  check: string;
  message: string;
}

export const findingLine = (f: KvFinding) => `${f.subject}: ${f.message}`;

export interface KvTarget {
  managedHsms: string[];
  consumers: string[];
  keyVaults: string[];
}

type Kind = "fleet" | "managedHsm" | "consumer" | "keyVault";

/**
 * `fleet` = every pool, consumer and vault; a pool = it and the consumers of its keys; a consumer = it and its pool;
 * a vault = that vault. Order follows the fleet file.
 */
export function resolveKvTarget(fleet: Fleet, target: string, allow: readonly Kind[]): KvTarget {
  const kinds = new Set(allow);
  const hsmOfKey = (key: string) => fleet.keys.find((k) => k.name === key)?.managedHsm;
  if (target === "fleet" && kinds.has("fleet"))
    return {
      managedHsms: fleet.managedHsms.map((h) => h.name),
      consumers: fleet.cmkConsumers.map((c) => c.name),
      keyVaults: fleet.keyVaults.map((v) => v.name),
    };
  const hsm = fleet.managedHsms.find((h) => h.name === target);
  if (hsm && kinds.has("managedHsm"))
    return {
      managedHsms: [hsm.name],
      consumers: fleet.cmkConsumers.filter((c) => hsmOfKey(c.key) === hsm.name).map((c) => c.name),
      keyVaults: [],
    };
  const consumer = fleet.cmkConsumers.find((c) => c.name === target);
  if (consumer && kinds.has("consumer")) {
    const pool = hsmOfKey(consumer.key);
    return { managedHsms: pool ? [pool] : [], consumers: [consumer.name], keyVaults: [] };
  }
  const vault = fleet.keyVaults.find((v) => v.name === target);
  if (vault && kinds.has("keyVault")) return { managedHsms: [], consumers: [], keyVaults: [vault.name] };
  const accepted: string[] = [];
  if (kinds.has("fleet")) accepted.push("'fleet'");
  if (kinds.has("managedHsm"))
    accepted.push(`a managed HSM (${fleet.managedHsms.map((h) => h.name).join(", ") || "none"})`);
  if (kinds.has("consumer"))
    accepted.push(`a CMK consumer (${fleet.cmkConsumers.map((c) => c.name).join(", ") || "none"})`);
  if (kinds.has("keyVault"))
    accepted.push(`a key vault (${fleet.keyVaults.map((v) => v.name).join(", ") || "none"})`);
  throw new UnknownTargetError(`unknown target '${target}': expected ${accepted.join(", or ")}`);
}

export function managedHsm(fleet: Fleet, name: string): ManagedHsmDecl {
  const h = fleet.managedHsms.find((x) => x.name === name);
  if (!h) throw new UnknownTargetError(`unknown managed HSM '${name}'`);
  return h;
}

export function consumer(fleet: Fleet, name: string): CmkConsumer {
  const c = fleet.cmkConsumers.find((x) => x.name === name);
  if (!c) throw new UnknownTargetError(`unknown CMK consumer '${name}'`);
  return c;
}

export function keyOf(fleet: Fleet, c: CmkConsumer): KeyDecl {
  const k = fleet.keys.find((x) => x.name === c.key);
  if (!k) throw new UnknownTargetError(`consumer '${c.name}': unknown key '${c.key}'`);
  return k;
}

/** The pool holding a consumer's key. */
export function poolOf(fleet: Fleet, c: CmkConsumer): ManagedHsmDecl {
  return managedHsm(fleet, keyOf(fleet, c).managedHsm);
}

/** The scope a consumer's role must have: the declared one, else its key. */
export function requiredScope(c: CmkConsumer): string {
  return c.scope ?? `/keys/${c.key}`;
}

export const azureCommand = (on: string, command: string): PlannedCommand => ({ via: "azure", on, command });

// ---- the fleet state model (src/facts): one subject per pool or vault, `azure:<resource id>` ----

/** Which fact of a pool a finding's check belongs to. */
const FACT_OF_CHECK: Record<string, string> = {
  exists: "lifecycle",
  provisioning: "lifecycle",
  activation: "activation",
  location: "declaration",
  "hsm-uri": "declaration",
  "soft-delete": "soft-delete",
  "soft-delete-retention": "soft-delete",
  "purge-protection": "purge-protection",
  "public-network-access": "network",
  "network-rules": "network",
  "private-endpoint": "network",
  regions: "regions",
  diagnostics: "diagnostics",
  "undeclared-key": "keys",
  "missing-key": "keys",
  "key-type": "keys",
  "key-size": "keys",
  "key-curve": "keys",
  "key-operations": "keys",
  "key-enabled": "keys",
  "key-expiry": "keys",
  rotation: "keys",
  "broad-role": "roles",
  "role-missing": "roles",
  "role-scope": "roles",
  access: "data-plane-access",
  "placement-symmetric": "placement",
  "placement-fips": "placement",
  "placement-hsm": "placement",
  sku: "declaration",
};

export const ARM_FACTS = [
  "lifecycle",
  "activation",
  "declaration",
  "soft-delete",
  "purge-protection",
  "network",
  "regions",
  "diagnostics",
] as const;
export const DATA_PLANE_FACTS = ["keys", "roles", "data-plane-access"] as const;

export const poolSubject = (fleet: Fleet, pool: string) => `azure:${managedHsm(fleet, pool).resourceId}`;

export function factRefs(subject: string, facts: readonly string[]): FactRef[] {
  return facts.map((fact) => ({ subject, fact }));
}

/**
 * One observation per fact: `seen` says what was seen (summary, value); the findings that belong to the fact make it
 * a `problem` (reason: each finding), otherwise it is `ok` (or the status `seen` gives, e.g. `unknown`).
 */
export function observationsFor(
  subject: string,
  facts: readonly string[],
  findings: KvFinding[],
  seen: (fact: string) => { status?: FactStatus; summary: string; value?: JsonValue },
): ObservationInput[] {
  return facts.map((fact) => {
    const mine = findings.filter((f) => (FACT_OF_CHECK[f.check] ?? f.check) === fact);
    const s = seen(fact);
    const value = s.value !== undefined ? { value: s.value } : {};
    if (mine.length === 0) return { subject, fact, status: s.status ?? "ok", summary: s.summary, ...value };
    return {
      subject,
      fact,
      status: "problem",
      summary: s.summary,
      reason: mine.map(findingLine).join("; "),
      ...value,
    };
  });
}
