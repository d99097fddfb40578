// HA cloning domains: the error that stops a synchronize across domains, the operator's way out (a new partition in
// the group's domain replaces the foreign member), and who is foreign — or undecided — when lunacm names conflicting slots.
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
 * Which slots lunacm's cloning warnings show to be foreign, and which it leaves undecided. lunacm compares members
 * with the group's primary (the first member it lists) and names each conflicting pair ("slot 0 and slot 1"); a
 * warning says two members differ, never which of the two is outside the group's domain. So a slot is foreign only
 * when another live member, named in no conflict, shares the primary's domain — the primary is then in the group's
 * domain and each slot it conflicts with is not. Otherwise (two live members, or every member conflicting with the
 * primary) nothing a Luna prints says which side is foreign: every named slot is undecided, never guessed — the
 * remediation replaces a member, and replacing the wrong one would remove the group's good copy.
 */
export function conflictingSlots(
  conflicts: readonly { slots: readonly [number, number] }[],
  primarySlot: number | null,
  liveSlots: readonly number[],
): { foreign: number[]; undecided: number[] } {
  const named = [...new Set(conflicts.flatMap((c) => c.slots))].sort((a, b) => a - b);
  if (named.length === 0) return { foreign: [], undecided: [] };
  const agreeing = liveSlots.filter((s) => !named.includes(s));
  const primaryInEvery = primarySlot !== null && conflicts.every((c) => c.slots.includes(primarySlot));
  if (agreeing.length > 0 && primaryInEvery)
    return { foreign: named.filter((s) => s !== primarySlot), undecided: [] };
  return { foreign: [], undecided: named };
}
