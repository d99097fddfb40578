// The twin's appliances: one lunash-over-SSH server with an NTLS listener per fleet device, on the device's
// address, accepting the fleet's appliance password and, where the fleet names one, its private key's public half.
import ssh2 from "ssh2";
import { type Device, deviceSecret, type Fleet, type Secret } from "../config/index.ts";
import { LunashHost } from "./appliance/lunash.ts";
import { ApplianceServer } from "./appliance/server.ts";
import type { loadOrCreateHostKey } from "./ssh-server.ts";
import type { ApplianceState } from "./state.ts";
import type { TwinAppliance } from "./twin.ts";

export type HostKeyOf = (name: string) => ReturnType<typeof loadOrCreateHostKey>;

export function createAppliances(
  fleet: Fleet,
  states: Map<string, ApplianceState>,
  keyOf: HostKeyOf,
): Map<string, TwinAppliance> {
  const appliances = new Map<string, TwinAppliance>();
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
  return appliances;
}

export function publicKeyLine(privateKeyRef: Secret | undefined): string[] {
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
