// The fleet launcher: starts one simulated appliance (lunash over SSH + NTLS on 1792) per fleet device and one
// simulated client host (lunacm/vtl over SSH) per client host, each on its own loopback address, and hands back a
// copy of the fleet that points at them (real addresses, ports and host-key fingerprints), plus the controls that
// tests, the benchmark and `lunafleet sim` use: faults, power cycles, session logs.
import ssh2 from "ssh2";
import {
  type ClientHost,
  clientHostSecret,
  type Device,
  deviceSecret,
  type Fleet,
  registerSecretValue,
  type Secret,
} from "../config/index.ts";
import { createApplianceState } from "./appliance/factory.ts";
import { LunashHost } from "./appliance/lunash.ts";
import { powerCycle as powerCycleState } from "./appliance/power.ts";
import { ApplianceServer } from "./appliance/server.ts";
import { type ArmTwin, startArmTwin } from "./arm/index.ts";
import { generateSelfSignedCert } from "./certs.ts";
import { type ClientHostTwin, createClientHostTwin } from "./client/index.ts";
import { allocateLoopbackBlock, isAddressInUse, type LoopbackBlock } from "./loopback.ts";
import { fleetHasKeyVault, type KeyVaultTwin, startKeyVaultTwin } from "./mhsm/index.ts";
import { type CarrierFaults, loadOrCreateHostKey, type SessionRecord, TwinSshServer } from "./ssh-server.ts";
import type { ApplianceState } from "./state.ts";

export interface StartTwinOptions {
  /** Move every machine to a random free 127.A.B.0/24 block (tests, benchmark) instead of the fleet's addresses. */
  rebase?: boolean;
  /** Keep host keys here (`<name>.ed25519`) so a restarted twin keeps its identities; default: fresh keys. */
  hostKeyDir?: string;
  log?: (line: string) => void;
}

export interface TwinAppliance {
  name: string;
  address: string;
  sshPort: number;
  ntlsPort: number;
  user: string;
  hostKeyFingerprint: string;
  state: ApplianceState;
  server: ApplianceServer;
}

export interface TwinClientHost {
  name: string;
  address: string;
  sshPort: number;
  user: string;
  hostKeyFingerprint: string;
  host: ClientHostTwin;
  server: TwinSshServer;
  /** Carrier faults of this host's SSH sessions (slow / drop / garble). */
  faults: CarrierFaults;
}

export interface TwinCredentials {
  address: string;
  port: number;
  user: string;
  password: Secret | undefined;
  hostKeyFingerprint: string;
}

export const FAULTS = [
  "slow",
  "drop",
  "garble",
  "expire-cert",
  "regen-cert",
  "member-down",
  "close-ntls",
  "hang-reboot",
  "power-cycle",
  "hold",
] as const;
export type FaultName = (typeof FAULTS)[number];

export function isFaultName(s: string): s is FaultName {
  return (FAULTS as readonly string[]).includes(s);
}

export class TwinFaultError extends Error {
  override name = "TwinFaultError";
}

export interface Twin {
  /** A copy of the fleet whose devices and client hosts carry the twin's real host, port, ntlsPort and hostKey. */
  fleet: Fleet;
  appliances: Map<string, TwinAppliance>;
  clientHosts: Map<string, TwinClientHost>;
  /** How to log in to a device or client host of the twin (the password stays a Secret). */
  credentials(name: string): TwinCredentials;
  /** Inject a fault at run time; resolves with a one-line description of what changed. */
  setFault(target: string, fault: FaultName, value?: string): Promise<string>;
  /** Pull the plug and plug it back in: a hung appliance comes back (reboot patch or not). */
  powerCycle(device: string): Promise<void>;
  sessionLog(name: string): readonly SessionRecord[];
  /**
   * The twin's Azure Resource Manager, when any device has an `azure.resourceId`: each HSM resource is linked to its
   * appliance's `zeroized` state (ARM refuses to delete a device that is not zeroized). The fleet copy's
   * `azure.endpoint` points at it; clients trust it with `tls: { ca: arm.caPem }`.
   */
  arm: ArmTwin | undefined;
  /**
   * The Key Vault twin (Managed HSM pools, vaults, Entra ID, Graph) when the fleet declares managedHsms/keyVaults: its
   * ARM side rides on `arm`; the fleet copy's hsmUris and azureIdentity point at its data-plane listener.
   */
  keyVault: KeyVaultTwin | undefined;
  stop(): Promise<void>;
}

const START_ATTEMPTS = 6;
const SWEEP_MS = 250;

export async function startTwin(source: Fleet, opts: StartTwinOptions = {}): Promise<Twin> {
  if (!source.twin) throw new Error("startTwin: the fleet file is not a twin fleet (twin: true)");
  const log = opts.log ?? (() => {});
  const fleet = structuredClone(source);
  const remote = fleet.clientHosts.filter((ch) => !ch.local);
  const machines = fleet.devices.length + remote.length;

  // Address plan first (the client hosts' models read device addresses from this copy), state next, bind last.
  let block: LoopbackBlock | undefined;
  const assignAddresses = () => {
    if (!opts.rebase) return;
    block?.release();
    block = allocateLoopbackBlock(machines);
    let n = 0;
    for (const dev of fleet.devices) dev.host = block.address(n++);
    for (const ch of remote) ch.host = block.address(n++);
  };
  assignAddresses();

  const states = new Map<string, ApplianceState>();
  await Promise.all(
    fleet.devices.map(async (dev) => {
      states.set(dev.name, await createApplianceState(fleet, dev));
    }),
  );

  // Each client host registers itself (name, certificate, assigned partitions) on the appliances it is assigned to,
  // the state a finished `clientconfig deploy` leaves behind; stale server certificates are planted there too.
  const hostTwins = new Map<string, ClientHostTwin>();
  for (const ch of remote) hostTwins.set(ch.name, await createClientHostTwin(fleet, ch, states));
  // The daemon verifies a client's NTLS link with a real handshake as that client (ctx.tcp.tlsAsClient), which needs
  // the client's key from the fleet file. A twin client's key is made here, so the fleet copy carries it as a
  // literal (allowed in twin fleets only), unless the file already names one. Registered with the redactor first:
  // the key must never reach a log, a transcript or the evidence, whole or line by line.
  for (const ch of remote) {
    const hostTwin = hostTwins.get(ch.name);
    if (!hostTwin || ch.credentials.ntlsKey !== undefined) continue;
    registerPrivateKey(hostTwin.keyPem);
    ch.credentials.ntlsKey = hostTwin.keyPem;
  }

  const appliances = new Map<string, TwinAppliance>();
  const clientHosts = new Map<string, TwinClientHost>();
  const keys = new Map<string, ReturnType<typeof loadOrCreateHostKey>>();
  const keyOf = (name: string) => {
    let k = keys.get(name);
    if (!k) {
      k = loadOrCreateHostKey(name, opts.hostKeyDir);
      keys.set(name, k);
    }
    return k;
  };

  const build = () => {
    appliances.clear();
    clientHosts.clear();
    for (const dev of fleet.devices) {
      const state = states.get(dev.name);
      if (!state) throw new Error(`startTwin: no state for ${dev.name}`);
      const hostKey = keyOf(dev.name);
      const server = new ApplianceServer({
        state,
        host: new LunashHost(state),
        address: dev.host,
        sshPort: dev.port,
        ntlsPort: dev.ntlsPort,
        hostKey,
        authorizedKeys: authorizedKeysOf(fleet, dev),
      });
      appliances.set(dev.name, {
        name: dev.name,
        address: dev.host,
        sshPort: dev.port,
        ntlsPort: dev.ntlsPort,
        user: dev.user,
        hostKeyFingerprint: hostKey.fingerprint,
        state,
        server,
      });
    }
    for (const ch of remote) {
      const hostTwin = hostTwins.get(ch.name);
      if (!hostTwin || !ch.host) continue;
      const hostKey = keyOf(ch.name);
      const faults: CarrierFaults = {};
      const password = clientHostSecret(fleet, ch, "ssh")?.reveal();
      const publicKeys = authorizedKeysOfHost(fleet, ch);
      const server = new TwinSshServer({
        name: ch.name,
        address: ch.host,
        port: ch.port,
        hostKey,
        users: (name) => (name === ch.user ? { password, publicKeys } : undefined),
        host: hostTwin,
        faults: () => faults,
      });
      clientHosts.set(ch.name, {
        name: ch.name,
        address: ch.host,
        sshPort: ch.port,
        user: ch.user,
        hostKeyFingerprint: hostKey.fingerprint,
        host: hostTwin,
        server,
        faults,
      });
    }
  };

  const stopAll = async () => {
    await Promise.all([
      ...[...appliances.values()].map((a) => a.server.stop()),
      ...[...clientHosts.values()].map((c) => c.server.stop()),
    ]);
  };

  for (let attempt = 1; ; attempt++) {
    build();
    try {
      await Promise.all([
        ...[...appliances.values()].map((a) => a.server.start()),
        ...[...clientHosts.values()].map((c) => c.server.start()),
      ]);
      break;
    } catch (err) {
      await stopAll();
      if (opts.rebase && isAddressInUse(err) && attempt < START_ATTEMPTS) {
        assignAddresses();
        continue;
      }
      block?.release();
      const where = (err as { address?: string; port?: number }).address
        ? ` (${(err as { address?: string }).address}:${(err as { port?: number }).port})`
        : "";
      throw new Error(
        `twin: cannot bind${where}: ${(err as Error).message}` +
          (isAddressInUse(err) && !opts.rebase ? " — is another `lunafleet sim` running?" : ""),
      );
    }
  }

  // The fleet copy now names the real endpoints (ports may have been 0 = ephemeral).
  for (const dev of fleet.devices) {
    const a = appliances.get(dev.name);
    if (!a) continue;
    a.sshPort = a.server.ssh.port;
    a.ntlsPort = a.server.ntls.port;
    dev.port = a.sshPort;
    dev.ntlsPort = a.ntlsPort;
    dev.hostKey = a.hostKeyFingerprint;
  }
  for (const ch of remote) {
    const c = clientHosts.get(ch.name);
    if (!c) continue;
    c.sshPort = c.server.port;
    ch.port = c.sshPort;
    ch.hostKey = c.hostKeyFingerprint;
  }
  for (const a of appliances.values())
    log(`twin: appliance ${a.name} ssh ${a.address}:${a.sshPort} ntls ${a.ntlsPort}`);
  for (const c of clientHosts.values()) log(`twin: client host ${c.name} ssh ${c.address}:${c.sshPort}`);

  const keyVault = fleetHasKeyVault(fleet)
    ? await startKeyVaultTwin(fleet).catch(async (err: unknown) => {
        await stopAll();
        block?.release();
        throw err;
      })
    : undefined;
  const arm = await startLinkedArmTwin(fleet, states, keyVault).catch(async (err: unknown) => {
    await keyVault?.stop();
    await stopAll();
    block?.release();
    throw err;
  });
  if (arm) log(`twin: ARM ${arm.endpoint} (subscription ${arm.subscriptionId})`);

  const appliance = (name: string): TwinAppliance => {
    const a = appliances.get(name);
    if (!a)
      throw new TwinFaultError(
        `unknown twin appliance '${name}' (twin has: ${[...appliances.keys()].join(", ")})`,
      );
    return a;
  };

  // One sweep for the whole twin (never one timer per appliance): listeners follow state changes that happen
  // without an SSH command, such as a patched reboot finishing or a power cycle made through the state.
  const sweep = setInterval(() => {
    for (const a of appliances.values()) a.server.reconcileIfChanged();
  }, SWEEP_MS);
  sweep.unref();

  const twin: Twin = {
    fleet,
    appliances,
    clientHosts,
    credentials(name: string): TwinCredentials {
      const dev = fleet.devices.find((d) => d.name === name);
      if (dev) {
        const a = appliance(name);
        return {
          address: a.address,
          port: a.sshPort,
          user: dev.user,
          password: deviceSecret(fleet, dev, "appliance"),
          hostKeyFingerprint: a.hostKeyFingerprint,
        };
      }
      const ch = fleet.clientHosts.find((c) => c.name === name);
      const c = clientHosts.get(name);
      if (!ch || !c) throw new TwinFaultError(`unknown twin machine '${name}'`);
      return {
        address: c.address,
        port: c.sshPort,
        user: ch.user,
        password: clientHostSecret(fleet, ch, "ssh"),
        hostKeyFingerprint: c.hostKeyFingerprint,
      };
    },
    async setFault(target: string, fault: FaultName, value?: string): Promise<string> {
      const message = await applyFault({ fleet, appliances, clientHosts, appliance }, target, fault, value);
      log(`twin: fault ${target} ${fault}${value !== undefined ? ` ${value}` : ""}: ${message}`);
      return message;
    },
    async powerCycle(device: string): Promise<void> {
      const a = appliance(device);
      powerCycleState(a.state);
      await a.server.reconcile();
    },
    sessionLog(name: string): readonly SessionRecord[] {
      const a = appliances.get(name);
      if (a) return a.server.ssh.sessions;
      const c = clientHosts.get(name);
      if (c) return c.server.sessions;
      throw new TwinFaultError(`unknown twin machine '${name}'`);
    },
    arm,
    keyVault,
    async stop(): Promise<void> {
      clearInterval(sweep);
      await arm?.stop();
      await keyVault?.stop();
      await stopAll();
      block?.release();
    },
  };
  return twin;
}

/**
 * One ARM twin for the devices that name a Dedicated HSM resource in the fleet's subscription (the `azure` block's,
 * else the first resource id's); each resource's `zeroized` is read from its appliance's live state.
 */
async function startLinkedArmTwin(
  fleet: Fleet,
  states: Map<string, ApplianceState>,
  keyVault?: KeyVaultTwin,
): Promise<ArmTwin | undefined> {
  const withIds = fleet.devices.filter((d) => d.azure?.resourceId);
  if (withIds.length === 0 && !keyVault) return undefined;
  const subOf = (id: string) => /^\/subscriptions\/([^/]+)\//i.exec(id)?.[1] ?? "";
  const subscriptionId =
    fleet.azure?.subscriptionId ??
    (withIds[0] ? subOf(withIds[0].azure!.resourceId) : keyVault!.model.subscriptionId);
  const hsms = withIds
    .filter((d) => subOf(d.azure!.resourceId).toLowerCase() === subscriptionId.toLowerCase())
    .map((d) => ({
      resourceId: d.azure!.resourceId,
      location: "westeurope",
      zeroized: () => states.get(d.name)?.zeroized === true,
    }));
  const arm = await startArmTwin({
    subscriptionId,
    hsms,
    resourceGroups: [],
    ...(keyVault
      ? { providers: [{ routes: keyVault.armRoutes, resources: keyVault.model, groups: keyVault.groups }] }
      : {}),
  });
  if (keyVault) keyVault.armRoutes.groupExists = (rg) => arm.groupExists(rg);
  if (fleet.azure) fleet.azure.endpoint = arm.endpoint;
  else if (keyVault)
    fleet.azure = {
      subscriptionId,
      endpoint: arm.endpoint,
      tokenScope: "https://management.azure.com/.default",
      pollIntervalMs: 50,
    };
  return arm;
}

/** A PEM private key for the redactor: whole, trimmed, and each base64 line of its body. */
function registerPrivateKey(pem: string): void {
  registerSecretValue(pem);
  registerSecretValue(pem.trim());
  for (const line of pem.split(/\r?\n/))
    if (line.length >= 16 && !line.startsWith("-----")) registerSecretValue(line);
}

function publicKeyLine(privateKeyRef: Secret | undefined): string[] {
  if (!privateKeyRef) return [];
  const parsed = ssh2.utils.parseKey(privateKeyRef.reveal());
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key || key instanceof Error) return [];
  return [`${key.type} ${key.getPublicSSH().toString("base64")}`];
}

/** The daemon logs in with `credentials.privateKey` when the fleet has one: the twin accepts its public half. */
function authorizedKeysOf(fleet: Fleet, dev: Device): string[] {
  return publicKeyLine(deviceSecret(fleet, dev, "privateKey"));
}

function authorizedKeysOfHost(fleet: Fleet, ch: ClientHost): string[] {
  return publicKeyLine(clientHostSecret(fleet, ch, "privateKey"));
}

// ---------------------------------------------------------------------------------------------------------------
// Faults

interface FaultScope {
  fleet: Fleet;
  appliances: Map<string, TwinAppliance>;
  clientHosts: Map<string, TwinClientHost>;
  appliance(name: string): TwinAppliance;
}

const OFF = new Set(["off", "none", "clear", "0", "false", "no"]);

async function applyFault(
  scope: FaultScope,
  target: string,
  fault: FaultName,
  value?: string,
): Promise<string> {
  const off = value !== undefined && OFF.has(value.toLowerCase());
  const ch = scope.clientHosts.get(target);
  if (ch && (fault === "slow" || fault === "drop" || fault === "garble" || fault === "hold"))
    return carrierFault(ch, fault, value, off);
  if (fault === "member-down") return memberDown(scope, target, value);
  const a = scope.appliance(target);
  const { state } = a;
  switch (fault) {
    case "slow": {
      const ms = off ? 0 : Number(value ?? 2000);
      if (!Number.isInteger(ms) || ms < 0)
        throw new TwinFaultError(`slow: '${value}' is not a delay in milliseconds`);
      state.faults.slowReplyMs = ms || undefined;
      return ms ? `${target} answers every command ${ms} ms late` : `${target} answers promptly again`;
    }
    case "drop":
    case "garble": {
      const key = fault === "drop" ? "dropMidCommand" : "garbleCommand";
      if (!value) throw new TwinFaultError(`${fault}: name the command (e.g. "hsm show"), or 'off'`);
      state.faults[key] = off ? undefined : value;
      if (off) return `${target}: ${fault} fault cleared`;
      return fault === "drop"
        ? `${target} drops the connection in the middle of '${value}'`
        : `${target} garbles the output of '${value}'`;
    }
    case "expire-cert":
    case "regen-cert": {
      const days =
        fault === "expire-cert"
          ? -Math.max(1, Number(value ?? 1) || 1)
          : Math.max(1, Number(value ?? 365) || 365);
      const old = state.ntls.certPem;
      const cert = await generateSelfSignedCert({
        commonName: state.hostname,
        validDays: days,
        altNames: [a.address],
      });
      state.ntls.certPem = cert.certPem;
      state.ntls.keyPem = cert.keyPem;
      state.ntls.notAfter = cert.notAfter;
      if (fault === "regen-cert") {
        state.ntls.certGeneration += 1;
        return `${target} has a new NTLS certificate (valid ${days} days); clients holding the old server.pem no longer trust it`;
      }
      // The same certificate, aged: clients that trusted it keep their copy in step (it is "theirs", just expired).
      for (const c of scope.clientHosts.values())
        if (c.host.serverCerts.get(target) === old) c.host.serverCerts.set(target, cert.certPem);
      return `${target}'s NTLS certificate expired ${-days} day(s) ago`;
    }
    case "close-ntls":
      state.ntls.listening = off;
      await a.server.reconcile();
      return off
        ? `${target}: NTLS listening on ${a.ntlsPort} again`
        : `${target}: nothing listens on ${a.ntlsPort}`;
    case "hang-reboot":
      if (value === "now") {
        state.power = "hung";
        await a.server.reconcile();
        return `${target} hangs now (no SSH, no NTLS) until power-cycle`;
      }
      state.faults.hangReboot = off ? undefined : true;
      return off ? `${target} reboots normally again` : `${target}'s next reboot will hang until power-cycle`;
    case "hold":
      throw new TwinFaultError(
        `hold applies to client hosts (their lunacm and vtl sessions), not to ${target}`,
      );
    case "power-cycle":
      powerCycleState(state);
      await a.server.reconcile();
      return `${target} power-cycled (power: ${state.power})`;
    default:
      throw new TwinFaultError(`unknown fault '${fault as string}'`);
  }
}

function carrierFault(
  ch: TwinClientHost,
  fault: "slow" | "drop" | "garble" | "hold",
  value: string | undefined,
  off: boolean,
): string {
  if (fault === "hold") return holdFault(ch, value, off);
  if (fault === "slow") {
    const ms = off ? 0 : Number(value ?? 2000);
    if (!Number.isInteger(ms) || ms < 0)
      throw new TwinFaultError(`slow: '${value}' is not a delay in milliseconds`);
    ch.faults.slowReplyMs = ms || undefined;
    return ms ? `${ch.name} answers ${ms} ms late` : `${ch.name} answers promptly again`;
  }
  if (!value) throw new TwinFaultError(`${fault}: name the command (e.g. "hagroup listgroups"), or 'off'`);
  const key = fault === "drop" ? "dropMidCommand" : "garbleCommand";
  ch.faults[key] = off ? undefined : value;
  return off ? `${ch.name}: ${fault} fault cleared` : `${ch.name}: ${fault} on '${value}'`;
}

/**
 * `hold <client-host> "<command>"`: the reply to that command is held back until `hold <client-host> off` — a job
 * sits inside the command for as long as whoever set the fault wants (a test watching a job live, with no timer).
 * Only the timing changes, never the text: a slow line, not something a Luna would not print.
 */
function holdFault(ch: TwinClientHost, value: string | undefined, off: boolean): string {
  const current = ch.faults.hold as (CarrierFaults["hold"] & { release?: () => void }) | undefined;
  if (off) {
    ch.faults.hold = undefined;
    current?.release?.();
    return current ? `${ch.name}: replies to '${current.command}' released` : `${ch.name}: nothing was held`;
  }
  if (!value) throw new TwinFaultError(`hold: name the command (e.g. "hagroup recover"), or 'off'`);
  current?.release?.();
  let release!: () => void;
  const released = new Promise<void>((r) => {
    release = r;
  });
  ch.faults.hold = Object.assign({ command: value, released }, { release });
  return `${ch.name}: replies to '${value}' are held until 'hold off'`;
}

/**
 * `member-down <client-host> <device>/<partition>` downs one HA member on that client; `member-down <device>
 * [<partition>]` downs the device's members on every client host that has them in an HA group.
 */
function memberDown(scope: FaultScope, target: string, value?: string): string {
  const downed: string[] = [];
  const down = (c: TwinClientHost, device: string, partition: string) => {
    const has = c.host.haGroups.some((g) =>
      g.members.some((m) => m.device === device && m.partition === partition),
    );
    if (!has) return;
    c.host.setMemberDown(device, partition, true);
    downed.push(`${c.name}: ${device}/${partition}`);
  };
  const ch = scope.clientHosts.get(target);
  if (ch) {
    const [device, partition] = (value ?? "").split("/");
    if (!device || !partition)
      throw new TwinFaultError("member-down <client-host> needs <device>/<partition>");
    down(ch, device, partition);
  } else {
    scope.appliance(target);
    const dev = scope.fleet.devices.find((d) => d.name === target);
    for (const c of scope.clientHosts.values())
      for (const p of dev?.partitions ?? []) if (!value || p.label === value) down(c, target, p.label);
  }
  if (downed.length === 0)
    throw new TwinFaultError(`member-down: no HA member matches ${target} ${value ?? ""}`.trim());
  return `HA member(s) down: ${downed.join(", ")}`;
}
