// tcp-check: can clients reach each appliance's NTLS service, and what certificate does it present?
//
//   for each device:       TCP connect + TLS handshake to <host>:<ntlsPort> from the daemon: latency, certificate
//                          subject, SHA-256 fingerprint, expiry and days left
//   for each client host:  `vtl verify`: the partitions (slots) the host really reaches over NTLS
//   report:                per device: reachable, latency, cert, expiresInDays, and the client hosts assigned to it
//                          that see all of its assigned partitions (verifiedFrom) or miss some (notVerifiedFrom)
import { z } from "zod";
import { parsers } from "../parsers/index.ts";
import { getDevice } from "../src/config/model.ts";
import type { Fleet } from "../src/config/schema.ts";
import { findingsVerdict } from "../src/engine/outcome.ts";
import { defineRunbook, type Step } from "../src/engine/runbook.ts";
import { resolveTarget } from "../src/engine/targets.ts";
import type { PresentedCertificate } from "../src/net/probe.ts";
import { probeFactRefs, probeFacts, vtlFactRefs, vtlFacts } from "./lib/facts.ts";

const params = z
  .object({
    /** A device, a client host, an HA group, or `fleet`. */
    target: z.string().min(1).default("fleet"),
    /** Connect/handshake timeout per probe; default: the fleet's connect timeout. */
    timeoutMs: z.number().int().positive().max(120_000).optional(),
  })
  .strict();
type Params = z.output<typeof params>;

export interface NtlsProbeResult {
  device: string;
  endpoint: string;
  reachable: boolean;
  latencyMs: number | null;
  handshakeOk: boolean;
  handshakeMs: number | null;
  error: string | null;
  cert: PresentedCertificate | null;
  expiresInDays: number | null;
  /** Exact hours left (to the hundredth) when the certificate was read; `cert.validTo` is the instant itself. */
  expiresInHours: number | null;
  /** Within the fleet's certExpiryWarnDays (or already expired). */
  certExpiringSoon: boolean;
}

export interface VtlVerifyResult {
  host: string;
  /** False when vtl reported an error, or a server it could not reach. */
  ok: boolean;
  /** The slots vtl listed; empty when it refused (no table printed). */
  slots: { serial: string; label: string }[];
  /** Servers vtl could not reach, with its reason. */
  unreachable: { server: string; reason: string }[];
  /** vtl's own refusal (no table), as its parser read it. */
  error: string | null;
}

export interface TcpCheckDevice extends NtlsProbeResult {
  /** Client hosts assigned to this device whose `vtl verify` lists every partition they are assigned. */
  verifiedFrom: string[];
  notVerifiedFrom: { host: string; missing: string[]; error: string | null }[];
}

export interface TcpCheckResult {
  devices: TcpCheckDevice[];
  /** One line per thing an operator should look at. */
  problems: string[];
}

const timeoutOf = (p: z.output<typeof params>, fleet: Fleet) =>
  p.timeoutMs ?? fleet.defaults.timeouts.connectMs;
const endpointOf = (fleet: Fleet, device: string) => {
  const d = getDevice(fleet, device);
  return { host: d.host, port: d.ntlsPort, label: `${d.host}:${d.ntlsPort}` };
};

const ntlsProbe = {
  id: "ntls-probe",
  title: (device) => `TCP connect and TLS handshake to the NTLS port of ${device}`,
  kind: "read",
  forEach: "device",
  commands: (p, fleet, device) => {
    const ep = endpointOf(fleet, device!);
    const t = timeoutOf(p, fleet);
    return [
      { via: "tcp", on: ep.label, command: `connect (timeout ${t} ms)` },
      { via: "tls", on: ep.label, command: `handshake   (reads the server certificate; timeout ${t} ms)` },
    ];
  },
  observes: (_p, _f, device) => probeFactRefs(device!),
  facts: (r) => probeFacts(r),
  async run(ctx): Promise<NtlsProbeResult> {
    const device = ctx.target!;
    const ep = endpointOf(ctx.fleet, device);
    const timeoutMs = timeoutOf(ctx.params, ctx.fleet);
    const tcp = await ctx.tcp.tcp(ep.host, ep.port, timeoutMs);
    const base = { device, endpoint: ep.label };
    if (!tcp.connected)
      return {
        ...base,
        reachable: false,
        latencyMs: null,
        handshakeOk: false,
        handshakeMs: null,
        error: tcp.error ?? "not reachable",
        cert: null,
        expiresInDays: null,
        expiresInHours: null,
        certExpiringSoon: false,
      };
    const tls = await ctx.tcp.tls(ep.host, ep.port, { timeoutMs });
    const cert = tls.cert ?? null;
    return {
      ...base,
      reachable: true,
      latencyMs: tcp.latencyMs ?? null,
      handshakeOk: tls.handshakeOk,
      handshakeMs: tls.handshakeMs ?? null,
      error: tls.error ?? null,
      cert,
      expiresInDays: cert ? cert.daysLeft : null,
      expiresInHours: cert ? cert.hoursLeft : null,
      certExpiringSoon: cert ? cert.daysLeft <= ctx.fleet.defaults.certExpiryWarnDays : false,
    };
  },
} satisfies Step<Params, NtlsProbeResult>;

const vtlVerify = {
  id: "vtl-verify",
  title: (host) => `List the partitions ${host} reaches over NTLS (vtl verify)`,
  kind: "read",
  forEach: "clientHost",
  commands: (_p, _f, host) => [{ via: "host", on: host!, command: "vtl verify" }],
  observes: (_p, fleet, host, targets) => vtlFactRefs(fleet, host!, targets.devices),
  facts: (r, { fleet, target, targets }) => vtlFacts(fleet, target!, targets.devices, r),
  async run(ctx): Promise<VtlVerifyResult> {
    const host = ctx.target!;
    const shell = await ctx.hostShell(host);
    // vtl reporting a broken link is what this check exists to find; anything else still fails the step.
    const seen = await shell.attempt("vtl verify", parsers.vtlVerify);
    if (!seen.ok)
      return {
        host,
        ok: false,
        slots: [],
        unreachable: [],
        error: `${seen.error.code} ${seen.error.errorName}: ${seen.error.deviceMessage}`,
      };
    return {
      host,
      ok: seen.value.unreachable.length === 0,
      slots: seen.value.slots.map((x) => ({ serial: x.serial, label: x.label })),
      unreachable: seen.value.unreachable,
      error: null,
    };
  },
} satisfies Step<Params, VtlVerifyResult>;

const reportStep = {
  id: "report",
  title: "Per device: reachable, latency, certificate and expiry, verified from which client hosts",
  kind: "read",
  async run(ctx): Promise<TcpCheckResult> {
    const problems: string[] = [];
    const devices = ctx.targets.devices.map((name): TcpCheckDevice => {
      const probe = ctx.resultOf(ntlsProbe, name);
      const device = getDevice(ctx.fleet, name);
      const verifiedFrom: string[] = [];
      const notVerifiedFrom: TcpCheckDevice["notVerifiedFrom"] = [];
      for (const host of ctx.fleet.clientHosts) {
        if (!ctx.targets.clientHosts.includes(host.name)) continue;
        const assigned = host.assignments.find((a) => a.device === name);
        if (!assigned) continue;
        const seen = ctx.resultOf(vtlVerify, host.name);
        const serials = new Set(seen.slots.map((s) => s.serial));
        // A partition is identified by its serial: labels are not unique across appliances.
        const missing = assigned.partitions.filter((label) => {
          const par = device.partitions.find((p) => p.label === label);
          return !par || !serials.has(par.serial);
        });
        if (missing.length === 0) verifiedFrom.push(host.name);
        else {
          // vtl's own words: its refusal, or the reason it gave for not reaching this appliance.
          const names = [device.host, device.hostname, device.name];
          const cut = seen.unreachable.find((u) => names.includes(u.server));
          const error = seen.error ?? (cut ? `vtl cannot reach ${cut.server}: ${cut.reason}` : null);
          notVerifiedFrom.push({ host: host.name, missing, error });
          problems.push(
            seen.error === null
              ? `${name}: ${host.name} does not see partition(s) ${missing.join(", ")} (vtl verify)`
              : `${name}: not verified from ${host.name} (vtl verify reported an error)`,
          );
        }
      }
      if (!probe.reachable) problems.push(`${name}: NTLS ${probe.endpoint} not reachable (${probe.error})`);
      else if (!probe.handshakeOk)
        problems.push(`${name}: TLS handshake with ${probe.endpoint} failed (${probe.error})`);
      if (probe.cert?.expired)
        problems.push(`${name}: NTLS certificate expired ${-probe.cert.daysLeft} day(s) ago`);
      else if (probe.certExpiringSoon && probe.cert)
        problems.push(`${name}: NTLS certificate expires in ${probe.cert.daysLeft} day(s)`);
      return { ...probe, verifiedFrom, notVerifiedFrom };
    });
    // One line per client host whose vtl refused, and per server it could not reach, in vtl's own words.
    for (const host of ctx.targets.clientHosts) {
      const seen = ctx.findResultOf(vtlVerify, host);
      if (seen?.error) problems.push(`${host}: vtl verify failed: ${seen.error}`);
      for (const u of seen?.unreachable ?? [])
        problems.push(`${host}: vtl verify cannot reach ${u.server}: ${u.reason}`);
    }
    return { devices, problems };
  },
} satisfies Step<Params>;

export const tcpCheck = defineRunbook({
  name: "tcp-check",
  description: "NTLS reachability and certificate of each appliance, and which client hosts really reach it",
  params,
  targets(p, fleet) {
    const t = resolveTarget(fleet, p.target, ["fleet", "device", "clientHost", "haGroup"]);
    return { devices: t.devices, clientHosts: t.clientHosts };
  },
  // Every problem the report lists is a finding: a check that saw something is not plain green.
  verdict: ({ resultOf }) => {
    const r = resultOf(reportStep);
    return r
      ? findingsVerdict(r.problems)
      : { outcome: "failed", findings: ["tcp-check finished without its report"] };
  },
  steps: [ntlsProbe, vtlVerify, reportStep],
});
