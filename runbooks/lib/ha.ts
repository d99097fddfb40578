// What the HA runbooks share: the lookup of a group in the parsed `hagroup listgroups` (its parser's own type), the
// fleet-file view of a group's members (device, partition label, serial, declared cloning domain), and one read.
import { type Parsed, parsers } from "../../parsers/index.ts";
import { getDevice, getHaGroup } from "../../src/config/model.ts";
import type { Fleet } from "../../src/config/schema.ts";
import { UnexpectedResult } from "../../src/engine/errors.ts";
import type { StepShell } from "../../src/engine/step-context.ts";

export type Listgroups = Parsed<typeof parsers.hagroupListgroups>;
export type ListedGroup = Listgroups["groups"][number];

/** `hagroup listgroups` on a client host's lunacm, and the one group the caller is about. */
export async function listGroup(
  shell: { send: StepShell["send"] },
  label: string,
  host: string,
): Promise<ListedGroup> {
  return findListedGroup(await shell.send("hagroup listgroups", parsers.hagroupListgroups), label, host);
}

export interface DeclaredMember {
  device: string;
  partition: string;
  serial: string;
  /** The cloning domain the fleet file declares for the partition (a name, never the domain secret). */
  declaredDomain: string | null;
}

export function declaredMembers(fleet: Fleet, group: string): DeclaredMember[] {
  return getHaGroup(fleet, group).members.map((m) => {
    const par = getDevice(fleet, m.device).partitions.find((p) => p.label === m.partition);
    if (!par) throw new UnexpectedResult(`HA group ${group}: ${m.device} has no partition ${m.partition}`);
    return {
      device: m.device,
      partition: m.partition,
      serial: par.serial,
      declaredDomain: par.cloningDomain ?? null,
    };
  });
}

/** The group as the client host lists it; absent = the client does not know the group (fail closed). */
function findListedGroup(listed: Listgroups, label: string, host: string): ListedGroup {
  const g = listed.groups.find((x) => x.label.toLowerCase() === label.toLowerCase());
  if (!g)
    throw Object.assign(
      new UnexpectedResult(
        `${host}: 'hagroup listgroups' does not list HA group '${label}' (fleet file vs client)`,
      ),
      { host, command: "hagroup listgroups" },
    );
  return g;
}

export const isAlive = (status: string): boolean => status.trim().toLowerCase() === "alive";
