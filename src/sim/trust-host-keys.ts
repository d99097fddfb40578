// `lunafleet sim --trust-host-keys`: record the host keys the twin really serves in the data dir's trust store, so a
// daemon started separately (`lunafleet daemon --fleet config/demo.yaml`, whose fleet pins no host keys) can reach
// the twin without `lunafleet fleet trust` on every machine. Twin fleets only, loopback addresses only, and only on
// the operator's explicit flag: this is trust given without comparing fingerprints, which is acceptable for
// simulated machines this process itself started and for nothing else.
import type { Fleet } from "../config/schema.ts";
import { fingerprintsEqual } from "../transport/fingerprint.ts";
import type { TrustStore } from "../transport/trust-store.ts";
import type { Twin } from "./twin.ts";

export interface RecordedHostKey {
  kind: "appliance" | "client";
  name: string;
  host: string;
  port: number;
  fingerprint: string;
  /** What the store held before for this name: nothing, the same key, or another key (now replaced). */
  before: "new" | "same" | { replaced: string };
}

class TwinTrustRefused extends Error {
  override name = "TwinTrustRefused";
}

/** Refuse the flag for anything but a twin fleet file (`twin: true`). */
export function assertTwinTrustAllowed(fleet: Fleet, fleetFile: string): void {
  if (!fleet.twin)
    throw new TwinTrustRefused(
      `${fleetFile}: --trust-host-keys is for twin fleets (twin: true) only; trust a real device's key with ` +
        "`lunafleet fleet trust <name>` after comparing it with the device's console",
    );
}

const LOOPBACK = /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;

/**
 * Record every twin appliance's and client host's fingerprint under its name, address and SSH port (the keys the
 * trust store matches a fleet target on). Returns what was recorded, in the twin's order.
 */
export function recordTwinHostKeys(twin: Twin, store: TrustStore): RecordedHostKey[] {
  if (!twin.fleet.twin) throw new TwinTrustRefused("refusing to trust host keys of a non-twin fleet");
  const machines = [
    ...[...twin.appliances.values()].map((a) => ({
      kind: "appliance" as const,
      name: a.name,
      host: a.address,
      port: a.sshPort,
      fingerprint: a.hostKeyFingerprint,
    })),
    ...[...twin.clientHosts.values()].map((c) => ({
      kind: "client" as const,
      name: c.name,
      host: c.address,
      port: c.sshPort,
      fingerprint: c.hostKeyFingerprint,
    })),
  ];
  // The twin only ever binds loopback; anything else here would be trust given to a machine nobody looked at.
  for (const m of machines)
    if (!LOOPBACK.test(m.host))
      throw new TwinTrustRefused(
        `twin ${m.kind} ${m.name} listens on ${m.host}, not loopback; nothing recorded`,
      );
  const recorded: RecordedHostKey[] = [];
  for (const m of machines) {
    const known = store.get(m.name, m.host, m.port);
    const before: RecordedHostKey["before"] = !known
      ? "new"
      : fingerprintsEqual(known.fingerprint, m.fingerprint)
        ? "same"
        : { replaced: known.fingerprint };
    if (before !== "same") store.set(m.name, { fingerprint: m.fingerprint, host: m.host, port: m.port });
    recorded.push({ ...m, before });
  }
  return recorded;
}

/** One line per machine, for the sim banner. */
export function describeRecordedHostKeys(recorded: RecordedHostKey[], storeFile: string): string[] {
  return [
    `trusted ${recorded.length} twin host key(s) in ${storeFile} (--trust-host-keys):`,
    ...recorded.map(
      (r) =>
        `  ${r.kind.padEnd(9)} ${r.name.padEnd(10)} ${`${r.host}:${r.port}`.padEnd(21)} ${r.fingerprint}` +
        (r.before === "new"
          ? ""
          : r.before === "same"
            ? "  (already trusted)"
            : `  (replaced ${r.before.replaced})`),
    ),
  ];
}
