// A simulated Luna client host: what the twin's SSH server for a client host serves. Built from the fleet file's
// client host entry and the appliance states it talks to; holds its own NTLS client certificate, the server
// certificates it trusts (a stale copy where the fleet file plants one), its HA groups, and the log of every command.
import type { ClientHost, Fleet } from "../../config/schema.ts";
import { generateSelfSignedCert } from "../certs.ts";
import type { InteractiveShell, ShellHost, ShellIO } from "../shell-session.ts";
import type { ApplianceState } from "../state.ts";
import { readFile, writeFile } from "./files.ts";
import { ClientHostShell, execHostCommand } from "./host-shell.ts";
import {
  type ClientCommandLogEntry,
  ClientHostModel,
  type HaGroupState,
  type HaMemberState,
  type HaSettings,
  type LinkFault,
} from "./model.ts";

export type { ClientCommandLogEntry, HaGroupState, HaMemberState, HaSettings, LinkFault };

const DAY_MS = 24 * 60 * 60 * 1000;

export interface ClientHostTwin extends ShellHost {
  readonly name: string;
  /** The client's own NTLS client certificate (CN = clientName ?? name) and key. */
  readonly certPem: string;
  readonly keyPem: string;
  /** What the client trusts for each appliance (fleet device name -> server certificate PEM). Live: vtl edits it. */
  readonly serverCerts: Map<string, string>;
  /** HA groups as lunacm sees them (live state). */
  readonly haGroups: HaGroupState[];
  /** `hagroup retry` / `hagroup interval` settings (live state). */
  readonly haSettings: HaSettings;
  /** Every command line received, passwords redacted. */
  readonly commandLog: ClientCommandLogEntry[];
  /** Fault injection: mark an HA member down (or alive) in every group of this host that has it. */
  setMemberDown(device: string, partition: string, down: boolean): void;
  /** Fault injection: a member with a persistent fault stays down through `hagroup recover`. */
  setMemberRecoverFails(device: string, partition: string, fails: boolean): void;
  /** Whether an NTLS connection to `device` would succeed now, or why not. */
  linkTo(device: string): { ok: true } | { ok: false; fault: LinkFault };
  /** File access for a carrier that offers scp/sftp (same rules as the shell: keys unreadable, few writable dirs). */
  readFile(path: string): { ok: true; text: string } | { ok: false; error: string };
  writeFile(path: string, text: string, user?: string): { ok: true } | { ok: false; error: string };
}

class ClientHostTwinImpl implements ClientHostTwin {
  constructor(private readonly model: ClientHostModel) {}

  get name(): string {
    return this.model.name;
  }
  get certPem(): string {
    return this.model.certPem;
  }
  get keyPem(): string {
    return this.model.keyPem;
  }
  get serverCerts(): Map<string, string> {
    return this.model.serverCerts;
  }
  get haGroups(): HaGroupState[] {
    return this.model.haGroups;
  }
  get haSettings(): HaSettings {
    return this.model.haSettings;
  }
  get commandLog(): ClientCommandLogEntry[] {
    return this.model.commandLog;
  }

  openShell(io: ShellIO, ctx: { user: string; session: number; pty: boolean }): InteractiveShell {
    return new ClientHostShell(this.model, io, ctx);
  }

  exec(command: string, io: ShellIO, ctx: { user: string; session: number }): void {
    execHostCommand(this.model, command, io, ctx);
  }

  setMemberDown(device: string, partition: string, down: boolean): void {
    this.model.setMemberDown(device, partition, down);
  }

  setMemberRecoverFails(device: string, partition: string, fails: boolean): void {
    this.model.setMemberRecoverFails(device, partition, fails);
  }

  linkTo(device: string): { ok: true } | { ok: false; fault: LinkFault } {
    const link = this.model.linkTo(device);
    return link.ok ? { ok: true } : link;
  }

  readFile(path: string) {
    return readFile(this.model, path);
  }

  writeFile(path: string, text: string, user = "root"): { ok: true } | { ok: false; error: string } {
    const r = writeFile(this.model, path, text, user);
    return r.ok ? { ok: true } : r;
  }
}

/**
 * Build the twin of one client host. `appliances` must hold the state of every device the host is assigned to.
 * The client registers itself (client name, certificate, assigned partitions) on each assigned appliance that does
 * not know it yet, which is the state a finished `clientconfig deploy` leaves behind.
 */
export async function createClientHostTwin(
  fleet: Fleet,
  host: ClientHost,
  appliances: Map<string, ApplianceState>,
): Promise<ClientHostTwin> {
  const clientName = host.clientName ?? host.name;
  const own = await generateSelfSignedCert({ commonName: clientName, validDays: 365 });
  const model = new ClientHostModel(fleet, host, appliances, own);
  const stale = new Set(host.sim?.staleServerCerts ?? []);

  for (const assignment of host.assignments) {
    const appliance = appliances.get(assignment.device);
    if (!appliance)
      throw new Error(
        `client host ${host.name}: no appliance state for assigned device '${assignment.device}'`,
      );
    const device = fleet.devices.find((d) => d.name === assignment.device);
    let trusted = appliance.ntls.certPem;
    if (stale.has(assignment.device)) {
      // The copy the client took before the appliance regenerated its certificate: older, expired, different.
      const old = await generateSelfSignedCert({
        commonName: appliance.hostname,
        notBefore: new Date(Date.now() - 400 * DAY_MS),
        validDays: 365,
      });
      trusted = old.certPem;
    }
    model.serverCerts.set(assignment.device, trusted);
    model.serverHosts.set(assignment.device, device?.host ?? assignment.device);
    const registered = appliance.clients.get(clientName);
    if (!registered)
      appliance.clients.set(clientName, {
        name: clientName,
        hostname: host.host ?? host.name,
        certPem: own.certPem,
        partitions: [...assignment.partitions],
      });
    else if (registered.certPem === "") registered.certPem = own.certPem;
  }

  const down = new Set(host.sim?.membersDown ?? []);
  const seenDown = new Set<string>();
  for (const group of fleet.haGroups.filter((g) => g.clientHost === host.name)) {
    const members: HaMemberState[] = group.members.map((m) => {
      const key = `${m.device}/${m.partition}`;
      if (down.has(key)) seenDown.add(key);
      const serial =
        appliances.get(m.device)?.partitions.find((p) => p.label === m.partition)?.serial ??
        fleet.devices.find((d) => d.name === m.device)?.partitions.find((p) => p.label === m.partition)
          ?.serial;
      if (serial === undefined)
        throw new Error(`client host ${host.name}: HA member ${key} has no known serial`);
      return { device: m.device, partition: m.partition, serial, down: down.has(key), recoverFails: false };
    });
    model.haGroups.push({ label: group.label, serial: `1${members[0]!.serial}`, members, standby: [] });
  }
  for (const key of down)
    if (!seenDown.has(key))
      throw new Error(
        `client host ${host.name}: sim.membersDown names '${key}', which is in none of its HA groups`,
      );

  return new ClientHostTwinImpl(model);
}
