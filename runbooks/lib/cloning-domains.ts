// HA cloning domains: the error that stops a synchronize across domains, the operator's way out (a new partition in
// the group's domain replaces the foreign member), and who is foreign when lunacm names two conflicting slots.
import { getHaGroup } from "../../src/config/model.ts";
import type { Fleet } from "../../src/config/schema.ts";
import { EngineError } from "../../src/engine/errors.ts";
import type { MemberRef, RemediationStep } from "./ha-findings.ts";

/**
 * A member does not share the group's cloning domain: the job stops before anything is copied (or, when lunacm's own
 * check said so, right after it), naming the members and the remediation; both are on the evidence too.
 */
export class CloningDomainMismatch extends EngineError {
  override name = "CloningDomainMismatch";
  constructor(
    message: string,
    readonly foreign: MemberRef[],
    readonly remediation: RemediationStep[],
  ) {
    super(message);
  }
}

/** The operator's way out: a new partition in the group's domain replaces each foreign member. */
export function remediationPlan(
  fleet: Fleet,
  group: string,
  foreign: readonly MemberRef[],
): RemediationStep[] {
  const g = getHaGroup(fleet, group);
  const domain = g.cloningDomain ?? "<the group's cloning domain>";
  return foreign.flatMap((f): RemediationStep[] => {
    const newLabel = `${f.partition}-${domain}`.slice(0, 32);
    return [
      {
        on: f.device,
        via: "lunash",
        command: `partition create -partition ${newLabel}`,
        why: `a new partition on ${f.device} to replace foreign member ${f.serial}`,
      },
      {
        on: g.clientHost,
        via: "lunacm",
        command: `partition init -label ${newLabel}`,
        why: `initialise it in the group's cloning domain '${domain}' (on its slot; the domain is typed at lunacm's prompt, never on the command line)`,
      },
      {
        on: g.clientHost,
        via: "lunacm",
        command: `hagroup addmember -group ${group} -serialnumber <serial of ${newLabel}>`,
        why: "add the new partition to the group",
      },
      {
        on: g.clientHost,
        via: "lunacm",
        command: `hagroup synchronize -group ${group}`,
        why: "copy the group's objects onto the new member (same domain: clonable)",
      },
      {
        on: g.clientHost,
        via: "lunacm",
        command: `hagroup removemember -group ${group} -serialnumber ${f.serial}`,
        why: `remove the foreign member ${f.device}/${f.partition} (${f.serial})`,
      },
    ];
  });
}

/**
 * Which slots lunacm's cloning warnings point at as foreign: a slot named in every conflict (the odd one out of a
 * larger group); where none is (two members: "slot 0 and slot 1"), the one that is not the group's primary (the
 * first member lunacm lists), since the group's objects live on the primary.
 */
export function foreignSlots(
  conflicts: readonly { slots: readonly [number, number] }[],
  primarySlot: number | null,
): number[] {
  if (conflicts.length === 0) return [];
  const named = conflicts.map((c) => new Set(c.slots));
  const common = [...named[0]!].filter((s) => named.every((n) => n.has(s)));
  const inEvery = common.filter((s) => s !== primarySlot || common.length === 1);
  if (inEvery.length === 1 && conflicts.length > 1) return inEvery;
  return [...new Set(conflicts.flatMap((c) => c.slots))].filter((s) => s !== primarySlot);
}
