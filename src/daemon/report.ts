// The fleet report, read only from the fleet state model (src/facts): per device its facts — NTLS 1792, certificate,
// software/firmware, KB0019789, zeroized, guard, lifecycle — each with its status (ok, problem, check-failed,
// unknown), when it was seen and by which job; its HA members and (appliance, client) pairs; how old the row's
// oldest fact is and whether it is stale. Nothing here connects to a device or reads a job result: a fact never
// observed is `unknown`, a check that failed says so with its reason and time, a retired device says it is retired.
import type { Fleet } from "../config/schema.ts";
import { type FactStatus, type JsonValue, type Observation, subjects as S } from "../facts/model.ts";
import { type JobTouch, RedisFactStore } from "../facts/store.ts";
import type { RedisClient } from "../redis/client.ts";
import {
  buildKeyVaultRows,
  buildManagedHsmRows,
  type KeyVaultReportRow,
  keyVaultSubjects,
  type ManagedHsmReportRow,
} from "./report-mhsm.ts";

export interface FactView {
  fact: string;
  status: FactStatus;
  summary: string;
  /** When it was seen (ISO); null when never. */
  observedAt: string | null;
  ageSeconds: number | null;
  /** Seen longer ago than the report's staleAfter. */
  stale: boolean;
  jobId: string | null;
  by: string | null;
  reason?: string;
  value?: JsonValue;
}

export type DeviceState = "in service" | "zeroized (retiring)" | "retired" | "orphaned";

export interface DeviceReportRow {
  device: string;
  state: DeviceState;
  retired: boolean;
  /** Every fact of `device:<name>`, the core ones (ntls, cert, software, patch:KB0019789, zeroized, guard) always. */
  facts: Record<string, FactView>;
  ha: { group: string; partition: string; member: FactView; cloningDomain: FactView }[];
  pairs: { host: string; trust: FactView; vtlVerify: FactView }[];
  partitions: { partition: string; intact: FactView }[];
  // Convenience values, read from the facts above.
  reachable: boolean | null;
  ntlsEndpoint: string | null;
  latencyMs: number | null;
  softwareVersion: string | null;
  firmware: string | null;
  rebootPatch: boolean | null;
  rebootUnsafe: boolean | null;
  /** Whole days left as the check saw it (negative = days since expiry). */
  certExpiresInDays: number | null;
  certExpiresAt: string | null;
  /** Days left at report time, to the hundredth, rounded down (negative once expired): 4.99, not "4". */
  certDaysLeft: number | null;
  certExpiringSoon: boolean;
  /** "ok", "quarantined: <roles>", "pending: <roles>", or null when the guard never recorded a login. */
  guard: string | null;
  /** The oldest of the row's core facts that were seen, and its age. */
  checkedAt: string | null;
  ageSeconds: number | null;
  stale: boolean;
  problems: string[];
}

export interface ClientReportRow {
  host: string;
  facts: Record<string, FactView>;
  problems: string[];
}

export interface FleetReport {
  generatedAt: string;
  staleAfterSeconds: number;
  devices: DeviceReportRow[];
  clientHosts: ClientReportRow[];
  /** Managed HSM pools (src/daemon/report-mhsm.ts); empty when the fleet declares none. */
  managedHsms: ManagedHsmReportRow[];
  /** Key Vault vaults (placement, recoverability); empty when the fleet declares none. */
  keyVaults: KeyVaultReportRow[];
  /** `<device or host>: <what>`, every problem and failed check of devices in service, hosts and resources. */
  problems: string[];
  /** Facts seen longer ago than staleAfter: `<device>: <fact> seen <age> ago`. */
  stale: string[];
}

export interface ReportOptions {
  now?: Date;
  /** A fact older than this is flagged stale (default 24 h). */
  staleAfterMs?: number;
}

export const REBOOT_PATCH_KB = "KB0019789";
const CORE = ["ntls", "cert", "software", `patch:${REBOOT_PATCH_KB}`, "zeroized", "guard"] as const;
const DAY_MS = 86_400_000;
export const DEFAULT_STALE_AFTER_MS = DAY_MS;

export async function buildReport(
  redis: RedisClient,
  fleet: Fleet,
  opts: ReportOptions = {},
): Promise<FleetReport> {
  const now = opts.now ?? new Date();
  const staleAfterMs = opts.staleAfterMs ?? DEFAULT_STALE_AFTER_MS;
  const all = await new RedisFactStore(redis).readAll();
  const view = (o: Observation | undefined, fact: string): FactView => factView(o, fact, now, staleAfterMs);
  const known = new Set(fleet.devices.map((d) => d.name));
  // Devices the model knows as retired that the fleet file no longer lists are still shown, as retired.
  const retiredElsewhere = [...all.keys()]
    .filter((s) => s.startsWith("device:"))
    .map((s) => s.slice("device:".length))
    .filter((d) => !known.has(d) && typeof all.get(S.device(d))?.lifecycle === "object");
  const rows = [...fleet.devices.map((d) => d.name), ...retiredElsewhere].map((device) =>
    deviceRow(device, fleet, all, view, now),
  );
  const clientHosts = fleet.clientHosts.map((h): ClientReportRow => {
    const facts = Object.fromEntries(
      Object.entries(all.get(S.client(h.name)) ?? {}).map(([f, o]) => [f, view(o, f)]),
    );
    return { host: h.name, facts, problems: factProblems(Object.values(facts)) };
  });
  // Managed HSM pools and vaults have rows of their own (report-mhsm.ts), which name them by their fleet names.
  const ownRows = keyVaultSubjects(fleet);
  const azureProblems = [...all.entries()]
    .filter(([s]) => s.startsWith("azure:") && !ownRows.has(s))
    .flatMap(([s, facts]) =>
      factProblems(Object.entries(facts).map(([f, o]) => view(o, f))).map((p) => `${s}: ${p}`),
    );
  const stale = rows.flatMap((r) =>
    r.retired
      ? []
      : Object.values(r.facts)
          .filter((f) => f.stale)
          .map((f) => `${r.device}: ${f.fact} seen ${ageText(f.ageSeconds)} ago`),
  );
  const managedHsms = buildManagedHsmRows(fleet, all);
  const keyVaults = buildKeyVaultRows(fleet, all);
  return {
    generatedAt: now.toISOString(),
    staleAfterSeconds: Math.round(staleAfterMs / 1000),
    devices: rows,
    clientHosts,
    managedHsms,
    keyVaults,
    problems: [
      ...rows.flatMap((r) => r.problems.map((p) => `${r.device}: ${p}`)),
      ...clientHosts.flatMap((h) => h.problems.map((p) => `${h.host}: ${p}`)),
      ...azureProblems,
      ...managedHsms.flatMap((r) => r.problems),
      ...keyVaults.flatMap((r) => r.problems),
    ],
    stale,
  };
}

function deviceRow(
  device: string,
  fleet: Fleet,
  all: Map<string, Record<string, Observation>>,
  view: (o: Observation | undefined, fact: string) => FactView,
  now: Date,
): DeviceReportRow {
  const own = all.get(S.device(device)) ?? {};
  const facts: Record<string, FactView> = {};
  for (const f of CORE) facts[f] = view(own[f], f);
  for (const [f, o] of Object.entries(own)) facts[f] = view(o, f);
  const lifecycle = own.lifecycle?.value;
  const state: DeviceState =
    lifecycle === "deleted"
      ? "retired"
      : lifecycle === "orphaned"
        ? "orphaned"
        : lifecycle === "zeroized"
          ? "zeroized (retiring)"
          : "in service";
  const ha = fleet.haGroups.flatMap((g) =>
    g.members
      .filter((m) => m.device === device)
      .map((m) => {
        const f = all.get(S.haMember(g.label, m.device, m.partition)) ?? {};
        return {
          group: g.label,
          partition: m.partition,
          member: view(f.member, "member"),
          cloningDomain: view(f["cloning-domain"], "cloning-domain"),
        };
      }),
  );
  const pairs = fleet.clientHosts
    .filter((h) => h.assignments.some((a) => a.device === device))
    .map((h) => {
      const f = all.get(S.pair(device, h.name)) ?? {};
      return { host: h.name, trust: view(f.trust, "trust"), vtlVerify: view(f["vtl-verify"], "vtl-verify") };
    });
  const declared = fleet.devices.find((d) => d.name === device)?.partitions.map((p) => p.label) ?? [];
  const partitions = declared.flatMap((p) => {
    const f = all.get(S.partition(device, p))?.intact;
    return f ? [{ partition: p, intact: view(f, "intact") }] : [];
  });

  const ntls = own.ntls;
  const ntlsValue = (ntls?.value ?? {}) as { endpoint?: string; latencyMs?: number | null };
  const software = (own.software?.value ?? {}) as { softwareVersion?: string | null; firmware?: string };
  const patch = own[`patch:${REBOOT_PATCH_KB}`];
  const cert = certOf(own.cert, fleet, now);
  const guard = own.guard ? own.guard.summary : null;
  const seen = CORE.map((f) => facts[f]!).filter((f) => f.observedAt !== null && f.fact !== "guard");
  const oldest = seen.sort((a, b) => (a.observedAt ?? "").localeCompare(b.observedAt ?? ""))[0];
  const row: DeviceReportRow = {
    device,
    state,
    retired: state === "retired",
    facts,
    ha,
    pairs,
    partitions,
    reachable:
      ntls && ntls.status !== "check-failed" && ntls.status !== "unknown" ? ntls.status === "ok" : null,
    ntlsEndpoint: typeof ntlsValue.endpoint === "string" ? ntlsValue.endpoint : null,
    latencyMs: typeof ntlsValue.latencyMs === "number" ? Math.round(ntlsValue.latencyMs * 10) / 10 : null,
    softwareVersion: own.software ? (software.softwareVersion ?? null) : null,
    firmware: own.software && typeof software.firmware === "string" ? software.firmware : null,
    rebootPatch:
      patch && (patch.status === "ok" || patch.status === "problem") ? patch.status === "ok" : null,
    rebootUnsafe:
      patch && (patch.status === "ok" || patch.status === "problem") ? patch.status === "problem" : null,
    ...cert,
    guard,
    checkedAt: oldest?.observedAt ?? null,
    ageSeconds: oldest?.ageSeconds ?? null,
    stale: seen.some((f) => f.stale),
    problems: [],
  };
  row.problems = state === "in service" ? serviceProblems(row, fleet) : retiredProblems(row);
  return row;
}

/** Certificate expiry at report time, from the observed validTo (not the days the check counted then). */
function certOf(o: Observation | undefined, fleet: Fleet, now: Date) {
  const v = (o?.value ?? {}) as { validTo?: string; daysLeft?: number };
  const validTo = typeof v.validTo === "string" ? new Date(v.validTo) : null;
  const ok = validTo !== null && !Number.isNaN(validTo.getTime());
  const certDaysLeft = ok ? Math.floor((validTo.getTime() - now.getTime()) / (DAY_MS / 100)) / 100 : null;
  return {
    certExpiresInDays: typeof v.daysLeft === "number" ? v.daysLeft : null,
    certExpiresAt: ok ? validTo.toISOString() : null,
    certDaysLeft,
    certExpiringSoon:
      o?.status === "problem" || (certDaysLeft !== null && certDaysLeft <= fleet.defaults.certExpiryWarnDays),
  };
}

function serviceProblems(r: DeviceReportRow, _fleet: Fleet): string[] {
  const out: string[] = [];
  const f = r.facts;
  const never = (fact: FactView, text: string) => {
    if (fact.status === "unknown") out.push(text);
  };
  never(f.ntls!, "NTLS never checked (run tcp-check)");
  never(f.software!, "software never checked (run patch-verify)");
  never(f[`patch:${REBOOT_PATCH_KB}`]!, "patches never checked (run patch-verify)");
  for (const fact of Object.values(f)) {
    if (fact.fact === "cert") continue;
    out.push(...factProblems([fact]));
  }
  // The certificate at report time: days left now, and the instant.
  const cert = f.cert!;
  if (cert.status === "check-failed") out.push(...factProblems([cert]));
  else if (r.certExpiresAt !== null && r.certDaysLeft !== null) {
    const at = shortUtc(new Date(r.certExpiresAt));
    if (r.certDaysLeft <= 0) out.push(`NTLS certificate expired ${daysText(-r.certDaysLeft)} ago (${at})`);
    else if (r.certExpiringSoon) out.push(`NTLS certificate expires in ${daysText(r.certDaysLeft)} (${at})`);
  }
  for (const m of r.ha) out.push(...factProblems([m.member, m.cloningDomain]));
  for (const p of r.pairs) out.push(...factProblems([p.trust, p.vtlVerify]));
  for (const p of r.partitions) out.push(...factProblems([p.intact]));
  return out;
}

/** A device being retired or retired has no service to be wrong about; an orphaned resource is a problem. */
function retiredProblems(r: DeviceReportRow): string[] {
  return factProblems([r.facts.lifecycle].filter((x): x is FactView => x !== undefined));
}

/** `problem` facts by their reason, `check-failed` ones with when, by which job, and why. */
function factProblems(facts: readonly FactView[]): string[] {
  return facts.flatMap((f) => {
    if (f.status === "problem") return [f.reason ?? `${f.fact}: ${f.summary}`];
    if (f.status === "check-failed")
      return [
        `${f.fact}: CHECK FAILED at ${f.observedAt ? shortUtc(new Date(f.observedAt)) : "?"} (${f.by ?? "?"} job ${f.jobId ?? "?"}): ${f.reason ?? "no reason recorded"}`,
      ];
    return [];
  });
}

function factView(o: Observation | undefined, fact: string, now: Date, staleAfterMs: number): FactView {
  if (!o)
    return {
      fact,
      status: "unknown",
      summary: "unknown",
      observedAt: null,
      ageSeconds: null,
      stale: false,
      jobId: null,
      by: null,
    };
  const age = Math.max(0, Math.round((now.getTime() - Date.parse(o.observedAt)) / 1000));
  return {
    fact,
    status: o.status,
    summary: o.summary,
    observedAt: o.observedAt,
    ageSeconds: age,
    stale: age * 1000 > staleAfterMs,
    jobId: o.jobId,
    by: o.by,
    ...(o.reason !== undefined ? { reason: o.reason } : {}),
    ...(o.value !== undefined ? { value: o.value } : {}),
  };
}

/** `2026-11-28 11:02Z`: to the minute, in UTC, as an operator compares it with a change window. */
export function shortUtc(d: Date): string {
  return `${d.toISOString().slice(0, 16).replace("T", " ")}Z`;
}

/** `4.99 days`, `1.00 day`. */
export function daysText(days: number): string {
  return `${days.toFixed(2)} ${days.toFixed(2) === "1.00" ? "day" : "days"}`;
}

/** `12s`, `5m`, `3h`, `2d`. */
export function ageText(seconds: number | null): string {
  if (seconds === null) return "never";
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86_400)}d`;
}

/** One device's facts and its job history (`report <device>`). */
export interface DeviceDetail {
  row: DeviceReportRow;
  jobs: JobTouch[];
}

export async function buildDeviceDetail(
  redis: RedisClient,
  fleet: Fleet,
  device: string,
  opts: ReportOptions = {},
): Promise<DeviceDetail | null> {
  const report = await buildReport(redis, fleet, opts);
  const row = report.devices.find((d) => d.device === device);
  if (!row) return null;
  return { row, jobs: await new RedisFactStore(redis).jobHistory(device) };
}
