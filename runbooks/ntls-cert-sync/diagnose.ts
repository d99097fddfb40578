// ntls-cert-sync, the diagnosis: what each appliance presents, what each client host trusts, what each appliance has
// registered, a real handshake as each client with the NTLS syslog lines it caused, and the per-pair verdict.
import { parsers } from "../../parsers/index.ts";
import { getClientHost, getDevice } from "../../src/config/model.ts";
import type { Fleet } from "../../src/config/schema.ts";
import { UnexpectedResult } from "../../src/engine/errors.ts";
import type { JobTargets, PlannedCommand, Step } from "../../src/engine/runbook.ts";
import { bundleFacts, certFacts } from "../lib/certs.ts";
import { certFact } from "../lib/facts.ts";
import { pairsOfDevice, pairsOfHost, trustFacts } from "../lib/trust-facts.ts";
import {
  type ApplianceCertResult,
  type ApplianceClientView,
  type ApplianceTrustResult,
  CA_FILE,
  type ClientTrustResult,
  type Ctx,
  clientCertPath,
  clientNameOf,
  clientsOf,
  type HandshakeResult,
  type HandshakeView,
  type NtlsReport,
  type PairReport,
  type PairStatus,
  type Params,
  pairsOf,
  planApplianceSide,
  readApplianceSide,
  SYSLOG_TAIL,
  serverNameFor,
  timeoutOf,
  warnDays,
} from "./model.ts";

export const applianceCert = {
  id: "appliance-cert",
  title: (d: string) => `Fetch server.pem from ${d} and read subject, fingerprint and expiry`,
  kind: "read",
  forEach: "device",
  observes: (_p: Params, _f: Fleet, d: string | undefined) => [{ subject: `device:${d}`, fact: "cert" }],
  facts: (r, { params, fleet }) => [certFact(r.device, r.cert, r.cert.daysLeft <= warnDays(params, fleet))],
  commands: (_p: Params, _f: Fleet, d: string | undefined): PlannedCommand[] => [
    { via: "sftp", on: d!, command: "get server.pem" },
  ],
  async run(ctx: Ctx): Promise<ApplianceCertResult> {
    const device = ctx.target!;
    const pem = await ctx.files.applianceGet(device, "server.pem");
    return { device, cert: certFacts(pem, `${device}:server.pem`) };
  },
} satisfies Step<Params, ApplianceCertResult>;

export const clientTrust = {
  id: "client-trust",
  title: (h: string) => `Read what ${h} trusts (vtl listServers, ${CA_FILE}) and its own client certificate`,
  kind: "read",
  forEach: "clientHost",
  observes: (_p: Params, fleet: Fleet, h: string | undefined, targets: JobTargets) =>
    pairsOfHost(fleet, h!, targets.devices),
  commands: (_p: Params, fleet: Fleet, h: string | undefined): PlannedCommand[] => [
    { via: "host", on: h!, command: "vtl listServers" },
    { via: "host", on: h!, command: `cat ${CA_FILE}` },
    { via: "host", on: h!, command: `cat ${clientCertPath(fleet, h!)}` },
  ],
  async run(ctx: Ctx): Promise<ClientTrustResult> {
    const host = ctx.target!;
    const shell = await ctx.hostShell(host);
    const { servers } = await shell.send("vtl listServers", parsers.vtlListServers);
    const trusted = bundleFacts(await ctx.files.hostRead(host, CA_FILE), `${host}:${CA_FILE}`);
    const path = clientCertPath(ctx.fleet, host);
    const clientCertPem = await ctx.files.hostRead(host, path);
    return {
      host,
      clientName: clientNameOf(ctx.fleet, host),
      servers: servers.map((s) => s.host),
      trusted,
      clientCertPem,
      clientCert: certFacts(clientCertPem, `${host}:${path}`),
    };
  },
} satisfies Step<Params, ClientTrustResult>;

export const applianceTrust = {
  id: "appliance-trust",
  title: (d: string) => `Read which clients ${d} trusts (client show, client fingerprint)`,
  kind: "read",
  forEach: "device",
  observes: (_p: Params, fleet: Fleet, d: string | undefined, targets: JobTargets) =>
    pairsOfDevice(fleet, d!, targets.clientHosts),
  commands: (_p: Params, fleet: Fleet, d: string | undefined, targets: JobTargets) =>
    clientsOf({ fleet, targets }, d!).flatMap((h) => planApplianceSide(fleet, d!, h)),
  async run(ctx: Ctx): Promise<ApplianceTrustResult> {
    const device = ctx.target!;
    const clients: ApplianceClientView[] = [];
    for (const host of clientsOf(ctx, device)) clients.push(await readApplianceSide(ctx, device, host));
    return { device, clients };
  },
} satisfies Step<Params, ApplianceTrustResult>;

export const handshake = {
  id: "handshake",
  title: (d: string) =>
    `TLS handshake to ${d}'s NTLS port as each of its clients, then its NTLS syslog lines`,
  kind: "read",
  forEach: "device",
  observes: (_p: Params, fleet: Fleet, d: string | undefined, targets: JobTargets) =>
    pairsOfDevice(fleet, d!, targets.clientHosts),
  commands: (p: Params, fleet: Fleet, d: string | undefined, targets: JobTargets) => {
    const dev = getDevice(fleet, d!);
    const hosts = clientsOf({ fleet, targets }, d!);
    return [
      ...hosts.map(
        (h): PlannedCommand => ({
          via: "tls",
          on: `${dev.host}:${dev.ntlsPort}`,
          command: `handshake as client ${clientNameOf(fleet, h)}   (timeout ${timeoutOf(p, fleet)} ms; only with its ntlsKey)`,
        }),
      ),
      SYSLOG_TAIL,
    ];
  },
  async run(ctx: Ctx): Promise<HandshakeResult> {
    const device = ctx.target!;
    const timeoutMs = timeoutOf(ctx.params, ctx.fleet);
    const attempts: {
      host: string;
      ok: boolean | null;
      presented: string | null;
      error: string | null;
      port?: number;
    }[] = [];
    for (const host of clientsOf(ctx, device)) {
      const trust = ctx.resultOf(clientTrust, host);
      const hasKey = getClientHost(ctx.fleet, host).credentials.ntlsKey !== undefined;
      if (!hasKey) {
        attempts.push({
          host,
          ok: null,
          presented: null,
          error: "no ntlsKey for this client in the fleet file",
        });
        continue;
      }
      const r = await ctx.tcp.tlsAsClient(device, host, {
        clientCertPem: trust.clientCertPem,
        timeoutMs,
      });
      attempts.push({
        host,
        ok: r.handshakeOk,
        presented: r.cert?.fingerprint256 ?? null,
        error: r.error ?? null,
        ...(r.localPort !== undefined ? { port: r.localPort } : {}),
      });
    }
    const shell = await ctx.lunash(device);
    const tail = await shell.send(SYSLOG_TAIL, parsers.syslogTail);
    const handshakes = attempts.map((a): HandshakeView => {
      const address = getClientHost(ctx.fleet, a.host).host;
      const failures = tail.handshakeFailures.filter(
        (f) =>
          (a.port !== undefined && f.peerPort === a.port) ||
          (address !== undefined && f.peerAddress === address),
      );
      return {
        host: a.host,
        handshakeOk: a.ok,
        presentedFingerprint256: a.presented,
        error: a.error,
        syslog: [],
        failures: failures.map((f) => ({
          peer: `${f.peerAddress}/${f.peerPort}`,
          reason: f.reason,
          code: f.code,
        })),
      };
    });
    return { device, handshakes: withSequenceLines(handshakes, tail.lines) };
  },
} satisfies Step<Params, HandshakeResult>;

export const report = {
  id: "report",
  title: "Per appliance/client pair: in sync, expiring, expired or mismatched (which side, evidence)",
  kind: "read",
  observes: (_p: Params, fleet: Fleet, _t: string | undefined, targets: JobTargets) =>
    targets.devices.flatMap((d) => pairsOfDevice(fleet, d, targets.clientHosts)),
  // Each problem is the pair's: client-a's stale copy of hsm-a1's certificate is hsm-a1 <-> client-a, no one else.
  facts: (r) => trustFacts(r.pairs),
  async run(ctx: Ctx): Promise<NtlsReport> {
    const report = buildReport(ctx);
    if (report.problems.length > 0)
      ctx.log.warn({ jobId: ctx.jobId, problems: report.problems }, "NTLS certificate problems");
    await ctx.evidence.note({
      ntlsReport: report.pairs.map((p) => ({
        device: p.device,
        host: p.host,
        status: p.status,
        mismatch: p.mismatch,
      })),
    });
    return report;
  },
} satisfies Step<Params, NtlsReport>;

/** The whole NTLS failure sequence of each attributed handshake (its `peer` appears on the first and last lines). */
function withSequenceLines(handshakes: HandshakeView[], lines: string[]): HandshakeView[] {
  return handshakes.map((h) => {
    if (h.failures.length === 0) return { ...h, syslog: [] };
    const picked = new Set<number>();
    for (const f of h.failures) {
      const idx = lines.map((l, i) => (l.includes(f.peer) ? i : -1)).filter((i) => i >= 0);
      if (idx.length === 0) continue;
      for (let i = Math.min(...idx); i <= Math.max(...idx); i++) picked.add(i);
    }
    return { ...h, syslog: [...picked].sort((a, b) => a - b).map((i) => lines[i]!) };
  });
}

/** Put the reads together: one verdict per pair, with the evidence that decided it. */
function buildReport(ctx: Ctx): NtlsReport {
  const within = ctx.params.expiringWithinDays ?? ctx.fleet.defaults.certExpiryWarnDays;
  const problems: string[] = [];
  const pairs = pairsOf(ctx).map(({ device, host }): PairReport => {
    const app = ctx.resultOf(applianceCert, device).cert;
    const trust = ctx.resultOf(clientTrust, host);
    const view = ctx.resultOf(applianceTrust, device).clients.find((c) => c.host === host);
    const hs = ctx.resultOf(handshake, device).handshakes.find((h) => h.host === host);
    if (!view || !hs) throw new UnexpectedResult(`${device} / ${host}: reads are missing for this pair`);
    const server = serverNameFor(ctx.fleet, device, trust.servers);
    const trustsCurrent = trust.trusted.some((t) => t.fingerprint256 === app.fingerprint256);
    const clientSide: string[] = [];
    if (!server.listed) clientSide.push(`${host} has no server entry for ${device} (vtl listServers)`);
    if (!trustsCurrent) {
      const stale = trust.trusted.filter((t) => t.subject === app.subject);
      clientSide.push(
        stale.length > 0
          ? `${host} trusts a different certificate for ${device} (${stale.map((s) => `${s.fingerprint256.slice(0, 23)}…, valid to ${s.validTo}`).join("; ")}) than the one it presents (${app.fingerprint256.slice(0, 23)}…)`
          : `${host} does not trust ${device}'s current certificate (${app.fingerprint256.slice(0, 23)}…)`,
      );
    }
    if (
      hs.handshakeOk === true &&
      hs.presentedFingerprint256 &&
      !trust.trusted.some((t) => t.fingerprint256 === hs.presentedFingerprint256)
    )
      if (trustsCurrent)
        clientSide.push(`${device} presented a certificate ${host} does not trust during the handshake`);
    const applianceSide: string[] = [];
    if (!view.registered) applianceSide.push(`${device} has no client registered as '${trust.clientName}'`);
    else if (view.fingerprint !== trust.clientCert.fingerprintMd5)
      applianceSide.push(
        `${device} holds a different certificate for '${trust.clientName}' (client fingerprint ${view.fingerprint}) than ${host} presents (${trust.clientCert.fingerprintMd5})`,
      );
    if (hs.handshakeOk === false && hs.failures.length > 0)
      applianceSide.push(
        `${device} refused ${host}'s certificate in a handshake: NTLS logged ${hs.failures.map((f) => f.code).join(", ")} (unknown ca)`,
      );
    else if (hs.handshakeOk === false) applianceSide.push(`handshake as ${host} failed: ${hs.error}`);
    const mismatched = clientSide.length > 0 || applianceSide.length > 0;
    const status: PairStatus = mismatched
      ? "mismatched"
      : app.expired
        ? "expired"
        : app.daysLeft <= within
          ? "expiring"
          : "in-sync";
    if (status === "mismatched")
      problems.push(`${device} / ${host}: mismatched — ${[...clientSide, ...applianceSide].join("; ")}`);
    else if (status === "expired")
      problems.push(`${device} / ${host}: ${device}'s certificate expired ${-app.daysLeft} day(s) ago`);
    else if (status === "expiring")
      problems.push(`${device} / ${host}: ${device}'s certificate expires in ${app.daysLeft} day(s)`);
    return {
      device,
      host,
      status,
      daysLeft: app.daysLeft,
      mismatch: mismatched ? { client: clientSide, appliance: applianceSide } : null,
      evidence: {
        applianceCert: { fingerprint256: app.fingerprint256, validTo: app.validTo },
        clientTrusts: trust.trusted.filter((t) => t.subject === app.subject).map((t) => t.fingerprint256),
        clientListed: server.listed,
        registered: view.registered,
        registeredFingerprint: view.fingerprint,
        clientCertFingerprint: trust.clientCert.fingerprintMd5,
        partitions: view.partitions,
        handshake: { ok: hs.handshakeOk, presented: hs.presentedFingerprint256, error: hs.error },
        syslog: hs.syslog,
      },
    };
  });
  return { expiringWithinDays: within, pairs, problems };
}
