// What one simulated client host holds: its own NTLS client certificate, the server certificates it trusts, its HA
// groups and HA settings, a few files, and the log of every command it received. Plus the rule that decides whether
// the client can reach a partition over NTLS, which every lunacm/vtl command consults.
import { X509Certificate } from "node:crypto";
import type { ClientHost, Fleet } from "../../config/schema.ts";
import type { ApplianceState, PartitionState, RegisteredClient } from "../state.ts";

export interface HaMemberState {
  device: string;
  /** Partition label on `device`. */
  partition: string;
  serial: string;
  down: boolean;
  /** Fault injection: this member has a persistent fault, `hagroup recover` leaves it down. */
  recoverFails: boolean;
}

export interface HaGroupState {
  label: string;
  /** `1` + the first member's serial, as Luna numbers HA groups. */
  serial: string;
  members: HaMemberState[];
  standby: string[];
}

export interface HaSettings {
  /** `hagroup retry -count`: 0 = no auto-recovery (Luna default), -1 = unlimited, max 500. */
  retryCount: number;
  /** `hagroup interval -interval`: 60..1200 seconds (Luna default 60). */
  intervalSeconds: number;
}

export interface ClientCommandLogEntry {
  at: number;
  session: number;
  user: string;
  /** Which interpreter received it: the host's shell prompt or an interactive `lunacm:>` prompt. */
  shell: "host" | "lunacm";
  /** The command line with every password value replaced by [REDACTED]. */
  command: string;
}

/** Why the client cannot use an appliance over NTLS (what `vtl verify` and HA recovery report). */
export type LinkFault =
  | "no-appliance"
  | "powered-off"
  | "ntls-down"
  | "server-cert-untrusted"
  | "server-cert-expired"
  | "client-not-registered"
  | "client-cert-rejected";

export const LINK_FAULT_TEXT: Record<LinkFault, string> = {
  "no-appliance": "no such server",
  "powered-off": "connection timed out",
  "ntls-down": "connection refused",
  "server-cert-untrusted":
    "server certificate verification failed (certificate does not match the trusted copy)",
  "server-cert-expired": "server certificate has expired",
  "client-not-registered": "the server rejected the connection (client not registered)",
  "client-cert-rejected": "the server rejected the client certificate",
};

/** A slot a lunacm session can address: a partition on an appliance (Net Token Slot) or an HA group. */
export type SlotTarget =
  | { kind: "partition"; id: number; device: string; appliance: ApplianceState; partition: PartitionState }
  | { kind: "ha"; id: number; group: HaGroupState };

export const CLIENT_CERT_DIR = "/usr/safenet/lunaclient/cert/client";
export const SERVER_CERT_DIR = "/usr/safenet/lunaclient/cert/server";

export class ClientHostModel {
  readonly name: string;
  readonly clientName: string;
  readonly version: string;
  certPem: string;
  readonly keyPem: string;
  /** Trusted server certificate per fleet device (what `vtl addServer` stored). Insertion order = server order. */
  readonly serverCerts = new Map<string, string>();
  /** The host name each trusted device was registered under (`vtl addServer -n <host>`). */
  readonly serverHosts = new Map<string, string>();
  /** Servers registered under a host name that is no fleet device (kept so listServers stays truthful). */
  readonly otherServers = new Map<string, string>();
  readonly haGroups: HaGroupState[] = [];
  readonly haSettings: HaSettings;
  readonly commandLog: ClientCommandLogEntry[] = [];
  /** Plain files the runbooks stage (e.g. a fetched server.pem under /tmp). */
  readonly files = new Map<string, string>();

  constructor(
    readonly fleet: Fleet,
    readonly host: ClientHost,
    readonly appliances: Map<string, ApplianceState>,
    cert: { certPem: string; keyPem: string },
  ) {
    this.name = host.name;
    this.clientName = host.clientName ?? host.name;
    this.version = host.sim?.lunacmVersion ?? "10.7.2-16";
    this.certPem = cert.certPem;
    this.keyPem = cert.keyPem;
    this.haSettings = {
      retryCount: host.sim?.haRetryCount ?? 0,
      intervalSeconds: host.sim?.haRetryIntervalSeconds ?? 60,
    };
  }

  get clientCertPath(): string {
    return `${CLIENT_CERT_DIR}/${this.clientName}.pem`;
  }

  get clientKeyPath(): string {
    return `${CLIENT_CERT_DIR}/${this.clientName}Key.pem`;
  }

  /** The fleet device a `vtl -n <host>` name designates: its address, fleet name, or appliance hostname. */
  deviceForHost(hostName: string): string | undefined {
    for (const [device, host] of this.serverHosts) if (host === hostName) return device;
    const dev = this.fleet.devices.find(
      (d) =>
        d.host === hostName ||
        d.name === hostName ||
        d.hostname === hostName ||
        this.appliances.get(d.name)?.hostname === hostName,
    );
    return dev?.name;
  }

  /** Registered servers in order: host name, fleet device (if any), trusted certificate. */
  servers(): { host: string; device?: string; certPem: string }[] {
    const out: { host: string; device?: string; certPem: string }[] = [];
    for (const [device, certPem] of this.serverCerts)
      out.push({ host: this.serverHosts.get(device) ?? device, device, certPem });
    for (const [host, certPem] of this.otherServers) out.push({ host, certPem });
    return out;
  }

  /** This client's registration on an appliance (by client name), if the appliance knows it. */
  registrationOn(appliance: ApplianceState): RegisteredClient | undefined {
    return appliance.clients.get(this.clientName);
  }

  /**
   * Whether an NTLS connection from this client to `device` would succeed, as a real client finds out: the appliance
   * answers (power, NTLS listening), presents a certificate the client trusts and that has not expired, and accepts
   * the client's certificate.
   */
  linkTo(
    device: string,
    now = Date.now(),
  ): { ok: true; appliance: ApplianceState } | { ok: false; fault: LinkFault } {
    const appliance = this.appliances.get(device);
    if (!appliance) return { ok: false, fault: "no-appliance" };
    if (appliance.power !== "on") return { ok: false, fault: "powered-off" };
    if (!appliance.ntls.listening) return { ok: false, fault: "ntls-down" };
    const trusted = this.serverCerts.get(device);
    if (trusted === undefined || !samePem(trusted, appliance.ntls.certPem))
      return { ok: false, fault: "server-cert-untrusted" };
    if (appliance.ntls.notAfter.getTime() <= now) return { ok: false, fault: "server-cert-expired" };
    const reg = this.registrationOn(appliance);
    if (!reg) return { ok: false, fault: "client-not-registered" };
    if (!samePem(reg.certPem, this.certPem)) return { ok: false, fault: "client-cert-rejected" };
    return { ok: true, appliance };
  }

  /**
   * The slots a lunacm session sees now: one Net Token Slot per partition assigned to this client on every
   * reachable registered server (in server order), then one HA Virtual Card Slot per HA group.
   */
  slots(): SlotTarget[] {
    const slots: SlotTarget[] = [];
    for (const device of this.serverCerts.keys()) {
      const link = this.linkTo(device);
      if (!link.ok) continue;
      const reg = this.registrationOn(link.appliance);
      for (const partition of link.appliance.partitions) {
        if (!reg?.partitions.includes(partition.label)) continue;
        slots.push({ kind: "partition", id: slots.length, device, appliance: link.appliance, partition });
      }
    }
    for (const group of this.haGroups) slots.push({ kind: "ha", id: slots.length, group });
    return slots;
  }

  /** The partition state behind an HA member, when its appliance still has the partition. */
  memberPartition(
    member: HaMemberState,
  ): { appliance: ApplianceState; partition: PartitionState } | undefined {
    const appliance = this.appliances.get(member.device);
    const partition = appliance?.partitions.find((p) => p.label === member.partition);
    return appliance && partition ? { appliance, partition } : undefined;
  }

  /** The physical slot a member occupies right now, if its partition is visible. */
  memberSlot(member: HaMemberState, slots = this.slots()): number | undefined {
    const slot = slots.find(
      (s) => s.kind === "partition" && s.device === member.device && s.partition.label === member.partition,
    );
    return slot?.id;
  }

  /**
   * A member whose appliance the client can no longer reach fails out of its group, and stays down (Luna does not
   * bring it back on its own while auto-recovery is off) until `hagroup recover`.
   */
  noticeFailedMembers(): void {
    const slots = this.slots();
    for (const group of this.haGroups)
      for (const member of group.members)
        if (!member.down && this.memberSlot(member, slots) === undefined) member.down = true;
  }

  setMemberDown(device: string, partition: string, down: boolean): void {
    const members = this.membersOf(device, partition);
    if (members.length === 0)
      throw new Error(`client host ${this.name} has no HA member ${device}/${partition}`);
    for (const m of members) m.down = down;
  }

  setMemberRecoverFails(device: string, partition: string, fails: boolean): void {
    const members = this.membersOf(device, partition);
    if (members.length === 0)
      throw new Error(`client host ${this.name} has no HA member ${device}/${partition}`);
    for (const m of members) m.recoverFails = fails;
  }

  private membersOf(device: string, partition: string): HaMemberState[] {
    return this.haGroups.flatMap((g) =>
      g.members.filter((m) => m.device === device && m.partition === partition),
    );
  }
}

/** Two PEM texts name the same certificate (compared by DER, so line wrapping and trailing newlines do not matter). */
export function samePem(a: string, b: string): boolean {
  if (a === b) return a.length > 0;
  const da = pemDer(a);
  const db = pemDer(b);
  return da !== undefined && db !== undefined && da === db;
}

function pemDer(pem: string): string | undefined {
  const m = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/.exec(pem);
  return m ? m[1]!.replace(/\s+/g, "") : undefined;
}

/** A parsed certificate, or undefined when the text is not one PEM certificate. */
export function parseCertificate(pem: string): X509Certificate | undefined {
  try {
    return new X509Certificate(pem);
  } catch {
    return undefined;
  }
}
