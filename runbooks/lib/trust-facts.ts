// What ntls-cert-sync tells the fleet state model: each (appliance, client) pair's trust — a problem of a pair is that
// pair's, never the other appliances' of the client — and what a repair re-observes once it verified a pair.
import type { Fleet } from "../../src/config/schema.ts";
import { type FactRef, type JsonValue, type ObservationInput, subjects as S } from "../../src/facts/model.ts";

/** The devices assigned to a client host that a job targets. */
function assignedDevices(fleet: Fleet, host: string, devices: readonly string[]): string[] {
  const h = fleet.clientHosts.find((x) => x.name === host);
  return (h?.assignments ?? []).map((a) => a.device).filter((d) => devices.includes(d));
}

export const pairsOfDevice = (fleet: Fleet, device: string, hosts: readonly string[]): FactRef[] =>
  hosts
    .filter((h) => fleet.clientHosts.find((x) => x.name === h)?.assignments.some((a) => a.device === device))
    .map((h) => ({ subject: S.pair(device, h), fact: "trust" }));

export const pairsOfHost = (fleet: Fleet, host: string, devices: readonly string[]): FactRef[] =>
  assignedDevices(fleet, host, devices).map((d) => ({ subject: S.pair(d, host), fact: "trust" }));

export function trustFacts(
  pairs: readonly {
    device: string;
    host: string;
    status: string;
    daysLeft: number;
    mismatch: { client: string[]; appliance: string[] } | null;
  }[],
): ObservationInput[] {
  return pairs.map((p): ObservationInput => {
    const subject = S.pair(p.device, p.host);
    if (p.status === "in-sync")
      return { subject, fact: "trust", status: "ok", summary: "in sync", value: { daysLeft: p.daysLeft } };
    const sides = p.mismatch ? [...p.mismatch.client, ...p.mismatch.appliance] : [];
    return {
      subject,
      fact: "trust",
      status: "problem",
      summary: p.status,
      value: { status: p.status, daysLeft: p.daysLeft, mismatch: p.mismatch as JsonValue },
      reason:
        p.status === "mismatched"
          ? `${p.device} <-> ${p.host} mismatched: ${sides.join("; ") || "certificates differ"}`
          : `${p.device} <-> ${p.host} ${p.status} (${p.daysLeft} day(s) left)`,
    };
  });
}

/** A pair repaired and verified (handshake as the client, trusted certificate, vtl verify lists its partitions). */
export function repairedPairFacts(device: string, host: string): ObservationInput[] {
  const subject = S.pair(device, host);
  return [
    { subject, fact: "trust", status: "ok", summary: "repaired, verified" },
    { subject, fact: "vtl-verify", status: "ok", summary: "verified after repair" },
  ];
}
