// The Managed HSM part of the fleet report, read only from the fleet state model (src/facts): per declared pool its
// facts on `azure:<resource id>` (lifecycle, activation, soft delete, purge protection, network, diagnostics, keys,
// roles, data-plane access), its consumers' facts (`consumer:<name>` from cmk-health, `gate:<name>` from the crypto
// gate, the newer one deciding the gate), and per declared vault its placement facts. Nothing here calls Azure: a
// pool no job has looked at says so ("never audited"), never green by default.
import type { Fleet } from "../config/schema.ts";
import type { Observation } from "../facts/model.ts";

export interface ManagedHsmReportRow {
  managedHsm: string;
  resourceId: string;
  /** active, soft-deleted (billed), purged, not found; null: never seen. */
  lifecycle: string | null;
  activationStatus: string | null;
  purgeProtection: boolean | null;
  publicNetworkAccess: string | null;
  keys: number | null;
  /** Every fact of the pool as the model holds it: status, summary, when, by which job. */
  facts: Record<string, { status: string; summary: string; observedAt: string; by: string; reason?: string }>;
  consumers: { consumer: string; application: string | null; gate: string; secretEndsAt: string | null }[];
  problems: string[];
}

export interface KeyVaultReportRow {
  keyVault: string;
  resourceId: string;
  facts: ManagedHsmReportRow["facts"];
  problems: string[];
}

type Facts = Map<string, Record<string, Observation>>;

export function buildManagedHsmRows(fleet: Fleet, all: Facts): ManagedHsmReportRow[] {
  return fleet.managedHsms.map((decl): ManagedHsmReportRow => {
    const facts = all.get(`azure:${decl.resourceId}`) ?? {};
    const value = (fact: string) => (facts[fact]?.value ?? null) as Record<string, unknown> | null;
    const lifecycle = value("lifecycle")?.state;
    const retired = lifecycle === "soft-deleted" || lifecycle === "purged";
    const consumers = fleet.cmkConsumers
      .filter((c) => fleet.keys.find((k) => k.name === c.key)?.managedHsm === decl.name)
      .map((c) => {
        const health = facts[`consumer:${c.name}`];
        const gate = facts[`gate:${c.name}`];
        const healthGate = (health?.value as { gate?: unknown } | undefined)?.gate;
        const gateText =
          gate && (!health || gate.observedAt > health.observedAt)
            ? gate.status === "ok"
              ? "passed"
              : gate.status === "problem"
                ? `failed (${(gate.value as { layer?: string } | undefined)?.layer ?? "?"})`
                : gate.status
            : typeof healthGate === "string"
              ? healthGate
              : health?.status === "check-failed"
                ? "check failed"
                : "not run";
        const ends = (health?.value as { secretEndsAt?: unknown } | undefined)?.secretEndsAt;
        return {
          consumer: c.name,
          application: c.application,
          gate: gateText,
          secretEndsAt: typeof ends === "string" ? ends : null,
        };
      });
    const problems = problemsOf(decl.name, facts);
    if (Object.keys(facts).length === 0) problems.push(`${decl.name}: never audited (run mhsm-audit)`);
    else if (!facts.activation && !retired) problems.push(`${decl.name}: never audited (run mhsm-audit)`);
    if (!retired && consumers.some((c) => c.gate === "not run"))
      problems.push(`${decl.name}: consumers never checked (run cmk-health)`);
    const pp = value("purge-protection")?.on;
    const keys = value("keys")?.keys;
    return {
      managedHsm: decl.name,
      resourceId: decl.resourceId,
      lifecycle: typeof lifecycle === "string" ? lifecycle : null,
      activationStatus: retired ? null : str(value("activation")?.activationStatus),
      purgeProtection: typeof pp === "boolean" ? pp : null,
      publicNetworkAccess: retired ? null : str(value("network")?.publicNetworkAccess),
      keys: retired ? null : Array.isArray(keys) ? keys.length : null,
      facts: view(facts),
      consumers: retired ? [] : consumers,
      problems,
    };
  });
}

export function buildKeyVaultRows(fleet: Fleet, all: Facts): KeyVaultReportRow[] {
  return fleet.keyVaults.map((v) => {
    const facts = all.get(`azure:${v.resourceId}`) ?? {};
    const problems = problemsOf(`vault ${v.name}`, facts);
    if (Object.keys(facts).length === 0)
      problems.push(`vault ${v.name}: never checked (run vault-placement)`);
    return { keyVault: v.name, resourceId: v.resourceId, facts: view(facts), problems };
  });
}

/** The Azure subjects these rows cover (the generic report leaves them to these rows). */
export function keyVaultSubjects(fleet: Fleet): Set<string> {
  return new Set([...fleet.managedHsms, ...fleet.keyVaults].map((x) => `azure:${x.resourceId}`));
}

/** A problem fact gives its findings (reason), each already "<subject>: <what>"; a failed check says why. */
function problemsOf(name: string, facts: Record<string, Observation>): string[] {
  const out: string[] = [];
  for (const [fact, o] of Object.entries(facts)) {
    if (o.status === "problem")
      for (const line of (o.reason ?? `${fact}: ${o.summary}`).split("; "))
        if (!out.includes(line)) out.push(line.includes(": ") ? line : `${name}: ${line}`);
    if (o.status === "check-failed")
      out.push(`${name}: ${fact} could not be checked (${o.reason ?? "unknown reason"})`);
  }
  return out;
}

function view(facts: Record<string, Observation>): ManagedHsmReportRow["facts"] {
  return Object.fromEntries(
    Object.entries(facts).map(([f, o]) => [
      f,
      {
        status: o.status,
        summary: o.summary,
        observedAt: o.observedAt,
        by: o.by,
        ...(o.reason ? { reason: o.reason } : {}),
      },
    ]),
  );
}

/** The pools table for terminals. */
export function renderManagedHsms(rows: ManagedHsmReportRow[]): string[] {
  if (rows.length === 0) return [];
  const header = ["MANAGED HSM", "STATE", "ACTIVATION", "PURGE PROT", "PUBLIC NET", "KEYS", "CONSUMER GATES"];
  const yes = (v: boolean | null, y: string, n: string) => (v === null ? "unknown" : v ? y : n);
  const cells = rows.map((r) => [
    r.managedHsm,
    r.lifecycle ?? "unknown",
    r.activationStatus ?? "unknown",
    yes(r.purgeProtection, "on", "OFF"),
    r.publicNetworkAccess ?? "unknown",
    r.keys === null ? "unknown" : String(r.keys),
    r.consumers.length === 0 ? "-" : r.consumers.map((c) => `${c.consumer}:${c.gate}`).join(","),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? "").length)));
  const line = (c: string[]) =>
    c
      .map((x, i) => x.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return ["", line(header), ...cells.map(line)];
}

const str = (v: unknown) => (typeof v === "string" ? v : null);
