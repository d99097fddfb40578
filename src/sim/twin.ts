// The fleet launcher: starts one simulated appliance (lunash over SSH + NTLS on 1792) per fleet device
// (twin-appliances.ts) and one simulated client host (lunacm/vtl over SSH) per client host (twin-client-hosts.ts), each
// on its own loopback address, the ARM twin linked to them (twin-arm.ts), and hands back a copy of the fleet that
// points at them (real addresses, ports and host-key fingerprints), plus the controls that tests, the benchmark and
// `lunafleet sim` use: faults (twin-faults.ts), power cycles, session logs.
import { clientHostSecret, deviceSecret, type Fleet, type Secret } from "../config/index.ts";
import { createApplianceState } from "./appliance/factory.ts";
import { powerCycle as powerCycleState } from "./appliance/power.ts";
import type { ApplianceServer } from "./appliance/server.ts";
import type { ArmTwin } from "./arm/index.ts";
import type { ClientHostTwin } from "./client/index.ts";
import { allocateLoopbackBlock, isAddressInUse, type LoopbackBlock } from "./loopback.ts";
import { fleetHasKeyVault, type KeyVaultTwin, startKeyVaultTwin } from "./mhsm/index.ts";
import {
  type CarrierFaults,
  loadOrCreateHostKey,
  type SessionRecord,
  type TwinSshServer,
} from "./ssh-server.ts";
import type { ApplianceState } from "./state.ts";
import { createAppliances } from "./twin-appliances.ts";
import { startLinkedArmTwin } from "./twin-arm.ts";
import { createClientHosts, createHostTwins } from "./twin-client-hosts.ts";
import { applyFault, type FaultName, TwinFaultError } from "./twin-faults.ts";

export { FAULTS, type FaultName, isFaultName, TwinFaultError } from "./twin-faults.ts";

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

  const hostTwins = await createHostTwins(fleet, remote, states);

  let appliances = new Map<string, TwinAppliance>();
  let clientHosts = new Map<string, TwinClientHost>();
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
    appliances = createAppliances(fleet, states, keyOf);
    clientHosts = createClientHosts(fleet, remote, hostTwins, keyOf);
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
