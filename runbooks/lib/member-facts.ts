// What ha-recover and ha-sync tell the fleet state model: each HA member's state as seen (and after a recover), the
// partitions checked behind a down member, a client host's HA retry/interval settings.
import type { Fleet } from "../../src/config/schema.ts";
import { type FactRef, type ObservationInput, subjects as S } from "../../src/facts/model.ts";

export interface MemberView {
  group: string;
  device: string;
  partition: string;
  status: string;
  alive: boolean;
  why?: string | null;
}

export const memberFactRefs = (fleet: Fleet, groups: readonly string[]): FactRef[] =>
  fleet.haGroups
    .filter((g) => groups.includes(g.label))
    .flatMap((g) =>
      g.members.map((m) => ({ subject: S.haMember(g.label, m.device, m.partition), fact: "member" })),
    );

export function memberFacts(
  members: readonly MemberView[],
  when: "seen" | "after-recover",
): ObservationInput[] {
  return members.map((m): ObservationInput => {
    const subject = S.haMember(m.group, m.device, m.partition);
    if (m.alive)
      return {
        subject,
        fact: "member",
        status: "ok",
        summary: when === "after-recover" ? "recovered" : "up",
        value: { status: m.status },
      };
    return {
      subject,
      fact: "member",
      status: "problem",
      summary: when === "after-recover" ? "still DOWN" : "DOWN",
      value: { status: m.status },
      reason:
        when === "after-recover"
          ? `${m.group}: ${m.device}/${m.partition} still down after hagroup recover`
          : `${m.group}: ${m.device}/${m.partition} is ${m.status}${m.why ? ` (${m.why})` : ""}`,
    };
  });
}

export function partitionFact(
  device: string,
  partition: string,
  intact: boolean,
  why: string | null,
): ObservationInput {
  return intact
    ? { subject: S.partition(device, partition), fact: "intact", status: "ok", summary: "intact" }
    : {
        subject: S.partition(device, partition),
        fact: "intact",
        status: "problem",
        summary: "NOT INTACT",
        reason: why ?? `partition ${partition} on ${device} is not intact`,
      };
}

export function haSettingsFact(
  host: string,
  before: { count: number; intervalSeconds: number },
  wanted: { count: number; intervalSeconds: number },
  changed: string[],
): ObservationInput {
  return {
    subject: S.client(host),
    fact: "ha-settings",
    status: "ok",
    summary:
      changed.length > 0
        ? `set: ${changed.join(", ")}`
        : `retry ${wanted.count}, interval ${wanted.intervalSeconds}s`,
    value: { before, now: wanted },
  };
}
