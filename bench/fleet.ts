// The benchmark's fleet: N generated twin appliances, identical in the parent (client) and in the twin child
// process, so the child only reports where each appliance listens and which host key it shows — never a password.
import { stringify } from "yaml";
import { type Fleet, parseFleet } from "../src/config/index.ts";

/** Where the twin child put each appliance (after rebasing onto a random loopback block). */
export interface BenchEndpoint {
  name: string;
  host: string;
  port: number;
  hostKey: string;
}

function benchDeviceName(i: number): string {
  return `bench-${String(i).padStart(4, "0")}`;
}

function benchSerial(i: number): string {
  return String(800000 + i);
}

/** A twin fleet of `n` appliances, one partition each, each with its own appliance password. */
export function benchFleet(n: number): Fleet {
  const devices = Array.from({ length: n }, (_, i) => ({
    name: benchDeviceName(i),
    // Placeholder addresses: the twin rebases every device onto a random 127.A.B.0/24 block.
    host: `10.77.${i >> 8}.${i & 255}`,
    port: 2222,
    serial: benchSerial(i),
    credentials: { appliance: `Bench-${i}-appliance-pw`, hsmSo: `Bench-${i}-so-pw` },
    partitions: [{ label: "par-bench", serial: String(1800000000000 + i) }],
  }));
  const r = parseFleet(
    stringify({
      version: 1,
      twin: true,
      defaults: { timeouts: { connectMs: 20_000, authMs: 20_000, commandMs: 20_000, keepaliveMs: 60_000 } },
      devices,
    }),
  );
  if (!r.ok) throw new Error(`bench fleet does not validate: ${JSON.stringify(r.issues.slice(0, 3))}`);
  return r.fleet;
}

/** The fleet with the twin's real endpoints and pinned host keys filled in. */
export function pinFleet(fleet: Fleet, endpoints: BenchEndpoint[]): Fleet {
  const byName = new Map(endpoints.map((e) => [e.name, e]));
  const pinned = structuredClone(fleet);
  for (const dev of pinned.devices) {
    const e = byName.get(dev.name);
    if (!e) throw new Error(`twin child reported no endpoint for ${dev.name}`);
    dev.host = e.host;
    dev.port = e.port;
    dev.hostKey = e.hostKey;
  }
  return pinned;
}
