// What the HA runbooks found, typed, for the operator's report and the fleet state model: one record per member fact
// (down and why it was left alone, recovered, still down after a recovery, in a foreign cloning domain, domain not
// verifiable) and per client-host setting changed. Each names the group and the member by fleet name and serial; the
// texts are for people, the kinds and fields for programs.

export interface MemberRef {
  group: string;
  device: string;
  partition: string;
  serial: string;
}

/** Why a down member was not recovered by this job. */
export type SkipReason = "breaker-open" | "unreachable" | "partition-not-intact";

// A type alias, not an interface: it is stored as a fact's JSON value, which needs the implicit index signature.
export type RemediationStep = {
  on: string;
  via: "lunash" | "lunacm";
  command: string;
  why: string;
};

export type HaFinding =
  | (MemberRef & { kind: "member-down-skipped"; reason: SkipReason; detail: string })
  | (MemberRef & { kind: "member-recovered" })
  | (MemberRef & { kind: "member-still-down"; detail: string })
  | (MemberRef & { kind: "foreign-member"; evidence: string; remediation: RemediationStep[] })
  | (MemberRef & { kind: "domain-unverifiable"; detail: string })
  | (MemberRef & { kind: "member-down"; detail: string })
  | { kind: "ha-settings-changed"; host: string; changed: string[] };

/** One line an operator reads. */
export function describeFinding(f: HaFinding): string {
  if (f.kind === "ha-settings-changed")
    return `${f.host}: HA settings changed to the fleet file's (${f.changed.join("; ")})`;
  const who = `${f.group}: ${f.device}/${f.partition}`;
  switch (f.kind) {
    case "member-down-skipped":
      return `${who} down, not recovered: ${f.detail}`;
    case "member-recovered":
      return `${who} recovered`;
    case "member-still-down":
      return `${who} still down after hagroup recover`;
    case "foreign-member":
      return `${who} (${f.serial}) is in a foreign cloning domain (${f.evidence}); remediation: ${f.remediation.map((r) => `[${r.on}] ${r.command}`).join(" → ")}`;
    case "domain-unverifiable":
      return `${who}: cloning domain not verified: ${f.detail}`;
    case "member-down":
      return `${who} is down: ${f.detail}`;
  }
}
