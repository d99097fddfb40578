// ntls-cert-sync: do each client host and each appliance still trust each other's NTLS certificate?
//
//   per appliance:    fetch server.pem (sftp) -> subject, SHA-256 fingerprint, not-after
//   per client host:  vtl listServers + CAFile.pem (the server certificates it trusts) + its own client certificate
//   per appliance:    client show / client fingerprint for each of its clients (registered? partitions? same cert?)
//   per appliance:    a real TLS handshake as each client (its certificate), then syslog tail: the NTLS
//                     "unknown ca" / RC_SSL_FAILED_HANDSHAKE lines of that handshake (or of the client's address)
//   report:           per (appliance, client) pair: in-sync | expiring (days left) | expired | mismatched (side, evidence)
//   snapshot:         before the first change, each pair to repair as it is (server entry, trusted certificates,
//                     registration, partitions) is checkpointed (`repair-snapshot`)
//   repair (opt-in):  client side:    stage server.pem, then vtl deleteServer -n <server> / vtl addServer -n <server>
//                     appliance side: upload <client>.pem, then client delete (proceed) / client register / client
//                                     assignPartition for each partition the client had (exactly those)
//                     Neither half can be additive with the documented CLI (runbooks/lib/ntls-repair.ts says why), so
//                     they self-heal: an interruption after the first destructive command fails the job with
//                     RepairInterrupted (recorded state, what was done, the pair now), and the same job resumed
//                     re-reads and finishes from the snapshot
//   regen (opt-in, one device, approved): sysconf regenCert, then every client of that appliance is re-synced
//   verify:           handshake as the client succeeds and presents the certificate the client trusts; vtl verify
//                     lists the client's partitions on that appliance
import { z } from "zod";
import { getClientHost, getDevice } from "../src/config/model.ts";
import type { Fleet } from "../src/config/schema.ts";
import {
  describeError,
  EngineError,
  isDeviceError,
  isRetryable,
  UnexpectedResult,
} from "../src/engine/errors.ts";
import { findingsVerdict, type Verdict } from "../src/engine/outcome.ts";
import { defineRunbook, type PlannedCommand } from "../src/engine/runbook.ts";
import type { StepContext } from "../src/engine/step-context.ts";
import { resolveTarget } from "../src/engine/targets.ts";
import { bundleFacts, type CertFacts, certFacts } from "./lib/certs.ts";
import { certFact, pairsOfDevice, pairsOfHost, repairedPairFacts, trustFacts } from "./lib/facts.ts";
import {
  type ApplianceSideNow,
  applianceBefore,
  applianceStateNow,
  type ClientSideNow,
  clientBefore,
  clientStateNow,
  interruptedMessage,
  type PairSnapshot,
  RepairInterrupted,
  RepairProgress,
  type RepairSnapshot,
} from "./lib/ntls-repair.ts";

export { RepairInterrupted } from "./lib/ntls-repair.ts";

export const SERVER_CERT_DIR = "/usr/safenet/lunaclient/cert/server";
export const CLIENT_CERT_DIR = "/usr/safenet/lunaclient/cert/client";
export const CA_FILE = `${SERVER_CERT_DIR}/CAFile.pem`;
const SYSLOG_TAIL = "syslog tail -logname messages -entries 200 -search NTLS";

const params = z
  .object({
    /** A device, a client host, or `fleet`. */
    target: z.string().min(1).default("fleet"),
    /** Report certificates expiring within this many days; default: the fleet's certExpiryWarnDays. */
    expiringWithinDays: z.number().int().min(0).max(3650).optional(),
    /** Re-register mismatched certificates on both sides. */
    repair: z.boolean().default(false),
    /** Regenerate the target appliance's own certificate (`sysconf regenCert`): needs an approval. */
    regen: z.boolean().default(false),
    /**
     * Used only when the engine has no approvals store: the principals who approved a regen, recorded as evidence.
     * With ctx.approvals wired (the normal case) the job's own approval request decides.
     */
    approvedBy: z.array(z.string().min(1)).default([]),
    /** Handshake timeout per probe; default: the fleet's connect timeout. */
    timeoutMs: z.number().int().positive().max(120_000).optional(),
  })
  .strict();
type Params = z.output<typeof params>;
type Ctx = StepContext<Params>;

/** A regen was asked for without the approval it needs (or the approval is still pending). */
export class RegenNotApproved extends EngineError {
  override name = "RegenNotApproved";
  constructor(
    message: string,
    override readonly retryable: boolean,
  ) {
    super(message);
  }
}

/** A repair ran, and the link it repaired does not verify: stop and say which. */
export class RepairNotVerified extends EngineError {
  override name = "RepairNotVerified";
}

// Parsed replies, only the fields relied on.
const listServers = z.object({ servers: z.array(z.object({ host: z.string().min(1) })) });
const clientShow = z.object({
  clientId: z.string(),
  hostname: z.string().nullable(),
  partitions: z.array(z.string()),
});
const clientFingerprint = z.object({ fingerprint: z.string().min(1) });
const syslogTail = z.object({
  lines: z.array(z.string()),
  handshakeFailures: z.array(
    z.object({
      peerAddress: z.string(),
      peerPort: z.number(),
      reason: z.string().nullable(),
      sslError: z.string().nullable(),
      code: z.string(),
    }),
  ),
});
const vtlVerify = z.object({ slots: z.array(z.object({ serial: z.string(), label: z.string() })) });

// ---- Step results (checkpoints) ----

export interface ApplianceCertResult {
  device: string;
  cert: CertFacts;
}

export interface ClientTrustResult {
  host: string;
  clientName: string;
  /** `vtl listServers`: the server names the client has registered. */
  servers: string[];
  /** Every certificate in CAFile.pem. */
  trusted: CertFacts[];
  /** The client's own NTLS certificate (public; kept to present it in handshakes and to re-register it). */
  clientCertPem: string;
  clientCert: CertFacts;
}

export interface ApplianceClientView {
  host: string;
  clientName: string;
  registered: boolean;
  hostname: string | null;
  partitions: string[];
  fingerprint: string | null;
}

export interface ApplianceTrustResult {
  device: string;
  clients: ApplianceClientView[];
}

export interface HandshakeView {
  host: string;
  /** null when the handshake could not be attempted (no ntlsKey for the client in the fleet file). */
  handshakeOk: boolean | null;
  presentedFingerprint256: string | null;
  error: string | null;
  /** NTLS syslog lines about this handshake (by its source port) or this client's address. */
  syslog: string[];
  failures: { peer: string; reason: string | null; code: string }[];
}

export interface HandshakeResult {
  device: string;
  handshakes: HandshakeView[];
}

export type PairStatus = "in-sync" | "expiring" | "expired" | "mismatched";

export interface PairReport {
  device: string;
  host: string;
  status: PairStatus;
  daysLeft: number;
  /** Which side lost trust: the client no longer trusts the appliance's certificate, or the reverse. */
  mismatch: { client: string[]; appliance: string[] } | null;
  evidence: {
    applianceCert: { fingerprint256: string; validTo: string };
    clientTrusts: string[];
    clientListed: boolean;
    registered: boolean;
    registeredFingerprint: string | null;
    clientCertFingerprint: string;
    partitions: string[];
    handshake: { ok: boolean | null; presented: string | null; error: string | null };
    syslog: string[];
  };
}

export interface NtlsReport {
  expiringWithinDays: number;
  pairs: PairReport[];
  problems: string[];
}

// ---- Helpers ----

const timeoutOf = (p: Params, fleet: Fleet) => p.timeoutMs ?? fleet.defaults.timeouts.connectMs;
const clientNameOf = (fleet: Fleet, host: string) => {
  const h = getClientHost(fleet, host);
  return h.clientName ?? h.name;
};
const clientCertPath = (fleet: Fleet, host: string) => `${CLIENT_CERT_DIR}/${clientNameOf(fleet, host)}.pem`;
const stagedServerCert = (device: string) => `/tmp/lunafleet-${device}-server.pem`;

/** The client hosts of the job that are assigned to `device`, in fleet order. */
function clientsOf(ctx: { fleet: Fleet; targets: { clientHosts: string[] } }, device: string): string[] {
  return ctx.fleet.clientHosts
    .filter((h) => ctx.targets.clientHosts.includes(h.name) && h.assignments.some((a) => a.device === device))
    .map((h) => h.name);
}

/** The name under which a client registered a device's server (`vtl listServers`), or the fleet's address. */
function serverNameFor(fleet: Fleet, device: string, listed: string[]): { name: string; listed: boolean } {
  const d = getDevice(fleet, device);
  const names = [d.host, d.hostname, d.name].filter((x): x is string => !!x);
  const found = listed.find((s) => names.includes(s));
  return found ? { name: found, listed: true } : { name: d.host, listed: false };
}

/** The pairs this job looks at: every target device with every target client host assigned to it. */
function pairsOf(ctx: { fleet: Fleet; targets: { devices: string[]; clientHosts: string[] } }) {
  return ctx.targets.devices.flatMap((device) => clientsOf(ctx, device).map((host) => ({ device, host })));
}

const cp = <T>(ctx: Ctx, step: string, target: string) => ctx.requireCheckpoint(step, target) as unknown as T;

/** Does this client trust this appliance now? Reads afresh: used before and after a change. */
async function readClientSide(ctx: Ctx, device: string, host: string, serverPem: string) {
  const shell = await ctx.hostShell(host);
  const { servers } = await shell.send("vtl listServers", listServers);
  const trusted = bundleFacts(await ctx.files.hostRead(host, CA_FILE), `${host}:${CA_FILE}`);
  const current = certFacts(serverPem, `${device}:server.pem`);
  const server = serverNameFor(
    ctx.fleet,
    device,
    servers.map((s) => s.host),
  );
  const trusts = trusted.some((t) => t.fingerprint256 === current.fingerprint256);
  return { server, trusts, current, servers: servers.map((s) => s.host), trusted };
}

/** Does this appliance trust this client now? */
async function readApplianceSide(ctx: Ctx, device: string, host: string): Promise<ApplianceClientView> {
  const clientName = clientNameOf(ctx.fleet, host);
  const shell = await ctx.lunash(device);
  try {
    const show = await shell.send(`client show -client ${clientName}`, clientShow);
    const { fingerprint } = await shell.send(`client fingerprint -client ${clientName}`, clientFingerprint);
    return {
      host,
      clientName,
      registered: true,
      hostname: show.hostname,
      partitions: show.partitions,
      fingerprint,
    };
  } catch (err) {
    // The one answer that is a finding, not a failure: the appliance does not know this client.
    if (isDeviceError(err) && /C000040A/i.test(String((err as { code?: string }).code ?? "")))
      return { host, clientName, registered: false, hostname: null, partitions: [], fingerprint: null };
    throw err;
  }
}

function requireRepairable(pair: { device: string; host: string }, why: string): never {
  throw new UnexpectedResult(`${pair.device} / ${pair.host}: ${why}`);
}

/** A change whose reply lacks its documented success line did something unknown: fail closed (the caller re-reads). */
function requireSuccessLine<R extends { command: string; raw: string }>(
  on: string,
  reply: R,
  line: string,
): R {
  const lines = reply.raw.split(/\r?\n/).map((l) => l.trim());
  if (!lines.includes(line))
    throw new UnexpectedResult(
      `${on}: the reply to '${reply.command}' lacks its success line "${line}": its outcome is unknown`,
    );
  return reply;
}

/** The devices whose certificate this job regenerated (their clients must take the new one). */
function regeneratedDevices(ctx: Ctx): Set<string> {
  return new Set(
    ctx.targets.devices.filter(
      (d) => (ctx.checkpoint("regen-cert", d) as { regenerated?: boolean } | undefined)?.regenerated,
    ),
  );
}

/** The pairs to repair as they were before the first change (a resumed job reads the same record). */
const snapshotOf = (ctx: Ctx) => ctx.requireCheckpoint("repair-snapshot") as unknown as RepairSnapshot;

/** The command a failed re-read was sending (typed shell errors carry it). */
const commandOf = (err: unknown) => describeError(err).command ?? "the re-read after the change";

const causeOf = (err: unknown) => {
  const info = describeError(err);
  return `${info.type}: ${info.message}`;
};

/**
 * The client-side repair stopped after its first destructive command: re-read the client (a fresh session; a read
 * only) to say what the pair looks like now, and fail with everything an operator needs.
 */
async function clientRepairInterrupted(
  ctx: Ctx,
  snap: PairSnapshot & { client: NonNullable<PairSnapshot["client"]> },
  progress: RepairProgress,
  err: unknown,
  serverPem: string,
  staged: string,
): Promise<RepairInterrupted> {
  let now: ClientSideNow;
  try {
    const side = await readClientSide(ctx, snap.device, snap.host, serverPem);
    now = { listed: side.server.listed, serverName: side.server.name, trusts: side.trusts };
  } catch (e) {
    now = { error: causeOf(e) };
  }
  const state = clientStateNow(snap, now);
  const command = progress.current ?? commandOf(err);
  return new RepairInterrupted(
    interruptedMessage({
      side: "client",
      snap,
      on: snap.host,
      command,
      reread: progress.current === undefined,
      cause: causeOf(err),
      done: progress.done,
      before: clientBefore(snap),
      now: state.text,
      finish:
        state.state === "repaired"
          ? `nothing left to send on ${snap.host}; the link is verified`
          : `'vtl addServer -n ${snap.client.serverName} -c ${staged}' on ${snap.host} (after 'vtl deleteServer' if the old entry is still there), then the link is verified`,
      jobId: ctx.jobId,
    }),
    snap.device,
    snap.host,
    command,
    isRetryable(err),
    state.state,
  );
}

/** The appliance-side repair stopped after its first destructive command: as above, for the registration. */
async function applianceRepairInterrupted(
  ctx: Ctx,
  snap: PairSnapshot & { appliance: NonNullable<PairSnapshot["appliance"]> },
  progress: RepairProgress,
  err: unknown,
): Promise<RepairInterrupted> {
  let now: ApplianceSideNow;
  try {
    const view = await readApplianceSide(ctx, snap.device, snap.host);
    now = { registered: view.registered, fingerprint: view.fingerprint, partitions: view.partitions };
  } catch (e) {
    now = { error: causeOf(e) };
  }
  const state = applianceStateNow(snap, now);
  const command = progress.current ?? commandOf(err);
  const a = snap.appliance;
  return new RepairInterrupted(
    interruptedMessage({
      side: "appliance",
      snap,
      on: snap.device,
      command,
      reread: progress.current === undefined,
      cause: causeOf(err),
      done: progress.done,
      before: applianceBefore(snap),
      now: state.text,
      finish:
        state.state === "repaired"
          ? `nothing left to send on ${snap.device}; the link is verified`
          : `'${snap.clientName}' registered on ${snap.device} (hostname ${a.registerHostname}) with ${snap.host}'s current certificate ${a.clientFingerprint} and exactly the partitions [${a.restorePartitions.join(", ")}], then the link is verified`,
      jobId: ctx.jobId,
    }),
    snap.device,
    snap.host,
    command,
    isRetryable(err),
    state.state,
  );
}

// ---- The runbook ----

export const ntlsCertSync = defineRunbook({
  name: "ntls-cert-sync",
  description:
    "Per appliance/client pair: NTLS certificates trusted both ways, expiring or expired; repair or regenerate on request",
  params,
  targets(p, fleet) {
    const t = resolveTarget(fleet, p.target, ["fleet", "device", "clientHost"]);
    if (p.regen && t.kind !== "device")
      throw new UnexpectedResult(
        `regen replaces one appliance's certificate and needs one approval for it: target a device, not '${p.target}'`,
      );
    return { devices: t.devices, clientHosts: t.clientHosts };
  },
  verdict: ({ params, result }) => ntlsVerdict(params, result),
  steps: [
    {
      id: "appliance-cert",
      title: (d) => `Fetch server.pem from ${d} and read subject, fingerprint and expiry`,
      kind: "read",
      forEach: "device",
      commands: (_p, _f, d): PlannedCommand[] => [{ via: "sftp", on: d!, command: "get server.pem" }],
      observes: (_p, _f, d) => [{ subject: `device:${d}`, fact: "cert" }],
      facts: (r, { params, fleet }) => {
        const { device, cert } = r as unknown as ApplianceCertResult;
        return [certFact(device, cert, cert.daysLeft <= warnDays(params, fleet))];
      },
      async run(ctx): Promise<ApplianceCertResult> {
        const device = ctx.target!;
        const pem = await ctx.files.applianceGet(device, "server.pem");
        return { device, cert: certFacts(pem, `${device}:server.pem`) };
      },
    },
    {
      id: "client-trust",
      title: (h) => `Read what ${h} trusts (vtl listServers, ${CA_FILE}) and its own client certificate`,
      kind: "read",
      forEach: "clientHost",
      observes: (_p, fleet, h, targets) => pairsOfHost(fleet, h!, targets.devices),
      commands: (_p, fleet, h): PlannedCommand[] => [
        { via: "host", on: h!, command: "vtl listServers" },
        { via: "host", on: h!, command: `cat ${CA_FILE}` },
        { via: "host", on: h!, command: `cat ${clientCertPath(fleet, h!)}` },
      ],
      async run(ctx): Promise<ClientTrustResult> {
        const host = ctx.target!;
        const shell = await ctx.hostShell(host);
        const { servers } = await shell.send("vtl listServers", listServers);
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
    },
    {
      id: "appliance-trust",
      title: (d) => `Read which clients ${d} trusts (client show, client fingerprint)`,
      kind: "read",
      forEach: "device",
      observes: (_p, fleet, d, targets) => pairsOfDevice(fleet, d!, targets.clientHosts),
      commands: (_p, fleet, d) =>
        clientsOf({ fleet, targets: { clientHosts: fleet.clientHosts.map((h) => h.name) } }, d!).flatMap(
          (h) => [
            `client show -client ${clientNameOf(fleet, h)}`,
            `client fingerprint -client ${clientNameOf(fleet, h)}`,
          ],
        ),
      async run(ctx): Promise<ApplianceTrustResult> {
        const device = ctx.target!;
        const clients: ApplianceClientView[] = [];
        for (const host of clientsOf(ctx, device)) clients.push(await readApplianceSide(ctx, device, host));
        return { device, clients };
      },
    },
    {
      id: "handshake",
      title: (d) => `TLS handshake to ${d}'s NTLS port as each of its clients, then its NTLS syslog lines`,
      kind: "read",
      forEach: "device",
      observes: (_p, fleet, d, targets) => pairsOfDevice(fleet, d!, targets.clientHosts),
      commands: (p, fleet, d) => {
        const dev = getDevice(fleet, d!);
        const hosts = clientsOf(
          { fleet, targets: { clientHosts: fleet.clientHosts.map((h) => h.name) } },
          d!,
        );
        return [
          ...hosts.map(
            (h): PlannedCommand => ({
              via: "tls",
              on: `${dev.host}:${dev.ntlsPort}`,
              command: `handshake as client ${clientNameOf(fleet, h)} (timeout ${timeoutOf(p, fleet)} ms)`,
            }),
          ),
          SYSLOG_TAIL,
        ];
      },
      async run(ctx): Promise<HandshakeResult> {
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
          const trust = cp<ClientTrustResult>(ctx, "client-trust", host);
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
        const tail = await shell.send(SYSLOG_TAIL, syslogTail);
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
    },
    {
      id: "report",
      title: "Per appliance/client pair: in sync, expiring, expired or mismatched (which side, evidence)",
      kind: "read",
      observes: (_p, fleet, _t, targets) =>
        targets.devices.flatMap((d) => pairsOfDevice(fleet, d, targets.clientHosts)),
      // Each problem is the pair's: client-a's stale copy of hsm-a1's certificate is hsm-a1 <-> client-a, no one else.
      facts: (r) => trustFacts((r as unknown as NtlsReport).pairs),
      async run(ctx): Promise<NtlsReport> {
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
    },
    {
      id: "regen-cert",
      title: (d) => `Regenerate ${d}'s NTLS server certificate (only with regen=true and an approval)`,
      kind: "change",
      forEach: "device",
      commands: (p) => (p.regen ? ["sysconf regenCert"] : []),
      // The certificate it replaced is seen again, as it is now.
      facts: (r, { params, fleet }) => {
        const x = r as { device?: string; regenerated?: boolean; validTo?: string; fingerprint256?: string };
        if (!x.regenerated || !x.device || !x.validTo || !x.fingerprint256) return [];
        const daysLeft = Math.trunc((Date.parse(x.validTo) - Date.now()) / 86_400_000);
        const cert = { validTo: x.validTo, daysLeft, fingerprint256: x.fingerprint256, subject: "" };
        return [certFact(x.device, cert, daysLeft <= warnDays(params, fleet))];
      },
      async run(ctx): Promise<unknown> {
        const device = ctx.target!;
        if (!ctx.params.regen) return { device, regenerated: false, reason: "regen not requested" };
        const before = cp<ApplianceCertResult>(ctx, "appliance-cert", device).cert;
        // Re-read first: a resumed job must not regenerate twice.
        const now = certFacts(await ctx.files.applianceGet(device, "server.pem"), `${device}:server.pem`);
        if (now.fingerprint256 !== before.fingerprint256)
          return { device, regenerated: true, resumed: true, fingerprint256: now.fingerprint256 };
        const approval = await requireRegenApproval(ctx, device);
        const shell = await ctx.lunash(device);
        await shell.run("sysconf regenCert", { confirm: "proceed" });
        const after = certFacts(await ctx.files.applianceGet(device, "server.pem"), `${device}:server.pem`);
        if (after.fingerprint256 === before.fingerprint256)
          throw new RepairNotVerified(
            `${device}: 'sysconf regenCert' reported success but server.pem did not change`,
          );
        await ctx.evidence.note({
          regenerated: device,
          approval,
          from: before.fingerprint256,
          to: after.fingerprint256,
        });
        return {
          device,
          regenerated: true,
          approval,
          fingerprint256: after.fingerprint256,
          validTo: after.validTo,
        };
      },
    },
    {
      id: "repair-snapshot",
      title:
        "Record every pair to repair as it is now (server entries, registrations, partitions), before any change",
      kind: "read",
      commands: (p, fleet): PlannedCommand[] => {
        if (!p.repair && !p.regen) return [];
        return fleet.clientHosts.flatMap((h) => [
          { via: "host" as const, on: h.name, command: "vtl listServers" },
          { via: "host" as const, on: h.name, command: `cat ${CA_FILE}` },
          { via: "host" as const, on: h.name, command: `cat ${clientCertPath(fleet, h.name)}` },
          ...h.assignments.flatMap((a) => [
            {
              via: "lunash" as const,
              on: a.device,
              command: `client show -client ${clientNameOf(fleet, h.name)}`,
            },
            {
              via: "lunash" as const,
              on: a.device,
              command: `client fingerprint -client ${clientNameOf(fleet, h.name)}`,
            },
          ]),
        ]);
      },
      async run(ctx): Promise<RepairSnapshot> {
        if (!ctx.params.repair && !ctx.params.regen) return { pairs: [], reason: "nothing to repair" };
        const report = ctx.requireCheckpoint("report") as unknown as NtlsReport;
        const regenerated = regeneratedDevices(ctx);
        const pairs: PairSnapshot[] = [];
        for (const pair of report.pairs) {
          const clientWanted =
            regenerated.has(pair.device) || (ctx.params.repair && (pair.mismatch?.client.length ?? 0) > 0);
          const applianceWanted = ctx.params.repair && (pair.mismatch?.appliance.length ?? 0) > 0;
          if (!clientWanted && !applianceWanted) continue;
          const snap: PairSnapshot = {
            device: pair.device,
            host: pair.host,
            clientName: clientNameOf(ctx.fleet, pair.host),
            client: null,
            appliance: null,
          };
          if (clientWanted) {
            const serverPem = await ctx.files.applianceGet(pair.device, "server.pem");
            const side = await readClientSide(ctx, pair.device, pair.host, serverPem);
            if (!side.trusts || !side.server.listed)
              snap.client = {
                serverName: side.server.name,
                listed: side.server.listed,
                servers: side.servers,
                trustedFingerprints: side.trusted
                  .filter((t) => t.subject === side.current.subject)
                  .map((t) => t.fingerprint256),
                serverFingerprint256: side.current.fingerprint256,
              };
          }
          if (applianceWanted) {
            const path = clientCertPath(ctx.fleet, pair.host);
            const cert = certFacts(await ctx.files.hostRead(pair.host, path), `${pair.host}:${path}`);
            const now = await readApplianceSide(ctx, pair.device, pair.host);
            const hostEntry = getClientHost(ctx.fleet, pair.host);
            if (!now.registered || now.fingerprint !== cert.fingerprintMd5)
              snap.appliance = {
                registered: now.registered,
                hostname: now.hostname,
                fingerprint: now.fingerprint,
                partitions: now.partitions,
                registerHostname: now.hostname ?? hostEntry.host ?? hostEntry.name,
                // Exactly the partitions it had; a client the appliance did not know gets the fleet file's.
                restorePartitions: now.registered
                  ? now.partitions
                  : (hostEntry.assignments.find((a) => a.device === pair.device)?.partitions ?? []),
                clientFingerprint: cert.fingerprintMd5,
              };
          }
          if (snap.client || snap.appliance) pairs.push(snap);
        }
        await ctx.evidence.note({ repairSnapshot: pairs });
        return { pairs };
      },
    },
    {
      id: "repair-client-trust",
      title: (h) =>
        `Re-register on ${h} the server certificates it no longer matches (vtl deleteServer/addServer)`,
      kind: "change",
      forEach: "clientHost",
      commands: (p, fleet, h): PlannedCommand[] => {
        if (!p.repair && !p.regen) return [];
        const host = getClientHost(fleet, h!);
        return host.assignments.flatMap((a) => {
          const d = getDevice(fleet, a.device);
          return [
            { via: "sftp" as const, on: d.name, command: "get server.pem" },
            { via: "host" as const, on: h!, command: `write ${stagedServerCert(d.name)}` },
            { via: "host" as const, on: h!, command: `vtl deleteServer -n ${d.host}   (only if listed)` },
            {
              via: "host" as const,
              on: h!,
              command: `vtl addServer -n ${d.host} -c ${stagedServerCert(d.name)}`,
            },
          ];
        });
      },
      async run(ctx): Promise<unknown> {
        const host = ctx.target!;
        if (!ctx.params.repair && !ctx.params.regen)
          return { host, repaired: [], reason: "repair not requested" };
        const repaired: { device: string; server: string; deleted: boolean; resumed?: true }[] = [];
        for (const snap of snapshotOf(ctx).pairs) {
          if (snap.host !== host || !snap.client) continue;
          const was = { ...snap, client: snap.client };
          // Re-read both sides: a resumed job finds its own half-done work here.
          const serverPem = await ctx.files.applianceGet(snap.device, "server.pem");
          const before = await readClientSide(ctx, snap.device, host, serverPem);
          if (before.trusts && before.server.listed) {
            // Done by an earlier attempt of this job (its reply may have been lost): verify it all the same.
            repaired.push({ device: snap.device, server: before.server.name, deleted: false, resumed: true });
            continue;
          }
          if (before.current.expired)
            requireRepairable(
              snap,
              "the appliance's own certificate has expired: regenerate it (regen=true) first",
            );
          // Listed now under its own name, or (resumed after the delete) under the name it had before the repair.
          const server = before.server.listed ? before.server.name : was.client.serverName;
          const staged = stagedServerCert(snap.device);
          // Additive first: the certificate is staged before the entry is deleted, so the gap is two commands.
          await ctx.files.hostWrite(host, staged, serverPem);
          const shell = await ctx.hostShell(host);
          const progress = new RepairProgress();
          try {
            if (before.server.listed)
              await progress.run(`vtl deleteServer -n ${server}`, () =>
                shell.run(`vtl deleteServer -n ${server}`),
              );
            await progress.run(`vtl addServer -n ${server} -c ${staged}`, async () =>
              requireSuccessLine(
                host,
                await shell.run(`vtl addServer -n ${server} -c ${staged}`),
                `New server ${server} successfully added to server list.`,
              ),
            );
            const after = await readClientSide(ctx, snap.device, host, serverPem);
            if (!after.trusts || !after.server.listed)
              throw new RepairNotVerified(
                `${host}: after vtl addServer, ${snap.device}'s current certificate is still not trusted`,
              );
          } catch (err) {
            if (err instanceof RepairNotVerified || !progress.started) throw err;
            throw await clientRepairInterrupted(ctx, was, progress, err, serverPem, staged);
          }
          repaired.push({ device: snap.device, server, deleted: before.server.listed });
        }
        return { host, repaired };
      },
    },
    {
      id: "repair-appliance-trust",
      title: (d) =>
        `Re-register on ${d} the client certificates it no longer matches, keeping their partitions exactly`,
      kind: "change",
      forEach: "device",
      commands: (p, fleet, d): PlannedCommand[] => {
        if (!p.repair) return [];
        const hosts = clientsOf(
          { fleet, targets: { clientHosts: fleet.clientHosts.map((h) => h.name) } },
          d!,
        );
        return hosts.flatMap((h) => {
          const c = clientNameOf(fleet, h);
          return [
            { via: "host" as const, on: h, command: `cat ${clientCertPath(fleet, h)}` },
            { via: "sftp" as const, on: d!, command: `put ${c}.pem` },
            {
              via: "lunash" as const,
              on: d!,
              command: `client delete -client ${c}   (answers 'proceed'; only if registered)`,
            },
            {
              via: "lunash" as const,
              on: d!,
              command: `client register -client ${c} -hostname <registered hostname>`,
            },
            {
              via: "lunash" as const,
              on: d!,
              command: `client assignPartition -client ${c} -partition <each partition it had>`,
            },
          ];
        });
      },
      async run(ctx): Promise<unknown> {
        const device = ctx.target!;
        if (!ctx.params.repair) return { device, repaired: [], reason: "repair not requested" };
        const repaired: { host: string; clientName: string; partitions: string[]; resumed?: true }[] = [];
        for (const snap of snapshotOf(ctx).pairs) {
          if (snap.device !== device || !snap.appliance) continue;
          const was = { ...snap, appliance: snap.appliance };
          const { clientName } = snap;
          const partitions = was.appliance.restorePartitions;
          const hostname = was.appliance.registerHostname;
          // Re-read both sides first (resume-safe): the client's certificate and the appliance's registration.
          const certPem = await ctx.files.hostRead(snap.host, clientCertPath(ctx.fleet, snap.host));
          const cert = certFacts(certPem, `${snap.host}:${clientCertPath(ctx.fleet, snap.host)}`);
          if (cert.fingerprintMd5 !== was.appliance.clientFingerprint)
            requireRepairable(
              snap,
              `${snap.host}'s certificate changed since the repair started (${was.appliance.clientFingerprint} then, ${cert.fingerprintMd5} now): run the check again`,
            );
          const now = await readApplianceSide(ctx, device, snap.host);
          if (
            now.registered &&
            now.fingerprint === cert.fingerprintMd5 &&
            sameSet(now.partitions, partitions)
          ) {
            // Done by an earlier attempt of this job (its last reply may have been lost): verify it all the same.
            repaired.push({ host: snap.host, clientName, partitions: now.partitions, resumed: true });
            continue;
          }
          const shell = await ctx.lunash(device);
          // Additive first: the certificate is uploaded before the old registration is deleted.
          await ctx.files.appliancePut(device, `${clientName}.pem`, certPem);
          const progress = new RepairProgress();
          // A change counts as answered only with the success line reference §8.4 documents for it, where it does
          // (`client delete` has none captured): a reply whose body is unreadable is an unknown outcome.
          const send = (command: string, opts?: { confirm: "proceed" }) =>
            progress.run(command, async () => {
              const reply = await shell.run(command, opts);
              const verb = /^client (register|assignPartition)\b/.exec(command)?.[1];
              return verb ? requireSuccessLine(device, reply, `'client ${verb}' successful.`) : reply;
            });
          let after: ApplianceClientView;
          try {
            if (now.registered && now.fingerprint !== cert.fingerprintMd5)
              await send(`client delete -client ${clientName}`, { confirm: "proceed" });
            if (!now.registered || now.fingerprint !== cert.fingerprintMd5)
              await send(`client register -client ${clientName} -hostname ${hostname}`);
            const current = await readApplianceSide(ctx, device, snap.host);
            for (const partition of partitions)
              if (!current.partitions.includes(partition))
                await send(`client assignPartition -client ${clientName} -partition ${partition}`);
            after = await readApplianceSide(ctx, device, snap.host);
          } catch (err) {
            if (!progress.started) throw err;
            throw await applianceRepairInterrupted(ctx, was, progress, err);
          }
          if (
            !after.registered ||
            after.fingerprint !== cert.fingerprintMd5 ||
            !sameSet(after.partitions, partitions)
          )
            throw new RepairNotVerified(
              `${device}: after re-registering ${clientName}, the registration is ${after.registered ? `fingerprint ${after.fingerprint} with partitions [${after.partitions.join(", ")}]` : "absent"} (expected [${partitions.join(", ")}])`,
            );
          repaired.push({ host: snap.host, clientName, partitions: after.partitions });
        }
        return { device, repaired };
      },
    },
    {
      id: "verify",
      title:
        "Verify every repaired pair: handshake as the client, the trusted certificate presented, vtl verify",
      kind: "read",
      commands: (p, fleet) => {
        if (!p.repair && !p.regen) return [];
        return fleet.clientHosts.map((h) => ({ via: "host" as const, on: h.name, command: "vtl verify" }));
      },
      // A repair re-observes what it repaired: each verified pair, and the client's vtl verify that passed.
      facts: (r) => {
        const verified =
          (r as { verified?: { device: string; host: string; vtlVerify: { ok: boolean } }[] }).verified ?? [];
        const hosts = [...new Set(verified.filter((v) => v.vtlVerify.ok).map((v) => v.host))];
        return [
          ...verified.flatMap((v) => repairedPairFacts(v.device, v.host)),
          ...hosts.map((h) => ({
            subject: `client:${h}`,
            fact: "vtl-verify",
            status: "ok" as const,
            summary: "verified after repair",
          })),
        ];
      },
      async run(ctx): Promise<unknown> {
        if (!ctx.params.repair && !ctx.params.regen) return { verified: [], reason: "nothing was changed" };
        const changed = new Set<string>();
        for (const h of ctx.targets.clientHosts)
          for (const r of (
            ctx.checkpoint("repair-client-trust", h) as { repaired?: { device: string }[] } | undefined
          )?.repaired ?? [])
            changed.add(`${r.device} ${h}`);
        for (const d of ctx.targets.devices)
          for (const r of (
            ctx.checkpoint("repair-appliance-trust", d) as { repaired?: { host: string }[] } | undefined
          )?.repaired ?? [])
            changed.add(`${d} ${r.host}`);
        const verified: unknown[] = [];
        const timeoutMs = timeoutOf(ctx.params, ctx.fleet);
        const vtlByHost = new Map<string, { ok: boolean; serials: string[]; error: string | null }>();
        for (const key of [...changed].sort()) {
          const [device, host] = key.split(" ") as [string, string];
          const certPem = await ctx.files.hostRead(host, clientCertPath(ctx.fleet, host));
          const serverPem = await ctx.files.applianceGet(device, "server.pem");
          const side = await readClientSide(ctx, device, host, serverPem);
          const hs = await ctx.tcp.tlsAsClient(device, host, { clientCertPem: certPem, timeoutMs });
          let vtl = vtlByHost.get(host);
          if (!vtl) {
            const shell = await ctx.hostShell(host);
            try {
              const { slots } = await shell.send("vtl verify", vtlVerify);
              vtl = { ok: true, serials: slots.map((s) => s.serial), error: null };
            } catch (err) {
              if (!isDeviceError(err)) throw err;
              vtl = { ok: false, serials: [], error: err.message };
            }
            vtlByHost.set(host, vtl);
          }
          const dev = getDevice(ctx.fleet, device);
          const assigned =
            getClientHost(ctx.fleet, host).assignments.find((a) => a.device === device)?.partitions ?? [];
          const serials = dev.partitions.filter((p) => assigned.includes(p.label)).map((p) => p.serial);
          const vtlOk = vtl.ok
            ? serials.every((s) => vtl.serials.includes(s))
            : !(vtl.error ?? "").includes(side.server.name);
          const presentedTrusted = hs.cert?.fingerprint256 === side.current.fingerprint256 && side.trusts;
          const result = {
            device,
            host,
            handshakeOk: hs.handshakeOk,
            presentedTrusted,
            vtlVerify: { ok: vtl.ok, seesPartitions: vtlOk, error: vtl.error },
          };
          verified.push(result);
          if (!hs.handshakeOk || !presentedTrusted || !vtlOk)
            throw new RepairNotVerified(
              `${device} / ${host}: after the repair the link does not verify (handshake ${hs.handshakeOk ? "ok" : `failed: ${hs.error}`}, presented certificate ${presentedTrusted ? "trusted" : "not trusted"}, vtl verify ${vtlOk ? "ok" : "does not list the partitions"})`,
            );
        }
        return { verified };
      },
    },
  ],
});

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

function sameSet(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}

async function requireRegenApproval(ctx: Ctx, device: string): Promise<unknown> {
  const dev = getDevice(ctx.fleet, device);
  let approvals: Ctx["approvals"] | undefined;
  try {
    approvals = ctx.approvals;
  } catch {
    approvals = undefined;
  }
  if (approvals) {
    // Waits in awaiting-approval (holding only this appliance's lock) until approved; rejected or expired fails.
    const state = await approvals.waitFor(
      {
        action: `regenerate ${device}'s NTLS server certificate (sysconf regenCert), then re-register it with every client of ${device}`,
        device,
        serial: dev.serial,
        required: ctx.fleet.approvals.required,
        expiresMinutes: ctx.fleet.approvals.expiresMinutes,
        principals: ctx.fleet.approvals.principals,
      },
      { keepDevices: [device] },
    );
    return { via: "approvals", principals: state.approvals.map((a) => a.principal) };
  }
  // Hook until every engine has an approvals store: the operator names who approved; recorded as evidence.
  if (ctx.params.approvedBy.length === 0)
    throw new RegenNotApproved(
      `${device}: 'sysconf regenCert' needs an approval: no approvals store is wired and no approvedBy principal was given`,
      false,
    );
  return { via: "approvedBy parameter", principals: ctx.params.approvedBy };
}

/**
 * Pairs not in sync that this job did not repair and verify are findings; a repair (or regen) that found nothing to
 * repair had nothing to do.
 */
function ntlsVerdict(p: Params, result: (id: string, target?: string) => unknown): Verdict {
  const report = result("report") as NtlsReport;
  const verified =
    (result("verify") as { verified?: { device: string; host: string }[] } | undefined)?.verified ?? [];
  const fixed = new Set(verified.map((v) => `${v.device} ${v.host}`));
  const open = report.pairs.filter(
    (pair) => pair.status !== "in-sync" && !fixed.has(`${pair.device} ${pair.host}`),
  );
  const findings = open.map(
    (pair) =>
      `${pair.device} <-> ${pair.host}: ${pair.status}` +
      (pair.mismatch
        ? ` (${[...pair.mismatch.client, ...pair.mismatch.appliance].join("; ")})`
        : pair.status === "in-sync"
          ? ""
          : ` (${pair.daysLeft} day(s) left)`),
  );
  if ((p.repair || p.regen) && fixed.size === 0 && findings.length === 0)
    return { outcome: "nothing-to-do", findings: [] };
  return findingsVerdict(findings);
}

const warnDays = (p: Params, fleet: Fleet) => p.expiringWithinDays ?? fleet.defaults.certExpiryWarnDays;

/** Put the reads together: one verdict per pair, with the evidence that decided it. */
function buildReport(ctx: Ctx): NtlsReport {
  const within = ctx.params.expiringWithinDays ?? ctx.fleet.defaults.certExpiryWarnDays;
  const problems: string[] = [];
  const pairs = pairsOf(ctx).map(({ device, host }): PairReport => {
    const app = cp<ApplianceCertResult>(ctx, "appliance-cert", device).cert;
    const trust = cp<ClientTrustResult>(ctx, "client-trust", host);
    const view = cp<ApplianceTrustResult>(ctx, "appliance-trust", device).clients.find(
      (c) => c.host === host,
    );
    const hs = cp<HandshakeResult>(ctx, "handshake", device).handshakes.find((h) => h.host === host);
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
