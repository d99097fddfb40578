// vault-placement: whether each key can live where it is meant to. Key Vault Standard holds software-protected keys
// (FIPS 140 Level 1), Premium HSM-protected asymmetric keys; neither holds symmetric (oct) keys nor gives FIPS 140
// Level 3 in lunafleet's rules: those belong in Managed HSM. Also: soft delete and purge protection on every vault.
//
//   read-vaults  ARM: each vault's SKU, soft delete, purge protection
//   placement    each declared key requirement against its vault's SKU; each vault against its expectations
import { z } from "zod";
import type { VaultInfo } from "../src/azure/managed-hsm.ts";
import type { Fleet, KeyVaultDecl } from "../src/config/schema.ts";
import { findingsVerdict } from "../src/engine/outcome.ts";
import { defineRunbook, type Step } from "../src/engine/runbook.ts";
import type { FactStatus, JsonValue } from "../src/facts/model.ts";
import {
  azureCommand,
  factRefs,
  findingLine,
  type KvFinding,
  observationsFor,
  resolveKvTarget,
} from "./lib/key-vault.ts";

const VAULT_FACTS = ["lifecycle", "declaration", "placement", "soft-delete", "purge-protection"] as const;
type VaultSeen = { status?: FactStatus; summary: string; value?: JsonValue };

const params = z
  .object({
    /** A key vault (fleet name) or `fleet`. */
    target: z.string().min(1).default("fleet"),
  })
  .strict();
type Params = z.output<typeof params>;

export interface PlacementResult {
  vaults: { vault: string; actual: VaultInfo | null }[];
  /** Managed HSM keys: placed where symmetric and FIPS 140 Level 3 keys belong. */
  managedHsmKeys: string[];
  findings: KvFinding[];
}

const vaultsOf = (target: string, fleet: Fleet) =>
  resolveKvTarget(fleet, target, ["fleet", "keyVault"]).keyVaults;
const decl = (fleet: Fleet, name: string) => fleet.keyVaults.find((v) => v.name === name)!;

const readVaults = {
  id: "read-vaults",
  title: "Read each vault's SKU, soft delete and purge protection from ARM",
  kind: "read",
  observes: (p, fleet) =>
    vaultsOf(p.target, fleet).flatMap((v) => factRefs(`azure:${decl(fleet, v).resourceId}`, VAULT_FACTS)),
  commands: (p, fleet) =>
    vaultsOf(p.target, fleet).map((v) =>
      azureCommand(decl(fleet, v).resourceId, "GET (sku, enableSoftDelete, enablePurgeProtection)"),
    ),
  async run(ctx): Promise<{ vaults: { vault: string; actual: VaultInfo | null }[] }> {
    const vaults = [];
    for (const v of vaultsOf(ctx.params.target, ctx.fleet))
      vaults.push({
        vault: v,
        actual: await ctx.keyVault.arm.getVault(decl(ctx.fleet, v).resourceId, { signal: ctx.signal }),
      });
    return { vaults };
  },
} satisfies Step<Params>;

const placement = {
  id: "placement",
  title: "Decide per key whether its vault can hold it, and per vault soft delete and purge protection",
  kind: "read",
  async run(ctx): Promise<PlacementResult> {
    const { vaults } = ctx.resultOf(readVaults);
    const findings = vaults.flatMap(({ vault, actual }) => placementFindings(decl(ctx.fleet, vault), actual));
    // The state model: per vault, whether it exists, its SKU, its keys' placement, its recoverability.
    for (const { vault, actual } of vaults) {
      const d = decl(ctx.fleet, vault);
      const mine = findings.filter(
        (f) => f.subject === `vault ${vault}` || f.subject.startsWith(`vault ${vault}/`),
      );
      await ctx.facts.observe(
        ...observationsFor(`azure:${d.resourceId}`, VAULT_FACTS, mine, (fact): VaultSeen => {
          if (!actual) return { status: fact === "lifecycle" ? "ok" : "unknown", summary: "not found" };
          switch (fact) {
            case "lifecycle":
              return { summary: "active", value: { state: "active" } };
            case "declaration":
              return { summary: `SKU ${actual.sku ?? "?"}` };
            case "placement":
              return { summary: `${d.keys.length} key requirement(s) on ${actual.sku ?? d.sku}` };
            case "soft-delete":
              return { summary: actual.softDeleteEnabled === false ? "off" : "on" };
            default:
              return {
                summary: actual.purgeProtection ? "on" : "off",
                value: { on: actual.purgeProtection },
              };
          }
        }),
      );
    }
    return {
      vaults,
      managedHsmKeys:
        ctx.params.target === "fleet" ? ctx.fleet.keys.map((k) => `${k.managedHsm}/keys/${k.name}`) : [],
      findings,
    };
  },
} satisfies Step<Params>;

export const vaultPlacement = defineRunbook({
  name: "vault-placement",
  description:
    "Check each key's vault can hold it (symmetric or FIPS 140 Level 3 keys need Managed HSM) and soft delete / purge protection on every vault",
  params,
  // Reads ARM only; nothing is changed, so nothing is locked.
  targets(p, fleet) {
    vaultsOf(p.target, fleet);
    return { devices: [], clientHosts: [] };
  },
  verdict: ({ resultOf }) => findingsVerdict((resultOf(placement)?.findings ?? []).map(findingLine)),
  steps: [readVaults, placement],
});

/** One vault: its SKU against each key requirement, and its recoverability. Pure. */
function placementFindings(v: KeyVaultDecl, actual: VaultInfo | null): KvFinding[] {
  const f: KvFinding[] = [];
  const subject = `vault ${v.name}`;
  if (!actual) return [{ subject, check: "exists", message: "not found in Azure (404)" }];
  const sku = (actual.sku ?? v.sku).toLowerCase();
  if (actual.sku && actual.sku.toLowerCase() !== v.sku)
    f.push({ subject, check: "sku", message: `SKU ${actual.sku}, declared ${v.sku}` });
  for (const k of v.keys) {
    const where = `${subject}/keys/${k.name}`;
    if (k.keyType.startsWith("oct"))
      f.push({
        subject: where,
        check: "placement-symmetric",
        message: `a symmetric (${k.keyType}) key cannot live in a Key Vault (${sku}): it needs a Managed HSM`,
      });
    else if (k.fipsLevel === 3)
      f.push({
        subject: where,
        check: "placement-fips",
        message: `FIPS 140 Level 3 is required: a Key Vault (${sku}) does not give it; it needs a Managed HSM`,
      });
    else if ((k.keyType.endsWith("-HSM") || k.fipsLevel === 2) && sku === "standard")
      f.push({
        subject: where,
        check: "placement-hsm",
        message: `an HSM-protected ${k.keyType} key (FIPS 140 Level ${k.fipsLevel}) cannot live in a Standard vault: Premium or Managed HSM`,
      });
  }
  if (actual.softDeleteEnabled === false)
    f.push({ subject, check: "soft-delete", message: "soft delete is off: a deleted key is gone at once" });
  if (!actual.purgeProtection && v.expected.purgeProtection)
    f.push({
      subject,
      check: "purge-protection",
      message: "purge protection is off: a deleted vault or key can be purged before its retention ends",
    });
  return f;
}
