// What the transport needs to reach one device or client host, built from the fleet file. Credentials are resolved
// lazily (only when a connection authenticates), so planning and host-key probing never touch secrets.

import { clientHostSecret, deviceSecret } from "../config/model.ts";
import type { ClientHost, Device, Fleet, Timeouts } from "../config/schema.ts";
import type { Secret } from "../config/secret.ts";

export interface SshCredentials {
  password?: Secret | undefined;
  privateKey?: Secret | undefined;
}

export interface SshTarget {
  kind: "device" | "clientHost";
  /** Name in the fleet file; also the key of the connection pool and of the trust store. */
  name: string;
  host: string;
  port: number;
  user: string;
  /** Pinned fingerprint from the fleet file (`SHA256:...`), if any. */
  hostKey?: string | undefined;
  timeouts: Timeouts;
  credentials(): SshCredentials;
}

export function deviceTarget(fleet: Fleet, device: Device): SshTarget {
  return {
    kind: "device",
    name: device.name,
    host: device.host,
    port: device.port,
    user: device.user,
    hostKey: device.hostKey,
    timeouts: fleet.defaults.timeouts,
    credentials: () => ({
      password: deviceSecret(fleet, device, "appliance"),
      privateKey: deviceSecret(fleet, device, "privateKey"),
    }),
  };
}

class LocalClientHostError extends Error {
  override name = "LocalClientHostError";
}

/** An SSH target for a remote client host; a `local: true` host is reached through the local pty instead. */
export function clientHostTarget(fleet: Fleet, host: ClientHost): SshTarget {
  if (host.local || !host.host)
    throw new LocalClientHostError(`client host '${host.name}' is local: use the local pty, not SSH`);
  return {
    kind: "clientHost",
    name: host.name,
    host: host.host,
    port: host.port,
    user: host.user,
    hostKey: host.hostKey,
    timeouts: fleet.defaults.timeouts,
    credentials: () => ({
      password: clientHostSecret(fleet, host, "ssh"),
      privateKey: clientHostSecret(fleet, host, "privateKey"),
    }),
  };
}
