// ntls-cert-sync's vocabulary: its parameters, the results its steps checkpoint, where the certificates live, and the
// reads both the diagnosis and the repair use (what a client host trusts, what an appliance has registered).
import { z } from "zod";
import { parsers } from "../../parsers/index.ts";
import { getClientHost, getDevice } from "../../src/config/model.ts";
import type { Fleet } from "../../src/config/schema.ts";
import { EngineError } from "../../src/engine/errors.ts";
import type { JobTargets, PlannedCommand } from "../../src/engine/runbook.ts";
import type { StepContext } from "../../src/engine/step-context.ts";
import { bundleFacts, type CertFacts, certFacts } from "../lib/certs.ts";

export const SERVER_CERT_DIR = "/usr/safenet/lunaclient/cert/server";
export const CLIENT_CERT_DIR = "/usr/safenet/lunaclient/cert/client";
export const CA_FILE = `${SERVER_CERT_DIR}/CAFile.pem`;
export const SYSLOG_TAIL = "syslog tail -logname messages -entries 200 -search NTLS";

export const params = z
  .object({
    /** A device, a client host, or `fleet`. */
    target: z.string().min(1).default("fleet"),
    /** Report certificates expiring within this many days; default: the fleet's certExpiryWarnDays. */
    expiringWithinDays: z.number().int().min(0).max(3650).optional(),
    /** Re-register mismatched certificates on both sides. */
    repair: z.boolean().default(false),
    /** Regenerate the target appliance's own certificate (`sysconf regenCert`): needs an approval. */
    regen: z.boolean().default(false),
    /** Handshake timeout per probe; default: the fleet's connect timeout. */
    timeoutMs: z.number().int().positive().max(120_000).optional(),
  })
  .strict();
export type Params = z.output<typeof params>;
export type Ctx = StepContext<Params>;

/** A repair ran, and the link it repaired does not verify: stop and say which. */
export class RepairNotVerified extends EngineError {
  override name = "RepairNotVerified";
}

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

// ---- Names and places ----

export const warnDays = (p: Params, fleet: Fleet) =>
  p.expiringWithinDays ?? fleet.defaults.certExpiryWarnDays;
export const timeoutOf = (p: Params, fleet: Fleet) => p.timeoutMs ?? fleet.defaults.timeouts.connectMs;
export const clientNameOf = (fleet: Fleet, host: string) => {
  const h = getClientHost(fleet, host);
  return h.clientName ?? h.name;
};
export const clientCertPath = (fleet: Fleet, host: string) =>
  `${CLIENT_CERT_DIR}/${clientNameOf(fleet, host)}.pem`;
export const stagedServerCert = (device: string) => `/tmp/lunafleet-${device}-server.pem`;

/** The client hosts of the job that are assigned to `device`, in fleet order. */
export function clientsOf(
  ctx: { fleet: Fleet; targets: { clientHosts: string[] } },
  device: string,
): string[] {
  return ctx.fleet.clientHosts
    .filter((h) => ctx.targets.clientHosts.includes(h.name) && h.assignments.some((a) => a.device === device))
    .map((h) => h.name);
}

/** The name under which a client registered a device's server (`vtl listServers`), or the fleet's address. */
export function serverNameFor(
  fleet: Fleet,
  device: string,
  listed: string[],
): { name: string; listed: boolean } {
  const d = getDevice(fleet, device);
  const names = [d.host, d.hostname, d.name].filter((x): x is string => !!x);
  const found = listed.find((s) => names.includes(s));
  return found ? { name: found, listed: true } : { name: d.host, listed: false };
}

/** The pairs this job looks at: every target device with every target client host assigned to it. */
export function pairsOf(ctx: { fleet: Fleet; targets: { devices: string[]; clientHosts: string[] } }) {
  return ctx.targets.devices.flatMap((device) => clientsOf(ctx, device).map((host) => ({ device, host })));
}

export function sameSet(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}

// ---- Reads (used before and after every change) ----

/** Does this client trust this appliance now? Reads afresh. */
export async function readClientSide(ctx: Ctx, device: string, host: string, serverPem: string) {
  const shell = await ctx.hostShell(host);
  const { servers } = await shell.send("vtl listServers", parsers.vtlListServers);
  const trusted = bundleFacts(await ctx.files.hostRead(host, CA_FILE), `${host}:${CA_FILE}`);
  const current = certFacts(serverPem, `${device}:server.pem`);
  const listed = servers.map((s) => s.host);
  const server = serverNameFor(ctx.fleet, device, listed);
  const trusts = trusted.some((t) => t.fingerprint256 === current.fingerprint256);
  return { server, trusts, current, servers: listed, trusted };
}

/** The appliance's code for "no such client" (reference §1.4): a finding, not a failure. */
const OBJECT_NOT_IN_LIST = "C000040A";

/** Does this appliance trust this client now? */
export async function readApplianceSide(
  ctx: Ctx,
  device: string,
  host: string,
): Promise<ApplianceClientView> {
  const clientName = clientNameOf(ctx.fleet, host);
  const shell = await ctx.lunash(device);
  const show = await shell.attempt(`client show -client ${clientName}`, parsers.clientShow);
  if (!show.ok) {
    // The one answer that is a finding, not a failure: the appliance does not know this client.
    if (show.error.code.toUpperCase() === OBJECT_NOT_IN_LIST)
      return { host, clientName, registered: false, hostname: null, partitions: [], fingerprint: null };
    throw show.error;
  }
  const { fingerprint } = await shell.send(
    `client fingerprint -client ${clientName}`,
    parsers.clientFingerprint,
  );
  return {
    host,
    clientName,
    registered: true,
    hostname: show.value.hostname,
    partitions: show.value.partitions,
    fingerprint,
  };
}

// ---- What the reads send, for the plan (plan = run: each step lists exactly what its code paths may send) ----

/** readClientSide() on `host`. */
export const planClientSide = (host: string): PlannedCommand[] => [
  { via: "host", on: host, command: "vtl listServers" },
  { via: "host", on: host, command: `cat ${CA_FILE}` },
];

/** readApplianceSide() of `host`'s registration on `device`. */
export const planApplianceSide = (fleet: Fleet, device: string, host: string): PlannedCommand[] => [
  { via: "lunash", on: device, command: `client show -client ${clientNameOf(fleet, host)}` },
  {
    via: "lunash",
    on: device,
    command: `client fingerprint -client ${clientNameOf(fleet, host)}   (if registered)`,
  },
];

/** The job's pairs as the plan sees them (the same as the run: its locked devices and client hosts). */
export const plannedPairs = (fleet: Fleet, targets: JobTargets) => pairsOf({ fleet, targets });
