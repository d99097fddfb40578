// The twin's client hosts: one SSH server per remote client host (its OS shell with lunacm and vtl), each host
// registered on the appliances it is assigned to, the way a finished `clientconfig deploy` leaves them.
import { type ClientHost, clientHostSecret, type Fleet, registerSecretValue } from "../config/index.ts";
import { type ClientHostTwin, createClientHostTwin } from "./client/index.ts";
import { type CarrierFaults, TwinSshServer } from "./ssh-server.ts";
import type { ApplianceState } from "./state.ts";
import type { TwinClientHost } from "./twin.ts";
import { type HostKeyOf, publicKeyLine } from "./twin-appliances.ts";

/**
 * The client hosts' models (they register themselves on their appliances). The daemon verifies a client's NTLS link
 * with a real handshake as that client (ctx.tcp.tlsAsClient), which needs the client's key from the fleet file: a twin
 * client's key is made here, so the fleet copy carries it as a literal (allowed in twin fleets only), unless the file
 * already names one. Registered with the redactor first: the key must never reach a log, a transcript or the
 * evidence, whole or line by line.
 */
export async function createHostTwins(
  fleet: Fleet,
  remote: ClientHost[],
  states: Map<string, ApplianceState>,
): Promise<Map<string, ClientHostTwin>> {
  const hostTwins = new Map<string, ClientHostTwin>();
  for (const ch of remote) hostTwins.set(ch.name, await createClientHostTwin(fleet, ch, states));
  for (const ch of remote) {
    const hostTwin = hostTwins.get(ch.name);
    if (!hostTwin || ch.credentials.ntlsKey !== undefined) continue;
    registerPrivateKey(hostTwin.keyPem);
    ch.credentials.ntlsKey = hostTwin.keyPem;
  }
  return hostTwins;
}

export function createClientHosts(
  fleet: Fleet,
  remote: ClientHost[],
  hostTwins: Map<string, ClientHostTwin>,
  keyOf: HostKeyOf,
): Map<string, TwinClientHost> {
  const clientHosts = new Map<string, TwinClientHost>();
  for (const ch of remote) {
    const hostTwin = hostTwins.get(ch.name);
    if (!hostTwin || !ch.host) continue;
    const hostKey = keyOf(ch.name);
    const faults: CarrierFaults = {};
    const password = clientHostSecret(fleet, ch, "ssh")?.reveal();
    const publicKeys = publicKeyLine(clientHostSecret(fleet, ch, "privateKey"));
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
  return clientHosts;
}

/** A PEM private key for the redactor: whole, trimmed, and each base64 line of its body. */
function registerPrivateKey(pem: string): void {
  registerSecretValue(pem);
  registerSecretValue(pem.trim());
  for (const line of pem.split(/\r?\n/))
    if (line.length >= 16 && !line.startsWith("-----")) registerSecretValue(line);
}
