// ha-sync: synchronize an HA group only when every member shares the group's cloning domain. A synchronize across
// domains cannot clone private keys: it fails half-way or leaves members different, on the keys a bank signs with.
//
//   read:      hagroup listgroups (members, status, slots as the client sees them)
//   validate:  (a) the fleet file: each member partition's declared cloning domain = the group's cloningDomain
//              (b) the client's own answer, without copying anything: `slot set` + `partition showinfo` on each
//                  member slot; where lunacm prints a cloning-domain check value, members must agree on it
//              any failure stops the job here with a remediation plan (result + evidence); nothing is synchronized
//   sync:      the CO logs in on every member through the login guard (same lunacm session), then
//              `hagroup synchronize -group <label>` runs with no password prompt (a prompt would mean a lost login:
//              the shell has no token for it and aborts), then the CO logs out of each member; lunacm's own
//              "Synchronize may fail ... conflicting settings for private key cloning" warning is a failed
//              validation too (the job stops, with the plan)
import { z } from "zod";
import { getHaGroup } from "../src/config/model.ts";
import type { Fleet } from "../src/config/schema.ts";
import { CapabilityUnavailable, EngineError, isDeviceError, UnexpectedResult } from "../src/engine/errors.ts";
import { defineRunbook, type PlannedCommand } from "../src/engine/runbook.ts";
import type { StepContext } from "../src/engine/step-context.ts";
import { resolveTarget } from "../src/engine/targets.ts";
import { cloningFacts } from "./lib/facts.ts";
import {
  type DeclaredMember,
  declaredMembers,
  findListedGroup,
  isAlive,
  listgroupsSchema,
} from "./lib/ha.ts";

const params = z
  .object({
    /** The HA group label. */
    target: z.string().min(1),
  })
  .strict();
type Params = z.output<typeof params>;
type Ctx = StepContext<Params>;

/** The line lunacm prints where partitions (that the twin — and the reference — key on) would not clone. */
const CHECK_LABEL = "Cloning Domain Check";

const showinfo = z.object({
  serial: z.string(),
  label: z.string().nullable(),
  extra: z.record(z.string(), z.string()),
});
const synchronizeResult = z.object({
  cloningConflict: z.object({ slots: z.array(z.number()) }).nullable(),
  warnings: z.array(z.string()),
});

export interface MemberDomain extends DeclaredMember {
  slot: number | null;
  status: string;
  /** The value lunacm reports for the member's cloning domain, when it reports one. */
  clientCheck: string | null;
}

export interface RemediationStep {
  on: string;
  via: "lunash" | "lunacm";
  command: string;
  why: string;
}

export interface CloningValidation {
  group: string;
  groupDomain: string | null;
  ok: boolean;
  /** Members that do not share the group's domain, with the evidence. */
  foreign: { device: string; partition: string; serial: string; reason: string }[];
  /** Why the client's check could not decide, if it could not (e.g. a lunacm that prints no check value). */
  clientCheck: "agreed" | "disagreed" | "unavailable";
  members: MemberDomain[];
  problems: string[];
  remediation: RemediationStep[];
}

/** Validation failed: the job stops before anything is copied; the remediation plan is in the error and evidence. */
export class CloningDomainMismatch extends EngineError {
  override name = "CloningDomainMismatch";
  constructor(
    message: string,
    readonly remediation: RemediationStep[],
  ) {
    super(message);
  }
}

/** What the runbook calls on ctx.guard (src/guard JobGuard). */
interface GuardLogin {
  login(
    device: string,
    role: "co",
    opts: { partition: string; clientHost?: string },
  ): Promise<{ attemptId: string }>;
}

function groupOf(fleet: Fleet, label: string) {
  return getHaGroup(fleet, label);
}

/** The operator's way out: a new partition in the group's domain replaces the foreign member. */
export function remediationPlan(
  fleet: Fleet,
  group: string,
  foreign: { device: string; partition: string; serial: string }[],
): RemediationStep[] {
  const g = groupOf(fleet, group);
  const domain = g.cloningDomain ?? "<the group's cloning domain>";
  const steps: RemediationStep[] = [];
  for (const f of foreign) {
    const newLabel = `${f.partition}-${domain}`.slice(0, 32);
    steps.push(
      {
        on: f.device,
        via: "lunash",
        command: `partition create -partition ${newLabel}`,
        why: `a new partition on ${f.device} to replace foreign member ${f.serial}`,
      },
      {
        on: g.clientHost,
        via: "lunacm",
        command: `partition init -label ${newLabel} -domain ${domain}`,
        why: `initialise it in the group's cloning domain '${domain}' (on its slot; the domain is typed at the prompt, never from a file)`,
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
    );
  }
  return steps;
}

async function failValidation(ctx: Ctx, v: CloningValidation): Promise<never> {
  await ctx.evidence.note({ cloningValidation: v });
  ctx.log.warn(
    { jobId: ctx.jobId, group: v.group, foreign: v.foreign.map((f) => `${f.device}/${f.partition}`) },
    "HA synchronize refused: cloning domains differ",
  );
  throw new CloningDomainMismatch(
    `HA group ${v.group}: not synchronized — ${v.problems.join("; ")}. Remediation: ${v.remediation
      .map((r) => `[${r.on}] ${r.command}`)
      .join(" → ")}`,
    v.remediation,
  );
}

export const haSync = defineRunbook({
  name: "ha-sync",
  description: "Validate that every HA member shares the group's cloning domain, then hagroup synchronize",
  params,
  targets(p, fleet) {
    const t = resolveTarget(fleet, p.target, ["haGroup"]);
    return { devices: t.devices, clientHosts: t.clientHosts };
  },
  // Validation failures stop the job (failed); a group that needed no sync had nothing to do.
  verdict: ({ result }) =>
    (result("synchronize") as { synchronized?: boolean } | undefined)?.synchronized === false
      ? { outcome: "nothing-to-do", findings: [] }
      : { outcome: "succeeded", findings: [] },
  steps: [
    {
      id: "validate-domains",
      title: "Validate cloning domains: fleet file, then the client's own answer (nothing is copied)",
      kind: "read",
      observes: (p, fleet) =>
        groupOf(fleet, p.target).members.flatMap((m) => [
          { subject: `ha-member:${p.target}/${m.device}/${m.partition}`, fact: "member" },
          { subject: `ha-member:${p.target}/${m.device}/${m.partition}`, fact: "cloning-domain" },
        ]),
      commands: (p, fleet) => {
        const g = groupOf(fleet, p.target);
        const out: PlannedCommand[] = [{ via: "lunacm", on: g.clientHost, command: "hagroup listgroups" }];
        for (const m of g.members)
          out.push(
            {
              via: "lunacm",
              on: g.clientHost,
              command: `slot set -slot <slot of ${m.device}/${m.partition}>`,
            },
            { via: "lunacm", on: g.clientHost, command: "partition showinfo" },
          );
        return out;
      },
      async run(ctx): Promise<CloningValidation> {
        const g = groupOf(ctx.fleet, ctx.params.target);
        const groupDomain = g.cloningDomain ?? null;
        const declared = declaredMembers(ctx.fleet, g.label);
        const shell = await ctx.lunacm(g.clientHost);
        const listed = findListedGroup(
          await shell.send("hagroup listgroups", listgroupsSchema),
          g.label,
          g.clientHost,
        );
        const problems: string[] = [];
        const foreign: CloningValidation["foreign"] = [];
        const members: MemberDomain[] = [];
        for (const m of declared) {
          const row = listed.members.find((r) => r.serial === m.serial);
          if (!row) {
            problems.push(
              `${g.clientHost} does not list ${m.device}/${m.partition} (${m.serial}) in ${g.label}`,
            );
            members.push({ ...m, slot: null, status: "missing", clientCheck: null });
            continue;
          }
          members.push({ ...m, slot: row.slot, status: row.status, clientCheck: null });
        }
        for (const r of listed.members)
          if (!declared.some((m) => m.serial === r.serial))
            problems.push(
              `${g.clientHost} lists member ${r.serial} in ${g.label}, which the fleet file does not declare`,
            );

        // (a) The fleet file's declared domains.
        if (groupDomain === null) problems.push(`the fleet file declares no cloningDomain for ${g.label}`);
        for (const m of members)
          if (groupDomain !== null && m.declaredDomain !== groupDomain) {
            const reason = `fleet file declares domain '${m.declaredDomain ?? "(none)"}' for ${m.device}/${m.partition}, the group's is '${groupDomain}'`;
            foreign.push({ device: m.device, partition: m.partition, serial: m.serial, reason });
            problems.push(reason);
          }

        // (b) The client's own answer, member by member, with commands that copy nothing.
        for (const m of members) {
          if (!isAlive(m.status) || m.slot === null) {
            problems.push(
              `${m.device}/${m.partition} is ${m.status} on ${g.clientHost}: its domain cannot be checked (recover it first: ha-recover)`,
            );
            continue;
          }
          await shell.run(`slot set -slot ${m.slot}`);
          const info = await shell.send("partition showinfo", showinfo);
          if (info.serial !== m.serial)
            throw Object.assign(
              new UnexpectedResult(
                `${g.clientHost}: slot ${m.slot} holds partition ${info.serial}, expected ${m.serial} (${m.device}/${m.partition})`,
              ),
              { host: g.clientHost, command: "partition showinfo" },
            );
          m.clientCheck = info.extra[CHECK_LABEL] ?? null;
        }
        const checks = members.filter((m) => m.clientCheck !== null);
        let clientCheck: CloningValidation["clientCheck"] = "unavailable";
        if (checks.length > 0 && checks.length === members.filter((m) => isAlive(m.status)).length) {
          const reference = referenceCheck(checks);
          const odd = checks.filter((m) => m.clientCheck !== reference);
          clientCheck = odd.length === 0 ? "agreed" : "disagreed";
          for (const m of odd)
            if (!foreign.some((f) => f.serial === m.serial)) {
              const reason = `${g.clientHost} reports ${m.device}/${m.partition} (${m.serial}) in another cloning domain than the rest of ${g.label} (check value ${m.clientCheck} vs ${reference})`;
              foreign.push({ device: m.device, partition: m.partition, serial: m.serial, reason });
              problems.push(reason);
            }
        }
        const v: CloningValidation = {
          group: g.label,
          groupDomain,
          ok: problems.length === 0,
          foreign,
          clientCheck,
          members,
          problems,
          remediation: remediationPlan(ctx.fleet, g.label, foreign),
        };
        // Recorded before a failed validation stops the job: a foreign member is the fleet's state either way.
        await ctx.facts.observe(...cloningFacts(g.label, v.members, v.foreign, isAlive));
        if (!v.ok) await failValidation(ctx, v);
        await ctx.evidence.note({ cloningValidation: v });
        return v;
      },
    },
    {
      id: "synchronize",
      title: "Log in as Crypto Officer on each member (login guard), hagroup synchronize, log out",
      kind: "change",
      commands: (p, fleet) => {
        const g = groupOf(fleet, p.target);
        const out: PlannedCommand[] = [{ via: "lunacm", on: g.clientHost, command: "hagroup listgroups" }];
        for (const m of g.members)
          out.push({
            via: "lunacm",
            on: g.clientHost,
            command: `role login -name co   (login guard; ${m.device}/${m.partition})`,
          });
        out.push(
          { via: "lunacm", on: g.clientHost, command: `hagroup synchronize -group ${g.label}` },
          { via: "lunacm", on: g.clientHost, command: "hagroup listgroups" },
        );
        for (const m of g.members)
          out.push(
            {
              via: "lunacm",
              on: g.clientHost,
              command: `slot set -slot <slot of ${m.device}/${m.partition}>`,
            },
            { via: "lunacm", on: g.clientHost, command: "role logout" },
          );
        return out;
      },
      async run(ctx) {
        const g = groupOf(ctx.fleet, ctx.params.target);
        const v = ctx.requireCheckpoint("validate-domains") as unknown as CloningValidation;
        if (!v.ok) throw new UnexpectedResult(`${g.label}: validation did not pass; refusing to synchronize`);
        const shell = await ctx.lunacm(g.clientHost);
        // Re-read (resume-safe): a group that needs no sync is left alone.
        const before = findListedGroup(
          await shell.send("hagroup listgroups", listgroupsSchema),
          g.label,
          g.clientHost,
        );
        if (!before.needsSync)
          return { group: g.label, synchronized: false, reason: "the group does not need a sync" };
        const guard = ctx.guard as Partial<GuardLogin>;
        if (typeof guard.login !== "function")
          throw new CapabilityUnavailable(
            `${g.label}: the login guard offers no login(); synchronize needs the CO`,
          );
        // Every member must be alive and listed where validation saw it: the CO is logged in on each one.
        const members = declaredMembers(ctx.fleet, g.label).map((m) => {
          const row = before.members.find((r) => r.serial === m.serial);
          if (!row || !isAlive(row.status) || row.slot === null)
            throw Object.assign(
              new UnexpectedResult(
                `${g.clientHost}: ${m.device}/${m.partition} (${m.serial}) is ${row ? row.status : "not listed"} in ${g.label} now; not synchronized (recover it first: ha-recover)`,
              ),
              { host: g.clientHost, command: "hagroup listgroups" },
            );
          return { ...m, slot: row.slot };
        });

        // The CO logs in on each member through the guard (its ledger, its budget, one attempt each, never
        // retried), in this same lunacm session. Synchronize then runs without a password prompt; were one to
        // appear (a login lost), the shell holds no token for it and aborts: nothing is typed.
        const loggedIn: typeof members = [];
        const attempts: string[] = [];
        let warning: string | null = null;
        let failure: unknown;
        try {
          for (const m of members) {
            const login = await guard.login(m.device, "co", {
              partition: m.partition,
              clientHost: g.clientHost,
            });
            loggedIn.push(m);
            attempts.push(login.attemptId);
          }
          try {
            const r = await shell.send(`hagroup synchronize -group ${g.label}`, synchronizeResult);
            if (r.cloningConflict)
              warning = r.warnings.join(" ") || "conflicting settings for private key cloning";
          } catch (err) {
            if (!isDeviceError(err) || !/Synchronize may fail|private key cloning/i.test(err.message))
              throw err;
            warning = err.message;
          }
        } catch (err) {
          failure = err;
        } finally {
          await logOut(ctx, shell, g.clientHost, loggedIn, failure !== undefined);
        }
        if (failure !== undefined) throw failure;
        if (warning !== null) {
          // lunacm names the two slots that conflict; the member in the second one is the odd one out.
          const slots = /slot (\d+) and slot (\d+)/.exec(warning);
          const oddSerial = before.members.find((r) => slots && r.slot === Number(slots[2]))?.serial;
          const foreign = declaredMembers(ctx.fleet, g.label).filter((m) => m.serial === oddSerial);
          await ctx.facts.observe(
            ...cloningFacts(
              g.label,
              before.members.flatMap((r) => {
                const m = declaredMembers(ctx.fleet, g.label).find((x) => x.serial === r.serial);
                return m ? [{ device: m.device, partition: m.partition, status: r.status }] : [];
              }),
              foreign.map((f) => ({ device: f.device, partition: f.partition, reason: warning! })),
              isAlive,
            ),
          );
          await failValidation(ctx, {
            ...v,
            ok: false,
            problems: [`lunacm refused to synchronize: ${warning}`],
            foreign: foreign.map((f) => ({
              device: f.device,
              partition: f.partition,
              serial: f.serial,
              reason: warning!,
            })),
            remediation: remediationPlan(ctx.fleet, g.label, foreign),
          });
        }
        const after = findListedGroup(
          await shell.send("hagroup listgroups", listgroupsSchema),
          g.label,
          g.clientHost,
        );
        if (after.needsSync)
          throw new UnexpectedResult(`${g.label}: still 'Needs sync: yes' after hagroup synchronize`);
        return { group: g.label, synchronized: true, loginAttempts: attempts };
      },
    },
  ],
});

/**
 * Log the CO out of every member it was logged in on (the session outlives the step: a login left in it would be
 * carried into the next step or job). After a failure, a logout that fails too is only noted: the first error is
 * the one the operator needs. A shell that is already gone took its logins with it.
 */
async function logOut(
  ctx: Ctx,
  shell: Awaited<ReturnType<Ctx["lunacm"]>>,
  host: string,
  members: { device: string; partition: string; slot: number }[],
  failing: boolean,
): Promise<void> {
  for (const m of members) {
    try {
      await shell.run(`slot set -slot ${m.slot}`);
      await shell.run("role logout");
    } catch (err) {
      const why = `${host}: CO logout from ${m.device}/${m.partition} failed: ${(err as Error).message}`;
      await ctx.evidence.note({ logoutFailed: why }).catch(() => {});
      ctx.log.warn({ jobId: ctx.jobId, host, member: `${m.device}/${m.partition}` }, why);
      if (!failing) throw err;
    }
  }
}

/** The check value most members share; on a tie, the first member's (the group's primary). */
function referenceCheck(members: MemberDomain[]): string {
  const counts = new Map<string, number>();
  for (const m of members) counts.set(m.clientCheck!, (counts.get(m.clientCheck!) ?? 0) + 1);
  let best = members[0]!.clientCheck!;
  for (const [value, n] of counts) if (n > (counts.get(best) ?? 0)) best = value;
  return best;
}
