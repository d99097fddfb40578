// The fleet report as text for terminals: one row per device (what was seen, how long ago, stale or not), then the
// problems and the stale facts; and one device in detail (`report <device>`): each fact with its status, when and by
// which job, its HA members, pairs and partitions, and the jobs that touched it.
import {
  ageText,
  type DeviceDetail,
  type DeviceReportRow,
  type FactView,
  type FleetReport,
  REBOOT_PATCH_KB,
  shortUtc,
} from "./report.ts";
import { renderManagedHsms } from "./report-mhsm.ts";

/** A cell for one fact: its summary, or what is known about it when it is not ok. */
function cell(f: FactView | undefined, ok: (f: FactView) => string = (x) => x.summary): string {
  if (!f || f.status === "unknown") return "unknown";
  if (f.status === "check-failed") return "CHECK FAILED";
  return ok(f);
}

function certCell(r: DeviceReportRow): string {
  const f = r.facts.cert;
  if (!f || f.status === "unknown" || f.status === "check-failed") return cell(f);
  const warn = r.certExpiringSoon ? " (!)" : "";
  if (r.certDaysLeft !== null && r.certExpiresAt !== null)
    return `${r.certDaysLeft.toFixed(2)} d (${shortUtc(new Date(r.certExpiresAt))})${warn}`;
  if (r.certExpiresInDays !== null) return `${r.certExpiresInDays} d${warn}`;
  return "unknown";
}

function haCell(r: DeviceReportRow): string {
  if (r.ha.length === 0) return "-";
  return r.ha
    .map((h) => {
      // A foreign domain, or one a job looked for and could not verify: never a silent success in the table.
      const domain =
        h.cloningDomain.status === "problem" || h.cloningDomain.status === "check-failed"
          ? ` domain ${h.cloningDomain.summary}`
          : "";
      const member =
        h.member.status === "unknown"
          ? "?"
          : h.member.status === "check-failed"
            ? "CHECK FAILED"
            : h.member.summary;
      return `${h.group}:${member}${domain}`;
    })
    .join(",");
}

/** A fixed-width table, then the problems and the stale facts. */
export function renderReport(report: FleetReport): string {
  const header = [
    "DEVICE",
    "STATE",
    "NTLS 1792",
    "SOFTWARE",
    "FIRMWARE",
    "KB0019789",
    "REBOOT",
    "NTLS CERT EXPIRES",
    "HA",
    "GUARD",
    "CHECKED",
  ];
  const rows = report.devices.map((r) => {
    if (r.retired || r.state !== "in service")
      return [r.device, r.state.toUpperCase(), "-", "-", "-", "-", "-", "-", "-", "-", ageCell(r)];
    const patch = r.facts[`patch:${REBOOT_PATCH_KB}`];
    return [
      r.device,
      "in service",
      cell(r.facts.ntls),
      r.softwareVersion ?? cell(r.facts.software, () => "unknown"),
      r.firmware ?? cell(r.facts.software, () => "unknown"),
      cell(patch, (f) => (f.status === "ok" ? "installed" : "MISSING")),
      cell(patch, (f) => (f.status === "ok" ? "safe" : "UNSAFE")),
      certCell(r),
      haCell(r),
      r.guard ?? "-",
      ageCell(r),
    ];
  });
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
  if (report.stale.length > 0) {
    out.push("");
    out.push(`Stale (seen more than ${ageText(report.staleAfterSeconds)} ago):`);
    for (const s of report.stale) out.push(`  - ${s}`);
  }
  return out.join("\n");
}

function ageCell(r: DeviceReportRow): string {
  if (r.ageSeconds === null) return "never";
  return `${ageText(r.ageSeconds)} ago${r.stale ? " STALE" : ""}`;
}

function factLine(name: string, f: FactView): string[] {
  return [
    name,
    f.status,
    f.summary,
    f.observedAt
      ? `${shortUtc(new Date(f.observedAt))} (${ageText(f.ageSeconds)} ago${f.stale ? ", STALE" : ""})`
      : "never",
    f.by ? `${f.by}${f.jobId ? ` ${f.jobId}` : ""}` : "-",
  ];
}

/** `report <device>`: every fact with its status, when and by which job; then its jobs. */
export function renderDeviceDetail(d: DeviceDetail): string {
  const r = d.row;
  const lines: string[] = [`${r.device}: ${r.state}`];
  const table: string[][] = [["FACT", "STATUS", "SEEN AS", "OBSERVED", "BY"]];
  for (const [name, f] of Object.entries(r.facts)) table.push(factLine(name, f));
  for (const h of r.ha) {
    table.push(factLine(`ha ${h.group} ${h.partition} member`, h.member));
    table.push(factLine(`ha ${h.group} ${h.partition} cloning domain`, h.cloningDomain));
  }
  for (const p of r.pairs) {
    table.push(factLine(`trust <-> ${p.host}`, p.trust));
    table.push(factLine(`vtl verify from ${p.host}`, p.vtlVerify));
  }
  for (const p of r.partitions) table.push(factLine(`partition ${p.partition} intact`, p.intact));
  const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => (row[i] ?? "").length)));
  for (const row of table)
    lines.push(
      `  ${row
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join("  ")
        .trimEnd()}`,
    );
  lines.push("");
  if (r.problems.length === 0) lines.push("No problems found.");
  else {
    lines.push(`Problems (${r.problems.length}):`);
    for (const p of r.problems) lines.push(`  - ${p}`);
  }
  lines.push("");
  if (d.jobs.length === 0) lines.push("No job has touched it yet.");
  else {
    lines.push(`Jobs (newest first, ${d.jobs.length}):`);
    for (const j of d.jobs)
      lines.push(
        `  ${shortUtc(new Date(j.finishedAt))}  ${j.outcome.padEnd(23)}  ${j.runbook.padEnd(14)}  ${j.jobId}  ${j.actor}`,
      );
  }
  return lines.join("\n");
}
