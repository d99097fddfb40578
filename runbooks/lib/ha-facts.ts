// What ha-sync tells the fleet state model about cloning domains, from its typed findings: a member is in the group's
// domain only where lunacm's own synchronize check passed over it; a foreign member is a problem with the evidence
// (the fleet file's declaration, or lunacm's warning) and the remediation plan; a member that took no part in the check
// is `check-failed` with why (its domain was looked for and could not be verified: a finding the report lists, never
// an older green), and a down member is a problem of its own.
import { type ObservationInput, subjects as S } from "../../src/facts/model.ts";
import { describeFinding, type HaFinding, type MemberRef } from "./ha-findings.ts";
import { memberFacts } from "./member-facts.ts";

export function domainFacts(
  group: string,
  members: readonly MemberRef[],
  checked: readonly MemberRef[],
  findings: readonly HaFinding[],
  notChecked: string,
): ObservationInput[] {
  const same = (a: { device: string; partition: string }, b: { device: string; partition: string }) =>
    a.device === b.device && a.partition === b.partition;
  return members.flatMap((m): ObservationInput[] => {
    const subject = S.haMember(group, m.device, m.partition);
    const mine = findings.filter((f) => f.kind !== "ha-settings-changed" && same(f, m));
    const foreign = mine.find((f) => f.kind === "foreign-member");
    const down = mine.find((f) => f.kind === "member-down");
    const unverifiable = mine.find((f) => f.kind === "domain-unverifiable");
    const out: ObservationInput[] = [
      foreign?.kind === "foreign-member"
        ? {
            subject,
            fact: "cloning-domain",
            status: "problem",
            summary: "FOREIGN",
            // The report's problem line: the member, its serial, the evidence and the way out.
            reason: describeFinding(foreign),
            value: { evidence: foreign.evidence, remediation: foreign.remediation },
          }
        : checked.some((c) => same(c, m))
          ? {
              subject,
              fact: "cloning-domain",
              status: "ok",
              summary: "same domain (lunacm's synchronize check)",
            }
          : {
              subject,
              fact: "cloning-domain",
              status: "check-failed",
              summary: "NOT VERIFIED",
              reason: unverifiable
                ? describeFinding(unverifiable)
                : `${group}: ${m.device}/${m.partition}: cloning domain not verified: ${notChecked}`,
            },
    ];
    if (down?.kind === "member-down")
      out.push(...memberFacts([{ ...m, status: "down", alive: false, why: down.detail }], "seen"));
    return out;
  });
}
