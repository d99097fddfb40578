// The Managed HSM part of the fleet report: one row per declared pool, from the latest mhsm-audit, cmk-health,
// app-crypto-gate and mhsm-retire results kept in Redis (src/queue/findings.ts, under `azure:<pool>`). Nothing here
// calls Azure: a pool no job has looked at says so ("never audited"), never green by default.
import type { Fleet } from "../config/schema.ts";
import { type Finding, readFindings } from "../queue/findings.ts";
import type { RedisClient } from "../redis/client.ts";

export interface ManagedHsmReportRow {
  managedHsm: string;
  resourceId: string;
  /** active, soft-deleted (billed), purged, not found; null: never audited. */
  lifecycle: string | null;
  activationStatus: string | null;
  purgeProtection: boolean | null;
  publicNetworkAccess: string | null;
  privateEndpoint: boolean | null;
  auditLogs: boolean | null;
  keys: number | null;
  undeclaredKeys: string[];
  consumers: { consumer: string; application: string; gate: string; secretEndsAt: string | null }[];
  checkedAt: {
    mhsmAudit: string | null;
    cmkHealth: string | null;
    appCryptoGate: string | null;
    mhsmRetire: string | null;
  };
  problems: string[];
}

export async function buildManagedHsmRows(redis: RedisClient, fleet: Fleet): Promise<ManagedHsmReportRow[]> {
  if (fleet.managedHsms.length === 0) return [];
  const findings = await readFindings(
    redis,
    fleet.managedHsms.map((h) => `azure:${h.name}`),
  );
  return fleet.managedHsms.map((decl): ManagedHsmReportRow => {
    const f = findings.get(`azure:${decl.name}`) ?? {};
    const audit = f["mhsm-audit"] as Finding | undefined;
    const health = f["cmk-health"] as Finding | undefined;
    const gate = f["app-crypto-gate"] as Finding | undefined;
    const retire = f["mhsm-retire"] as Finding | undefined;
    const a = audit?.data as Record<string, unknown> | undefined;
    const h = health?.data as { consumers?: unknown; problems?: unknown } | undefined;
    const g = gate?.data as { gates?: unknown; problems?: unknown } | undefined;
    const r = retire?.data as { lifecycle?: unknown; problems?: unknown } | undefined;
    // A retirement newer than the audit decides the lifecycle; otherwise the audit's view stands.
    const retiredLater = retire && (!audit || retire.at > audit.at);
    const lifecycle = retiredLater ? str(r?.lifecycle) : str(a?.lifecycle);
    const consumers = (Array.isArray(h?.consumers) ? h.consumers : []).map((c: Record<string, unknown>) => {
      const fromGate = (Array.isArray(g?.gates) ? g.gates : []).find(
        (x: Record<string, unknown>) => x.consumer === c.consumer,
      ) as { passed?: boolean; layer?: string } | undefined;
      // The newer of cmk-health's gate and app-crypto-gate's.
      const gateText =
        fromGate && gate && (!health || gate.at > health.at)
          ? fromGate.passed
            ? "passed"
            : `failed (${fromGate.layer ?? "?"})`
          : (str(c.gate) ?? "not run");
      return {
        consumer: str(c.consumer) ?? "?",
        application: str(c.application) ?? "?",
        gate: gateText,
        secretEndsAt: str(c.secretEndsAt),
      };
    });
    const problems: string[] = [];
    if (!audit && !retiredLater) problems.push("never audited (run mhsm-audit)");
    for (const source of retiredLater ? [r] : [a, h, g])
      for (const p of Array.isArray(source?.problems) ? (source.problems as unknown[]) : [])
        if (typeof p === "string" && !problems.includes(p)) problems.push(p);
    if (
      !retiredLater &&
      fleet.cmkConsumers.some((c) => fleet.keys.find((k) => k.name === c.key)?.managedHsm === decl.name) &&
      !health
    )
      problems.push("consumers never checked (run cmk-health)");
    return {
      managedHsm: decl.name,
      resourceId: decl.resourceId,
      lifecycle,
      activationStatus: retiredLater ? null : str(a?.activationStatus),
      purgeProtection: bool(a?.purgeProtection),
      publicNetworkAccess: retiredLater ? null : str(a?.publicNetworkAccess),
      privateEndpoint: retiredLater ? null : bool(a?.privateEndpoint),
      auditLogs: retiredLater ? null : bool(a?.auditLogs),
      keys: retiredLater ? null : num(a?.keys),
      undeclaredKeys: retiredLater
        ? []
        : Array.isArray(a?.undeclaredKeys)
          ? (a.undeclaredKeys as string[])
          : [],
      consumers: retiredLater ? [] : consumers,
      checkedAt: {
        mhsmAudit: audit?.at ?? null,
        cmkHealth: health?.at ?? null,
        appCryptoGate: gate?.at ?? null,
        mhsmRetire: retire?.at ?? null,
      },
      problems,
    };
  });
}

/** Problems are written "<subject>: <what>"; the report's list prefixes the pool only where the subject is not it. */
export function managedHsmProblems(rows: ManagedHsmReportRow[]): string[] {
  return rows.flatMap((r) => r.problems.map((p) => (p.includes(": ") ? p : `${r.managedHsm}: ${p}`)));
}

/** The pools table for terminals. */
export function renderManagedHsms(rows: ManagedHsmReportRow[]): string[] {
  if (rows.length === 0) return [];
  const header = [
    "MANAGED HSM",
    "STATE",
    "ACTIVATION",
    "PURGE PROT",
    "PUBLIC NET",
    "KEYS",
    "CONSUMER GATES",
    "AUDITED",
  ];
  const yes = (v: boolean | null, y: string, n: string) => (v === null ? "unknown" : v ? y : n);
  const cells = rows.map((r) => [
    r.managedHsm,
    r.lifecycle ?? "unknown",
    r.activationStatus ?? "unknown",
    yes(r.purgeProtection, "on", "OFF"),
    r.publicNetworkAccess ?? "unknown",
    r.keys === null
      ? "unknown"
      : `${r.keys}${r.undeclaredKeys.length ? ` (${r.undeclaredKeys.length} undeclared)` : ""}`,
    r.consumers.length === 0 ? "-" : r.consumers.map((c) => `${c.consumer}:${c.gate}`).join(","),
    r.checkedAt.mhsmAudit ? r.checkedAt.mhsmAudit.slice(0, 16).replace("T", " ") : "never",
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
const bool = (v: unknown) => (typeof v === "boolean" ? v : null);
const num = (v: unknown) => (typeof v === "number" ? v : null);
