// The fleet report: one row per device, built from the latest tcp-check and patch-verify findings in Redis (what
// the last succeeded jobs saw), the fleet's HA groups, and the login guard's ledger. Nothing here connects to a
// device: a device never checked says so ("unknown") instead of being guessed healthy.
import type { Fleet } from "../config/schema.ts";
import { LoginLedger } from "../guard/ledger.ts";
import { type Finding, readFindings } from "../queue/findings.ts";
import type { RedisClient } from "../redis/client.ts";
import {
  buildManagedHsmRows,
  type ManagedHsmReportRow,
  managedHsmProblems,
  renderManagedHsms,
} from "./report-mhsm.ts";

export interface DeviceReportRow {
  device: string;
  /** NTLS port reachable and TLS handshake completed (null: never checked). */
  reachable: boolean | null;
  ntlsEndpoint: string | null;
  latencyMs: number | null;
  softwareVersion: string | null;
  firmware: string | null;
  /** KB0019789 reboot patch installed (null: never checked). */
  rebootPatch: boolean | null;
  rebootUnsafe: boolean | null;
  /** Whole days left, truncated toward zero (as tcp-check reported them; negative = days since expiry). */
  certExpiresInDays: number | null;
  /** When the NTLS certificate expires (ISO 8601), as the appliance presented it. */
  certExpiresAt: string | null;
  /** Days left at report time, to the hundredth, rounded down (negative once expired): 4.99, not "4". */
  certDaysLeft: number | null;
  certExpiringSoon: boolean;
  /** HA groups the device is a member of, with the member's state when an HA runbook has reported one. */
  ha: { group: string; role: string; state: string | null }[];
  /** Login guard: "ok", "quarantined: <roles>", "pending: <roles>", or null when the guard has no record. */
  guard: string | null;
  checkedAt: { tcpCheck: string | null; patchVerify: string | null };
  problems: string[];
}

export interface FleetReport {
  generatedAt: string;
  devices: DeviceReportRow[];
  /** Managed HSM pools (src/daemon/report-mhsm.ts); empty when the fleet declares none. */
  managedHsms: ManagedHsmReportRow[];
  problems: string[];
}

export async function buildReport(redis: RedisClient, fleet: Fleet, now = new Date()): Promise<FleetReport> {
  const names = fleet.devices.map((d) => d.name);
  const findings = await readFindings(redis, names);
  let ledger: Awaited<ReturnType<LoginLedger["list"]>> = [];
  try {
    ledger = await new LoginLedger(redis).list();
  } catch {
    // A guard ledger we cannot read is reported as unknown, not as clean.
    ledger = [];
  }
  const rows = fleet.devices.map((device): DeviceReportRow => {
    const f = findings.get(device.name) ?? {};
    const tcp = f["tcp-check"] as Finding | undefined;
    const pv = f["patch-verify"] as Finding | undefined;
    const t = tcp?.data as Record<string, unknown> | undefined;
    const p = pv?.data as Record<string, unknown> | undefined;
    const ha = fleet.haGroups
      .filter((g) => g.members.some((m) => m.device === device.name))
      .map((g) => {
        const state = haStateOf(f, g.label);
        return { group: g.label, role: "member", state };
      });
    const entries = ledger.filter((e) => e.device === device.name);
    const quarantined = entries.filter((e) => e.quarantined).map((e) => roleLabel(e));
    const pending = entries.filter((e) => e.pendingAttempt).map((e) => roleLabel(e));
    const guard =
      entries.length === 0
        ? null
        : quarantined.length > 0
          ? `quarantined: ${quarantined.join(", ")}`
          : pending.length > 0
            ? `pending: ${pending.join(", ")}`
            : "ok";
    const reachable = t ? t.reachable === true && t.handshakeOk === true : null;
    const rebootPatch = p ? p.rebootPatchInstalled === true : null;
    const certDays = t && typeof t.expiresInDays === "number" ? t.expiresInDays : null;
    const certValidTo = validToOf(t);
    const certDaysLeft =
      certValidTo === null
        ? null
        : Math.floor((certValidTo.getTime() - now.getTime()) / (DAY_MS / 100)) / 100;
    const row: DeviceReportRow = {
      device: device.name,
      reachable,
      ntlsEndpoint: t && typeof t.endpoint === "string" ? t.endpoint : null,
      latencyMs: t && typeof t.latencyMs === "number" ? Math.round(t.latencyMs * 10) / 10 : null,
      softwareVersion: p && typeof p.softwareVersion === "string" ? p.softwareVersion : null,
      firmware: p && typeof p.firmware === "string" ? p.firmware : null,
      rebootPatch,
      rebootUnsafe: p ? p.rebootUnsafe === true : null,
      certExpiresInDays: certDays,
      certExpiresAt: certValidTo?.toISOString() ?? null,
      certDaysLeft,
      certExpiringSoon: t ? t.certExpiringSoon === true : false,
      ha,
      guard,
      checkedAt: { tcpCheck: tcp?.at ?? null, patchVerify: pv?.at ?? null },
      problems: [],
    };
    if (reachable === null) row.problems.push("NTLS never checked (run tcp-check)");
    else if (!reachable) row.problems.push(`NTLS not reachable on ${row.ntlsEndpoint ?? "1792"}`);
    if (rebootPatch === null) row.problems.push("patches never checked (run patch-verify)");
    else if (!rebootPatch) row.problems.push("KB0019789 reboot patch missing: REBOOT-UNSAFE");
    if (certValidTo !== null && certDaysLeft !== null) {
      const at = shortUtc(certValidTo);
      if (certValidTo.getTime() <= now.getTime())
        row.problems.push(`NTLS certificate expired ${daysText(-certDaysLeft)} ago (${at})`);
      else if (row.certExpiringSoon)
        row.problems.push(`NTLS certificate expires in ${daysText(certDaysLeft)} (${at})`);
    } else if (certDays !== null && certDays < 0)
      row.problems.push(`NTLS certificate expired ${-certDays} day(s) ago`);
    else if (certDays !== null && row.certExpiringSoon)
      row.problems.push(`NTLS certificate expires in ${certDays} day(s)`);
    const notVerified =
      t && Array.isArray(t.notVerifiedFrom) ? (t.notVerifiedFrom as { host?: unknown }[]) : [];
    for (const nv of notVerified)
      if (typeof nv.host === "string")
        row.problems.push(`partitions not verified from ${nv.host} (vtl verify)`);
    if (quarantined.length > 0) row.problems.push(`guard quarantine: ${quarantined.join(", ")}`);
    for (const h of ha)
      if (h.state && h.state !== "up" && h.state !== "ok") row.problems.push(`${h.group}: member ${h.state}`);
    return row;
  });
  const managedHsms = await buildManagedHsmRows(redis, fleet);
  return {
    generatedAt: now.toISOString(),
    devices: rows,
    managedHsms,
    problems: [
      ...rows.flatMap((r) => r.problems.map((p) => `${r.device}: ${p}`)),
      ...managedHsmProblems(managedHsms),
    ],
  };
}

const DAY_MS = 86_400_000;

/** The certificate's expiry instant from a tcp-check finding (`cert.validTo`), or null. */
function validToOf(t: Record<string, unknown> | undefined): Date | null {
  const cert = t?.cert as { validTo?: unknown } | null | undefined;
  if (!cert || typeof cert.validTo !== "string") return null;
  const d = new Date(cert.validTo);
  return Number.isNaN(d.getTime()) ? null : d;
}

/** `2026-11-28 11:02Z`: to the minute, in UTC, as an operator compares it with a change window. */
export function shortUtc(d: Date): string {
  return `${d.toISOString().slice(0, 16).replace("T", " ")}Z`;
}

/** `4.99 days`, `1.00 day`. */
function daysText(days: number): string {
  return `${days.toFixed(2)} ${days.toFixed(2) === "1.00" ? "day" : "days"}`;
}

function roleLabel(e: { role: string; partition?: string }): string {
  return e.partition ? `${e.partition}/${e.role}` : e.role;
}

/** The member state an HA runbook (ha-*) reported for this device in `group`, if any did. */
function haStateOf(findings: Record<string, Finding>, group: string): string | null {
  for (const [runbook, f] of Object.entries(findings)) {
    if (!runbook.startsWith("ha-")) continue;
    const d = f.data as { group?: unknown; haGroup?: unknown; state?: unknown; memberState?: unknown };
    if ((d.group ?? d.haGroup) !== group) continue;
    const state = d.memberState ?? d.state;
    if (typeof state === "string") return state;
  }
  return null;
}

const yesNo = (v: boolean | null, yes: string, no: string) => (v === null ? "unknown" : v ? yes : no);

/** `4.99 d (2026-11-28 11:02Z) (!)`: exact days left and the instant; whole days only for an older finding. */
function certCell(r: DeviceReportRow): string {
  const warn = r.certExpiringSoon ? " (!)" : "";
  if (r.certDaysLeft !== null && r.certExpiresAt !== null)
    return `${r.certDaysLeft.toFixed(2)} d (${shortUtc(new Date(r.certExpiresAt))})${warn}`;
  if (r.certExpiresInDays !== null) return `${r.certExpiresInDays} d${warn}`;
  return "unknown";
}

/** A fixed-width table for terminals, then the problems. */
export function renderReport(report: FleetReport): string {
  const header = [
    "DEVICE",
    "NTLS 1792",
    "SOFTWARE",
    "FIRMWARE",
    "KB0019789",
    "REBOOT",
    "NTLS CERT EXPIRES",
    "HA",
    "GUARD",
  ];
  const rows = report.devices.map((r) => [
    r.device,
    yesNo(r.reachable, r.latencyMs !== null ? `up ${r.latencyMs}ms` : "up", "DOWN"),
    r.softwareVersion ?? "unknown",
    r.firmware ?? "unknown",
    yesNo(r.rebootPatch, "installed", "MISSING"),
    yesNo(r.rebootUnsafe === null ? null : !r.rebootUnsafe, "safe", "UNSAFE"),
    certCell(r),
    r.ha.length === 0 ? "-" : r.ha.map((h) => `${h.group}${h.state ? `:${h.state}` : ""}`).join(","),
    r.guard ?? "-",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  const out = [line(header), ...rows.map(line), ...renderManagedHsms(report.managedHsms ?? [])];
  out.push("");
  if (report.problems.length === 0) out.push("No problems found.");
  else {
    out.push(`Problems (${report.problems.length}):`);
    for (const p of report.problems) out.push(`  - ${p}`);
  }
  return out.join("\n");
}
