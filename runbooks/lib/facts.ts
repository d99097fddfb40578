// What each runbook tells the fleet state model (src/facts): the observations a step records through
// ctx.facts.observe(), built here from the step's own result so the runbooks themselves change by one line per step,
// and the facts each step declares (`observes`) so a failed step records `check-failed` for them.
//
// This module: devices, client hosts' vtl verify, deprovision and Azure; pair trust is in trust-facts.ts, HA members
// in member-facts.ts (ha-facts.ts builds ha-sync's from its findings). The vocabulary (subject : fact):
//   device:<d>            ntls, cert, software, zeroized, patch:<KB>, lifecycle, guard
//   partition:<d>/<p>     intact
//   client:<h>            vtl-verify, ha-settings
//   pair:<d>|<h>          vtl-verify, trust          (a problem of a pair is that pair's, never the other devices')
//   ha-member:<g>/<d>/<p> member, cloning-domain
//   ha-group:<g>          sync
//   azure:<resource id>   resource, resource-group
import type { Fleet } from "../../src/config/schema.ts";
import { type FactRef, type ObservationInput, subjects as S } from "../../src/facts/model.ts";

const DAY_MS = 86_400_000;

// ---- tcp-check ----

export interface ProbeView {
  device: string;
  endpoint: string;
  reachable: boolean;
  latencyMs: number | null;
  handshakeOk: boolean;
  error: string | null;
  cert: {
    validTo: string;
    daysLeft: number;
    fingerprint256: string;
    subject: string;
    expired?: boolean;
  } | null;
  certExpiringSoon: boolean;
}

export const probeFactRefs = (device: string): FactRef[] => [
  { subject: S.device(device), fact: "ntls" },
  { subject: S.device(device), fact: "cert" },
];

export function probeFacts(p: ProbeView): ObservationInput[] {
  const subject = S.device(p.device);
  const up = p.reachable && p.handshakeOk;
  const ntls: ObservationInput = up
    ? {
        subject,
        fact: "ntls",
        status: "ok",
        summary: p.latencyMs !== null ? `up ${Math.round(p.latencyMs * 10) / 10}ms` : "up",
        value: { endpoint: p.endpoint, latencyMs: p.latencyMs },
      }
    : {
        subject,
        fact: "ntls",
        status: "problem",
        summary: p.reachable ? "TLS FAILED" : "DOWN",
        value: { endpoint: p.endpoint, reachable: p.reachable, handshakeOk: p.handshakeOk },
        reason: `NTLS ${p.endpoint} ${p.reachable ? "TLS handshake failed" : "not reachable"}: ${p.error ?? "no answer"}`,
      };
  return [ntls, certFact(p.device, p.cert, p.certExpiringSoon, p.error)];
}

/** The appliance's NTLS certificate as presented (tcp-check) or fetched (ntls-cert-sync). */
export function certFact(
  device: string,
  cert: ProbeView["cert"],
  expiringSoon: boolean,
  whyMissing: string | null = null,
): ObservationInput {
  const subject = S.device(device);
  if (!cert)
    return {
      subject,
      fact: "cert",
      status: "check-failed",
      summary: "not read",
      reason: `no certificate read from ${device}: ${whyMissing ?? "no handshake"}`,
    };
  const expired = cert.expired ?? Date.parse(cert.validTo) <= Date.now();
  const value = {
    validTo: cert.validTo,
    daysLeft: cert.daysLeft,
    fingerprint256: cert.fingerprint256,
    subject: cert.subject,
  };
  const summary = `${cert.daysLeft} d (${cert.validTo})`;
  if (expired)
    return {
      subject,
      fact: "cert",
      status: "problem",
      summary,
      value,
      reason: `NTLS certificate expired (${cert.validTo})`,
    };
  if (expiringSoon)
    return {
      subject,
      fact: "cert",
      status: "problem",
      summary,
      value,
      reason: `NTLS certificate expires in ${Math.floor(((Date.parse(cert.validTo) - Date.now()) / DAY_MS) * 100) / 100} days (${cert.validTo})`,
    };
  return { subject, fact: "cert", status: "ok", summary, value };
}

/** The devices assigned to a client host that a job targets: the pairs its `vtl verify` speaks for. */
function assignedDevices(fleet: Fleet, host: string, devices: readonly string[]): string[] {
  const h = fleet.clientHosts.find((x) => x.name === host);
  return (h?.assignments ?? []).map((a) => a.device).filter((d) => devices.includes(d));
}

export const vtlFactRefs = (fleet: Fleet, host: string, devices: readonly string[]): FactRef[] => [
  { subject: S.client(host), fact: "vtl-verify" },
  ...assignedDevices(fleet, host, devices).map((d) => ({ subject: S.pair(d, host), fact: "vtl-verify" })),
];

/**
 * `vtl verify` on a client host: the host's own fact, and one per (appliance, host) pair. When vtl refuses outright (no
 * table), which appliance it concerns is not known: the host carries the problem and the pairs become `unknown` (no
 * older green stands), never blamed on every appliance. A server vtl names as unreachable is that pair's problem.
 */
export function vtlFacts(
  fleet: Fleet,
  host: string,
  devices: readonly string[],
  seen: {
    ok: boolean;
    slots: { serial: string }[];
    unreachable: { server: string; reason: string }[];
    error: string | null;
  },
): ObservationInput[] {
  const out: ObservationInput[] = [];
  out.push(
    seen.ok
      ? {
          subject: S.client(host),
          fact: "vtl-verify",
          status: "ok",
          summary: `${seen.slots.length} slot(s)`,
          value: { slots: seen.slots.map((s) => s.serial) },
        }
      : {
          subject: S.client(host),
          fact: "vtl-verify",
          status: "problem",
          summary: seen.error !== null ? "vtl verify reported an error" : "vtl verify cannot reach a server",
          reason: `vtl verify on ${host}: ${seen.error ?? seen.unreachable.map((u) => `cannot reach ${u.server}: ${u.reason}`).join("; ")}`,
        },
  );
  const serials = new Set(seen.slots.map((s) => s.serial));
  const h = fleet.clientHosts.find((x) => x.name === host);
  for (const d of assignedDevices(fleet, host, devices)) {
    const subject = S.pair(d, host);
    if (seen.error !== null) {
      out.push({
        subject,
        fact: "vtl-verify",
        status: "unknown",
        summary: "not told",
        reason: `vtl verify on ${host} reported an error without saying which appliance it concerns`,
      });
      continue;
    }
    const dev = fleet.devices.find((x) => x.name === d);
    const labels = h?.assignments.find((a) => a.device === d)?.partitions ?? [];
    const missing = labels.filter((l) => {
      const par = dev?.partitions.find((p) => p.label === l);
      return !par || !serials.has(par.serial);
    });
    const names = [dev?.host, dev?.hostname, d].filter((x): x is string => x !== undefined);
    const cut = seen.unreachable.find((u) => names.includes(u.server));
    out.push(
      missing.length === 0
        ? {
            subject,
            fact: "vtl-verify",
            status: "ok",
            summary: `sees ${labels.join(", ") || "nothing assigned"}`,
          }
        : cut
          ? {
              subject,
              fact: "vtl-verify",
              status: "problem",
              summary: `cannot reach ${cut.server}`,
              reason: `vtl verify on ${host} cannot reach ${cut.server}: ${cut.reason}`,
              value: { missing },
            }
          : {
              subject,
              fact: "vtl-verify",
              status: "problem",
              summary: `misses ${missing.join(", ")}`,
              reason: `${host} does not see partition(s) ${missing.join(", ")} of ${d} (vtl verify)`,
              value: { missing },
            },
    );
  }
  return out;
}

// ---- patch-verify ----

export const hsmShowFactRefs = (device: string): FactRef[] => [
  { subject: S.device(device), fact: "software" },
  { subject: S.device(device), fact: "zeroized" },
];

export function hsmShowFacts(show: {
  device: string;
  serial: string;
  softwareVersion: string | null;
  firmware: string;
  model: string;
  zeroized: boolean;
}): ObservationInput[] {
  const subject = S.device(show.device);
  return [
    {
      subject,
      fact: "software",
      status: "ok",
      summary: `${show.softwareVersion ?? "unknown"} / firmware ${show.firmware}`,
      value: {
        softwareVersion: show.softwareVersion,
        firmware: show.firmware,
        model: show.model,
        serial: show.serial,
      },
    },
    zeroizedFact(show.device, show.zeroized, false),
  ];
}

/** Zeroized: a problem for a device in service, the expected state for one being retired. */
export function zeroizedFact(device: string, zeroized: boolean, retiring: boolean): ObservationInput {
  return zeroized
    ? {
        subject: S.device(device),
        fact: "zeroized",
        status: retiring ? "ok" : "problem",
        summary: "ZEROIZED",
        value: true,
        ...(retiring ? {} : { reason: `${device} reports itself zeroized (hsm show)` }),
      }
    : { subject: S.device(device), fact: "zeroized", status: "ok", summary: "no", value: false };
}

export const patchFactRefs = (device: string, kbs: readonly string[]): FactRef[] =>
  kbs.map((kb) => ({ subject: S.device(device), fact: `patch:${kb}` }));

export function patchFacts(
  device: string,
  kbRpms: Record<string, string[]>,
  rebootPatchKb: string,
): ObservationInput[] {
  return Object.entries(kbRpms).map(([kb, rpms]) =>
    rpms.length > 0
      ? {
          subject: S.device(device),
          fact: `patch:${kb}`,
          status: "ok",
          summary: "installed",
          value: { rpms },
        }
      : {
          subject: S.device(device),
          fact: `patch:${kb}`,
          status: "problem",
          summary: "MISSING",
          value: { rpms },
          reason:
            kb === rebootPatchKb
              ? `${kb} reboot patch missing: REBOOT-UNSAFE`
              : `${kb} missing (package list)`,
        },
  );
}

// ---- deprovision ----

export function lifecycleFact(
  device: string,
  state: "zeroized" | "deleted" | "orphaned",
  detail: string,
): ObservationInput {
  return {
    subject: S.device(device),
    fact: "lifecycle",
    status: state === "orphaned" ? "problem" : "ok",
    summary:
      state === "deleted" ? "RETIRED (deleted)" : state === "zeroized" ? "ZEROIZED (retiring)" : "ORPHANED",
    value: state,
    ...(state === "orphaned" ? { reason: detail } : {}),
  };
}

export function azureResourceFact(
  resourceId: string,
  state: "exists" | "deleted" | "orphaned",
  detail: string,
): ObservationInput {
  return {
    subject: S.azure(resourceId),
    fact: "resource",
    status: state === "orphaned" ? "problem" : "ok",
    summary: state,
    value: { state, detail },
    ...(state === "orphaned" ? { reason: detail } : {}),
  };
}
