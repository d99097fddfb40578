// ha-sync: synchronize an HA group only when every member shares the group's cloning domain. A synchronize across
// domains cannot clone private keys: it fails half-way or leaves members different, on the keys a bank signs with.
//
//   validate:  the fleet file: each member partition's declared cloning domain = the group's cloningDomain, every
//              declared member listed by the client (`hagroup listgroups`), no member the fleet does not declare.
//              A declared foreign member stops the job here (CloningDomainMismatch + remediation): nothing is logged
//              in, nothing is synchronized.
//   sync:      no Luna output shows a partition's cloning domain (the reference: "the cloning-domain value is never
//              displayed"); the one thing a Luna prints about it is lunacm's own check when it synchronizes:
//                Warning: Synchronize may fail.  The members in slot 0 and slot 1 have conflicting settings for
//                private key cloning.
//              So the Crypto Officer logs in on every live member through the login guard, `hagroup synchronize
//              -group <label>` runs — also when the group does not need a sync: then nothing is copied and the check
//              is the point — and the CO logs out of each member. That warning stops the job with
//              CloningDomainMismatch naming the slots, the members and the remediation, whatever the footer (lunacm
//              may end it `No Error` or `0x30 CKR_DEVICE_ERROR`). A member that is down takes no part: its domain is
//              not verified, and that is a finding, never a silent success.
import { z } from "zod";
import { cloningConflictsIn, parsers } from "../parsers/index.ts";
import { getHaGroup } from "../src/config/model.ts";
import type { Fleet } from "../src/config/schema.ts";
import { UnexpectedResult } from "../src/engine/errors.ts";
import { defineRunbook, type PlannedCommand, type Step } from "../src/engine/runbook.ts";
import type { StepContext, StepShell } from "../src/engine/step-context.ts";
import { resolveTarget } from "../src/engine/targets.ts";
import { CloningDomainMismatch, conflictingSlots, remediationPlan } from "./lib/cloning-domains.ts";
import { type DeclaredMember, declaredMembers, isAlive, type ListedGroup, listGroup } from "./lib/ha.ts";
import { domainFacts } from "./lib/ha-facts.ts";
import { describeFinding, type HaFinding, type MemberRef } from "./lib/ha-findings.ts";
import { memberFacts } from "./lib/member-facts.ts";

export { CloningDomainMismatch, remediationPlan } from "./lib/cloning-domains.ts";

const params = z
  .object({
    /** The HA group label. */
    target: z.string().min(1),
  })
  .strict();
type Params = z.output<typeof params>;
type Ctx = StepContext<Params>;

export interface MemberDomain extends DeclaredMember {
  slot: number | null;
  status: string;
}

export interface Validation {
  group: string;
  groupDomain: string;
  members: MemberDomain[];
}

export interface SyncResult {
  group: string;
  neededSync: boolean;
  /** lunacm's cloning check ran over these members (each logged in as CO) and printed no conflict. */
  checked: MemberRef[];
  loginAttempts: string[];
  /** Down members (not checked, domain not verified), typed. */
  findings: HaFinding[];
}

const refOf = (group: string, m: DeclaredMember): MemberRef => ({
  group,
  device: m.device,
  partition: m.partition,
  serial: m.serial,
});

async function stop(
  ctx: Ctx,
  group: string,
  problems: string[],
  foreign: MemberRef[],
  evidence: string,
  listed: ListedGroup,
  undecided: MemberRef[] = [],
): Promise<never> {
  const remediation = remediationPlan(ctx.fleet, group, foreign);
  const findings: HaFinding[] = [
    ...foreign.map((f): HaFinding => ({ ...f, kind: "foreign-member", evidence, remediation })),
    // Two members differ and nothing says which one is foreign: each is a finding, neither is guessed.
    ...undecided.map(
      (f): HaFinding => ({
        ...f,
        kind: "domain-unverifiable",
        detail: `its cloning domain conflicts with ${undecided
          .filter((o) => o.serial !== f.serial)
          .map((o) => `${o.device}/${o.partition}`)
          .join(" and ")} (${evidence}); lunacm does not say which side is outside the group's domain`,
      }),
    ),
  ];
  // Recorded before the job stops: a foreign member is the fleet's state either way; the others are not shown to
  // be in the group's domain (lunacm names only the conflicting slots), so they stay `not checked`. The members'
  // state was seen in the listing: that observation stands (the stop is about domains, not members).
  const declared = declaredMembers(ctx.fleet, group);
  const members = declared.map((m) => refOf(group, m));
  await ctx.facts.observe(
    ...domainFacts(group, members, [], findings, "not checked: the job stopped first"),
    ...memberFacts(
      declared.map((m) => {
        const row = listed.members.find((r) => r.serial === m.serial);
        const status = row?.status ?? "not listed";
        return {
          group,
          device: m.device,
          partition: m.partition,
          status,
          alive: row ? isAlive(status) : false,
        };
      }),
      "seen",
    ),
  );
  await ctx.evidence.note({ cloningDomains: { group, problems, findings } });
  ctx.log.warn(
    { jobId: ctx.jobId, group, foreign: foreign.map((f) => `${f.device}/${f.partition}`) },
    "HA synchronize refused",
  );
  throw new CloningDomainMismatch(
    `HA group ${group}: not synchronized — ${problems.join("; ")}.${remediation.length > 0 ? ` Remediation: ${remediation.map((r) => `[${r.on}] ${r.command}`).join(" → ")}` : ""}`,
    foreign,
    remediation,
  );
}

const observesMembers = (p: Params, fleet: Fleet) =>
  getHaGroup(fleet, p.target).members.flatMap((m) => [
    { subject: `ha-member:${p.target}/${m.device}/${m.partition}`, fact: "member" },
    { subject: `ha-member:${p.target}/${m.device}/${m.partition}`, fact: "cloning-domain" },
  ]);

const validate = {
  id: "validate-domains",
  title:
    "Validate cloning domains as the fleet file declares them, and the members the client lists (nothing is copied)",
  kind: "read",
  observes: observesMembers,
  commands: (p: Params, fleet: Fleet): PlannedCommand[] => [
    { via: "lunacm", on: getHaGroup(fleet, p.target).clientHost, command: "hagroup listgroups" },
  ],
  async run(ctx: Ctx): Promise<Validation> {
    const g = getHaGroup(ctx.fleet, ctx.params.target);
    const declared = declaredMembers(ctx.fleet, g.label);
    const problems: string[] = [];
    const foreign: MemberRef[] = [];
    // The fleet file first: a declared foreign member is known before anything is sent.
    if (g.cloningDomain === undefined)
      problems.push(`the fleet file declares no cloningDomain for ${g.label}`);
    for (const m of declared)
      if (g.cloningDomain !== undefined && m.declaredDomain !== g.cloningDomain) {
        foreign.push(refOf(g.label, m));
        problems.push(
          `fleet file declares domain '${m.declaredDomain ?? "(none)"}' for ${m.device}/${m.partition}, the group's is '${g.cloningDomain}'`,
        );
      }
    const listed = await listGroup(await ctx.lunacm(g.clientHost), g.label, g.clientHost);
    const members = declared.map((m): MemberDomain => {
      const row = listed.members.find((r) => r.serial === m.serial);
      if (!row)
        problems.push(`${g.clientHost} does not list ${m.device}/${m.partition} (${m.serial}) in ${g.label}`);
      return { ...m, slot: row?.slot ?? null, status: row?.status ?? "not listed" };
    });
    for (const r of listed.members)
      if (!declared.some((m) => m.serial === r.serial))
        problems.push(
          `${g.clientHost} lists member ${r.serial} in ${g.label}, which the fleet file does not declare`,
        );
    if (problems.length > 0 || g.cloningDomain === undefined)
      return stop(ctx, g.label, problems, foreign, "the fleet file's declaration", listed);
    return { group: g.label, groupDomain: g.cloningDomain, members };
  },
} satisfies Step<Params>;

/** Log the CO in on each live member (through the guard), run lunacm's synchronize, log out; conflicts stop the job. */
async function synchronizeChecked(
  ctx: Ctx,
  shell: StepShell,
  g: ListedGroup,
  live: (MemberDomain & { slot: number })[],
) {
  const host = getHaGroup(ctx.fleet, g.label).clientHost;
  const loggedIn: typeof live = [];
  const attempts: string[] = [];
  let conflicts: { slots: readonly [number, number] }[] = [];
  let warnings: readonly string[] = [];
  let failure: unknown;
  try {
    // One attempt each, never retried; synchronize then runs without a password prompt (were one to appear — a lost
    // login — the shell holds no token for it and aborts: nothing is typed).
    for (const m of live) {
      const login = await ctx.guard.login(m.device, "co", { partition: m.partition, clientHost: host });
      loggedIn.push(m);
      attempts.push(login.attemptId);
    }
    const reply = await shell.attempt(`hagroup synchronize -group ${g.label}`, parsers.hagroupSynchronize);
    warnings = reply.ok ? reply.value.warnings : reply.error.warnings;
    const read = cloningConflictsIn(warnings);
    if (!read.ok)
      throw Object.assign(
        new UnexpectedResult(`${host}: unreadable cloning warning: ${JSON.stringify(read.unreadable)}`),
        {
          host,
          command: "hagroup synchronize",
        },
      );
    conflicts = read.conflicts;
    if (!reply.ok && conflicts.length === 0) throw reply.error;
  } catch (err) {
    failure = err;
  } finally {
    await logOut(ctx, shell, host, loggedIn, failure !== undefined);
  }
  if (failure !== undefined) throw failure;
  return { attempts, conflicts, warnings };
}

const synchronize = {
  id: "synchronize",
  title:
    "Log in as Crypto Officer on each live member (login guard), hagroup synchronize (lunacm's cloning check), log out",
  kind: "change",
  observes: observesMembers,
  facts: (r, { fleet }) =>
    domainFacts(
      r.group,
      declaredMembers(fleet, r.group).map((m) => refOf(r.group, m)),
      r.checked,
      r.findings,
      "not checked",
    ),
  commands: (p: Params, fleet: Fleet): PlannedCommand[] => {
    const g = getHaGroup(fleet, p.target);
    const on = g.clientHost;
    return [
      { via: "lunacm", on, command: "hagroup listgroups" },
      ...g.members.map((m) => ({
        via: "lunacm" as const,
        on,
        command: `role login -name co   (login guard; ${m.device}/${m.partition}, if alive)`,
        guard: { device: m.device, role: "co" as const, partition: m.partition },
      })),
      { via: "lunacm", on, command: `hagroup synchronize -group ${g.label}` },
      ...g.members.flatMap((m) => [
        { via: "lunacm" as const, on, command: `slot set -slot <slot of ${m.device}/${m.partition}>` },
        { via: "lunacm" as const, on, command: "role logout" },
      ]),
      { via: "lunacm", on, command: "hagroup listgroups" },
    ];
  },
  async run(ctx: Ctx): Promise<SyncResult> {
    const v = ctx.resultOf(validate);
    const host = getHaGroup(ctx.fleet, v.group).clientHost;
    const shell = await ctx.lunacm(host);
    // Re-read (resume-safe): which members are alive now, and whether the group needs a sync.
    const before = await listGroup(shell, v.group, host);
    const findings: HaFinding[] = [];
    const live: (MemberDomain & { slot: number })[] = [];
    for (const m of v.members) {
      const row = before.members.find((r) => r.serial === m.serial);
      if (row && isAlive(row.status) && row.slot !== null)
        live.push({ ...m, slot: row.slot, status: row.status });
      else {
        const detail = `${row ? row.status : "not listed"} on ${host}: it takes no part in lunacm's cloning check (recover it first: ha-recover)`;
        findings.push({ ...refOf(v.group, m), kind: "member-down", detail });
        findings.push({
          ...refOf(v.group, m),
          kind: "domain-unverifiable",
          detail: `not checked: ${detail}`,
        });
      }
    }
    if (live.length === 0)
      throw Object.assign(
        new UnexpectedResult(`${host}: no member of ${v.group} is alive; nothing can be checked`),
        { host },
      );
    const { attempts, conflicts, warnings } = await synchronizeChecked(ctx, shell, before, live);
    if (conflicts.length > 0) {
      const slots = conflictingSlots(
        conflicts,
        before.members[0]?.slot ?? null,
        live.map((m) => m.slot),
      );
      const foreign = live.filter((m) => slots.foreign.includes(m.slot)).map((m) => refOf(v.group, m));
      const undecided = live.filter((m) => slots.undecided.includes(m.slot)).map((m) => refOf(v.group, m));
      const named = conflicts
        .map((c) =>
          c.slots.map((s) => `slot ${s} (${live.find((m) => m.slot === s)?.device ?? "?"})`).join(" and "),
        )
        .join("; ");
      const problems = [`lunacm reports conflicting settings for private key cloning between ${named}`];
      if (undecided.length > 0)
        problems.push(
          `lunacm does not say which of ${undecided.map((m) => `${m.device}/${m.partition}`).join(" and ")} is outside the group's cloning domain: declare each member's cloningDomain in the fleet file, or recover the group's other members and run ha-sync again`,
        );
      await stop(ctx, v.group, problems, foreign, warnings.join(" "), before, undecided);
    }
    const after = await listGroup(shell, v.group, host);
    if (after.needsSync && findings.length === 0)
      throw new UnexpectedResult(`${v.group}: still 'Needs sync: yes' after hagroup synchronize`);
    return {
      group: v.group,
      neededSync: before.needsSync,
      checked: live.map((m) => refOf(v.group, m)),
      loginAttempts: attempts,
      findings,
    };
  },
} satisfies Step<Params, SyncResult>;

export const haSync = defineRunbook({
  name: "ha-sync",
  description:
    "Check that every HA member shares the group's cloning domain (fleet file, then lunacm's own check), synchronize",
  params,
  targets(p, fleet) {
    const t = resolveTarget(fleet, p.target, ["haGroup"]);
    return { devices: t.devices, clientHosts: t.clientHosts };
  },
  // A mismatch stops the job (failed). Members not checked are findings; a group that needed no sync and whose
  // members all passed lunacm's check had nothing to do.
  verdict: ({ resultOf }) => {
    const r = resultOf(synchronize);
    if (!r) return { outcome: "failed", findings: ["ha-sync finished without its synchronize result"] };
    if (r.findings.length > 0)
      return { outcome: "succeeded-with-findings", findings: r.findings.map(describeFinding) };
    return { outcome: r.neededSync ? "succeeded" : "nothing-to-do", findings: [] };
  },
  steps: [validate, synchronize],
});

/**
 * Log the CO out of every member it was logged in on (the session outlives the step: a login left in it would be
 * carried into the next step or job). After a failure, a logout that fails too is only noted: the first error is
 * the one the operator needs. A shell that is already gone took its logins with it.
 */
async function logOut(
  ctx: Ctx,
  shell: StepShell,
  host: string,
  members: { device: string; partition: string; slot: number }[],
  failing: boolean,
): Promise<void> {
  for (const m of members) {
    try {
      await shell.send(`slot set -slot ${m.slot}`, parsers.slotSet);
      await shell.send("role logout", parsers.roleLogout);
    } catch (err) {
      const why = `${host}: CO logout from ${m.device}/${m.partition} failed: ${err instanceof Error ? err.message : String(err)}`;
      await ctx.evidence.note({ logoutFailed: why }).catch(() => {});
      ctx.log.warn({ jobId: ctx.jobId, host, member: `${m.device}/${m.partition}` }, why);
      if (!failing) throw err;
    }
  }
}
