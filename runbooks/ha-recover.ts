// ha-recover: bring failed HA members back, the way an HSM admin does it by hand, and make the group recover by
// itself next time.
//
//   per group:   hagroup listgroups on the group's client host -> which members are down
//   per member:  breaker closed? (a member that failed fleet.defaults.breakerThreshold recoveries in a row is left
//                alone until `lunafleet ha release-breaker <group> <member>`)
//                its appliance reachable (TCP to the NTLS port) and its partition intact (`partition show -partition
//                <label>`: not zeroized, objects > 0)
//   per group:   hagroup recover -group <label> (only when some member is down and passed its checks)
//                hagroup listgroups again -> which members are alive now; failures count towards the breaker
//   per host:    hagroup retry / hagroup interval as the fleet file says (reported when they were not)
import { z } from "zod";
import { getDevice, getHaGroup } from "../src/config/model.ts";
import type { Fleet, HaGroup } from "../src/config/schema.ts";
import { isDeviceError, UnexpectedResult } from "../src/engine/errors.ts";
import type { Verdict } from "../src/engine/outcome.ts";
import { defineRunbook, type JobTargets, type PlannedCommand } from "../src/engine/runbook.ts";
import type { StepContext } from "../src/engine/step-context.ts";
import { breakerOpenGauge, memberKey, readBreaker, recordFailure, recordSuccess } from "./lib/breaker.ts";
import { haSettingsFact, memberFactRefs, memberFacts, partitionFact } from "./lib/facts.ts";
import { declaredMembers, findListedGroup, isAlive, listgroupsSchema } from "./lib/ha.ts";

const params = z
  .object({
    /** An HA group label; omit with auto=true to recover every group marked `auto: true`. */
    target: z.string().min(1).optional(),
    /** Every group the fleet file marks `auto: true` (what `lunafleet daemon` schedules). */
    auto: z.boolean().default(false),
    timeoutMs: z.number().int().positive().max(120_000).optional(),
  })
  .strict();
type Params = z.output<typeof params>;
type Ctx = StepContext<Params>;

const partitionShow = z.object({
  serial: z.string(),
  name: z.string(),
  psoZeroized: z.boolean().nullable(),
  objectCount: z.number().nullable(),
});
const retryShow = z.string();

export interface MemberCheck {
  device: string;
  partition: string;
  serial: string;
  /** Status in listgroups before recovery. */
  status: string;
  breaker: { failures: number; open: boolean };
  reachable: boolean | null;
  partitionIntact: boolean | null;
  /** Why this member is not recovered by this job (breaker open, unreachable, partition gone), if so. */
  skip: string | null;
}

export interface GroupInspection {
  group: string;
  clientHost: string;
  members: MemberCheck[];
  down: string[];
}

export interface GroupRecovery {
  group: string;
  attempted: string[];
  recovered: string[];
  stillDown: string[];
  breakerTripped: string[];
  recoverError: string | null;
}

/** Groups a job works on: the target group, or every `auto: true` group. */
export function groupsOf(p: Params, fleet: Fleet): HaGroup[] {
  if (p.auto) {
    if (p.target !== undefined)
      throw new UnexpectedResult("ha-recover: give an HA group or auto=true, not both");
    return fleet.haGroups.filter((g) => g.auto);
  }
  if (p.target === undefined) throw new UnexpectedResult("ha-recover: name an HA group, or pass auto=true");
  return [getHaGroup(fleet, p.target)];
}

function targetsOf(p: Params, fleet: Fleet): JobTargets {
  const groups = groupsOf(p, fleet);
  const devices = new Set(groups.flatMap((g) => g.members.map((m) => m.device)));
  const hosts = new Set(groups.map((g) => g.clientHost));
  return {
    devices: fleet.devices.filter((d) => devices.has(d.name)).map((d) => d.name),
    clientHosts: fleet.clientHosts.filter((h) => hosts.has(h.name)).map((h) => h.name),
  };
}

const groupsOnHost = (p: Params, fleet: Fleet, host: string) =>
  groupsOf(p, fleet).filter((g) => g.clientHost === host);

async function listgroups(ctx: Ctx, host: string) {
  const shell = await ctx.lunacm(host);
  return shell.send("hagroup listgroups", listgroupsSchema);
}

async function inspectGroup(ctx: Ctx, group: HaGroup): Promise<GroupInspection> {
  const threshold = ctx.fleet.defaults.breakerThreshold;
  const listed = findListedGroup(await listgroups(ctx, group.clientHost), group.label, group.clientHost);
  const timeoutMs = ctx.params.timeoutMs ?? ctx.fleet.defaults.timeouts.connectMs;
  const members: MemberCheck[] = [];
  for (const m of declaredMembers(ctx.fleet, group.label)) {
    const row = listed.members.find((r) => r.serial === m.serial);
    if (!row)
      throw Object.assign(
        new UnexpectedResult(
          `${group.clientHost}: HA group ${group.label} does not list member ${m.serial} (${m.device}/${m.partition}) that the fleet file declares`,
        ),
        { host: group.clientHost, command: "hagroup listgroups" },
      );
    const key = memberKey(m.device, m.partition);
    const breaker = await readBreaker(ctx.state, group.label, key, threshold);
    const check: MemberCheck = {
      device: m.device,
      partition: m.partition,
      serial: m.serial,
      status: row.status,
      breaker,
      reachable: null,
      partitionIntact: null,
      skip: null,
    };
    if (isAlive(row.status)) {
      // An alive member closes its breaker (it came back, by itself or by hand).
      if (breaker.failures > 0) await recordSuccess(ctx.state, group.label, key);
      check.breaker = { failures: 0, open: false };
      members.push(check);
      continue;
    }
    if (breaker.open) {
      check.skip = `breaker open after ${breaker.failures} failed recoveries: not touched until 'lunafleet ha release-breaker ${group.label} ${key}'`;
      ctx.log.warn(
        { jobId: ctx.jobId, group: group.label, member: key, failures: breaker.failures },
        "HA breaker open",
      );
      members.push(check);
      continue;
    }
    const dev = getDevice(ctx.fleet, m.device);
    const tcp = await ctx.tcp.tcp(dev.host, dev.ntlsPort, timeoutMs);
    check.reachable = tcp.connected;
    if (!tcp.connected) {
      check.skip = `${m.device} NTLS ${dev.host}:${dev.ntlsPort} not reachable (${tcp.error ?? "no connection"})`;
      members.push(check);
      continue;
    }
    const shell = await ctx.lunash(m.device);
    try {
      const par = await shell.send(`partition show -partition ${m.partition}`, partitionShow);
      check.partitionIntact =
        par.serial === m.serial && par.psoZeroized !== true && (par.objectCount ?? 0) > 0;
      if (!check.partitionIntact)
        check.skip = `partition ${m.partition} on ${m.device} is not intact (serial ${par.serial}, zeroized ${par.psoZeroized}, objects ${par.objectCount})`;
    } catch (err) {
      if (!isDeviceError(err)) throw err;
      check.partitionIntact = false;
      check.skip = `partition ${m.partition} on ${m.device}: ${err.message}`;
    }
    members.push(check);
  }
  return {
    group: group.label,
    clientHost: group.clientHost,
    members,
    down: members.filter((x) => !isAlive(x.status)).map((x) => memberKey(x.device, x.partition)),
  };
}

export const haRecover = defineRunbook({
  name: "ha-recover",
  description:
    "Recover down HA members (reachable, partition intact, breaker closed) and align retry/interval",
  params,
  targets: targetsOf,
  verdict: ({ result }) => haRecoverVerdict(result("report") as unknown as HaRecoverReport),
  steps: [
    {
      id: "inspect",
      title: (h) =>
        `List ${h}'s HA groups; check each down member (breaker, NTLS reachable, partition intact)`,
      kind: "read",
      forEach: "clientHost",
      observes: (p, fleet, h) =>
        memberFactRefs(
          fleet,
          groupsOnHost(p, fleet, h!).map((g) => g.label),
        ),
      facts: (r) => inspectionFacts((r as unknown as { groups: GroupInspection[] }).groups),
      commands: (p, fleet, h) => {
        const out: PlannedCommand[] = [{ via: "lunacm", on: h!, command: "hagroup listgroups" }];
        for (const g of groupsOnHost(p, fleet, h!))
          for (const m of g.members) {
            const d = getDevice(fleet, m.device);
            out.push(
              { via: "tcp", on: `${d.host}:${d.ntlsPort}`, command: "connect (only if the member is down)" },
              {
                via: "lunash",
                on: m.device,
                command: `partition show -partition ${m.partition}   (only if down)`,
              },
            );
          }
        return out;
      },
      async run(ctx): Promise<{ host: string; groups: GroupInspection[] }> {
        const host = ctx.target!;
        const groups: GroupInspection[] = [];
        for (const g of groupsOnHost(ctx.params, ctx.fleet, host)) groups.push(await inspectGroup(ctx, g));
        return { host, groups };
      },
    },
    {
      id: "recover",
      title: (h) =>
        `hagroup recover on ${h} for groups with recoverable down members; verify with listgroups`,
      kind: "change",
      forEach: "clientHost",
      // What recover left: members it brought back, and those still down (re-read with listgroups after it).
      facts: (r) => recoveryFacts((r as unknown as { groups: GroupRecovery[] }).groups),
      commands: (p, fleet, h) =>
        groupsOnHost(p, fleet, h!).flatMap((g) => [
          `hagroup recover -group ${g.label}   (only if a member is down and recoverable)`,
          "hagroup listgroups",
        ]),
      async run(ctx): Promise<{ host: string; groups: GroupRecovery[] }> {
        const host = ctx.target!;
        const inspected = ctx.requireCheckpoint("inspect", host) as unknown as { groups: GroupInspection[] };
        const threshold = ctx.fleet.defaults.breakerThreshold;
        const out: GroupRecovery[] = [];
        for (const g of inspected.groups) {
          const candidates = g.members.filter((m) => !isAlive(m.status) && m.skip === null);
          const rec: GroupRecovery = {
            group: g.group,
            attempted: [],
            recovered: [],
            stillDown: [],
            breakerTripped: [],
            recoverError: null,
          };
          if (candidates.length === 0) {
            out.push(rec);
            continue;
          }
          // Re-read first (resume-safe): members that came back meanwhile are not recovered again.
          const before = findListedGroup(await listgroups(ctx, host), g.group, host);
          const stillDown = candidates.filter(
            (c) => !isAlive(before.members.find((r) => r.serial === c.serial)?.status ?? "down"),
          );
          for (const c of candidates.filter((x) => !stillDown.includes(x))) {
            rec.recovered.push(memberKey(c.device, c.partition));
            await recordSuccess(ctx.state, g.group, memberKey(c.device, c.partition));
          }
          if (stillDown.length === 0) {
            out.push(rec);
            continue;
          }
          rec.attempted = stillDown.map((c) => memberKey(c.device, c.partition));
          const shell = await ctx.lunacm(host);
          try {
            await shell.run(`hagroup recover -group ${g.group}`);
          } catch (err) {
            // lunacm reports members it could not bring back as an error; the listing below says which.
            if (!isDeviceError(err)) throw err;
            rec.recoverError = err.message;
          }
          const after = findListedGroup(await listgroups(ctx, host), g.group, host);
          for (const c of stillDown) {
            const key = memberKey(c.device, c.partition);
            if (isAlive(after.members.find((r) => r.serial === c.serial)?.status ?? "down")) {
              rec.recovered.push(key);
              await recordSuccess(ctx.state, g.group, key);
              continue;
            }
            rec.stillDown.push(key);
            const b = await recordFailure(ctx.state, g.group, key, threshold);
            if (b.open) {
              rec.breakerTripped.push(key);
              ctx.log.warn(
                { jobId: ctx.jobId, group: g.group, member: key, failures: b.failures },
                `HA breaker open: ${key} failed ${b.failures} recoveries in a row; no further attempts until released`,
              );
            }
          }
          await ctx.evidence.note({ haRecover: rec });
          out.push(rec);
        }
        return { host, groups: out };
      },
    },
    {
      id: "ha-settings",
      title: (h) =>
        `Set ${h}'s HA retry count and interval to the fleet file's values (report when they differed)`,
      kind: "change",
      forEach: "clientHost",
      observes: (_p, _f, h) => [{ subject: `client:${h}`, fact: "ha-settings" }],
      facts: (r) => {
        const s = r as unknown as {
          host: string;
          before: { count: number; intervalSeconds: number };
          wanted: { count: number; intervalSeconds: number };
          changed: string[];
        };
        return [haSettingsFact(s.host, s.before, s.wanted, s.changed)];
      },
      commands: (p, fleet, h) => {
        const want = wantedSettings(p, fleet, h!);
        return [
          "hagroup retry -show",
          "hagroup interval -show",
          `hagroup retry -count ${want.count}   (only if different)`,
          `hagroup interval -interval ${want.intervalSeconds}   (only if different)`,
        ];
      },
      async run(ctx) {
        const host = ctx.target!;
        const want = wantedSettings(ctx.params, ctx.fleet, host);
        const shell = await ctx.lunacm(host);
        const read = async () => ({
          count: readNumber(
            await shell.send("hagroup retry -show", retryShow),
            /Maximum Auto Recovery Retry:\s*(-?\d+)/,
            host,
            "hagroup retry -show",
          ),
          intervalSeconds: readNumber(
            await shell.send("hagroup interval -show", retryShow),
            /Auto Recovery Poll Interval:\s*(\d+)\s*seconds/,
            host,
            "hagroup interval -show",
          ),
        });
        const before = await read();
        const changed: string[] = [];
        if (before.count !== want.count) {
          await shell.run(`hagroup retry -count ${want.count}`);
          changed.push(`retry count ${before.count} -> ${want.count}`);
        }
        if (before.intervalSeconds !== want.intervalSeconds) {
          await shell.run(`hagroup interval -interval ${want.intervalSeconds}`);
          changed.push(`interval ${before.intervalSeconds}s -> ${want.intervalSeconds}s`);
        }
        const after = changed.length > 0 ? await read() : before;
        if (after.count !== want.count || after.intervalSeconds !== want.intervalSeconds)
          throw Object.assign(
            new UnexpectedResult(
              `${host}: HA settings read back as retry ${after.count}, interval ${after.intervalSeconds}s after setting ${want.count}/${want.intervalSeconds}s`,
            ),
            { host },
          );
        if (changed.length > 0)
          ctx.log.warn({ jobId: ctx.jobId, host, changed }, "HA retry/interval did not match the fleet file");
        return { host, before, wanted: want, matched: changed.length === 0, changed };
      },
    },
    {
      id: "report",
      title:
        "Per group: members recovered, still down, skipped (breaker, unreachable, partition) and settings fixed",
      kind: "read",
      async run(ctx) {
        const groups = ctx.targets.clientHosts.flatMap((h) => {
          const ins = (ctx.requireCheckpoint("inspect", h) as unknown as { groups: GroupInspection[] })
            .groups;
          const rec = (ctx.requireCheckpoint("recover", h) as unknown as { groups: GroupRecovery[] }).groups;
          const settings = ctx.requireCheckpoint("ha-settings", h) as unknown as {
            matched: boolean;
            changed: string[];
          };
          return ins.map((g) => {
            const r = rec.find((x) => x.group === g.group);
            return {
              group: g.group,
              clientHost: h,
              downBefore: g.down,
              recovered: r?.recovered ?? [],
              stillDown: r?.stillDown ?? [],
              breakerTripped: r?.breakerTripped ?? [],
              skipped: g.members
                .filter((m) => m.skip !== null)
                .map((m) => ({ member: memberKey(m.device, m.partition), why: m.skip })),
              settingsMatched: settings.matched,
              settingsChanged: settings.changed,
            };
          });
        });
        const breakersOpen = groups.flatMap((g) =>
          g.skipped.filter((s) => /breaker open/.test(s.why ?? "")).map((s) => `${g.group}:${s.member}`),
        );
        void breakerOpenGauge;
        return { groups, breakersOpen };
      },
    },
  ],
});

export interface HaRecoverReport {
  groups: {
    group: string;
    downBefore: string[];
    recovered: string[];
    stillDown: string[];
    skipped: { member: string; why: string | null }[];
    settingsMatched: boolean;
    settingsChanged: string[];
  }[];
  breakersOpen: string[];
}

/**
 * A member still down after `hagroup recover` is a failed job (its goal was not reached), never green; a down member
 * left alone (breaker open, appliance unreachable, partition not intact) is a finding; nothing down and settings as
 * the fleet file says: nothing to do.
 */
export function haRecoverVerdict(report: HaRecoverReport): Verdict {
  const stillDown = report.groups.flatMap((g) =>
    g.stillDown.map((m) => `${g.group}: ${m} still down after hagroup recover`),
  );
  const skipped = report.groups.flatMap((g) =>
    g.skipped.map((s) => `${g.group}: ${s.member} down, not recovered: ${s.why ?? "skipped"}`),
  );
  if (stillDown.length > 0) return { outcome: "failed", findings: [...stillDown, ...skipped] };
  if (skipped.length > 0) return { outcome: "succeeded-with-findings", findings: skipped };
  const acted = report.groups.some((g) => g.recovered.length > 0 || !g.settingsMatched);
  return { outcome: acted ? "succeeded" : "nothing-to-do", findings: [] };
}

/** Member state as inspect saw it (down members with why they are left alone), and partitions it checked. */
function inspectionFacts(groups: GroupInspection[]) {
  return groups.flatMap((g) => [
    ...memberFacts(
      g.members.map((m) => ({
        group: g.group,
        device: m.device,
        partition: m.partition,
        status: m.status,
        alive: isAlive(m.status),
        why: m.skip,
      })),
      "seen",
    ),
    ...g.members
      .filter((m) => m.partitionIntact !== null)
      .map((m) => partitionFact(m.device, m.partition, m.partitionIntact === true, m.skip)),
  ]);
}

function recoveryFacts(groups: GroupRecovery[]) {
  const member = (group: string, key: string, alive: boolean) => {
    const [device = key, partition = ""] = key.split("/");
    return { group, device, partition, status: alive ? "alive" : "down", alive };
  };
  return groups.flatMap((g) =>
    memberFacts(
      [
        ...g.recovered.map((k) => member(g.group, k, true)),
        ...g.stillDown.map((k) => member(g.group, k, false)),
      ],
      "after-recover",
    ),
  );
}

/** One client host has one retry/interval setting for all its groups: the strictest of its groups' values. */
function wantedSettings(p: Params, fleet: Fleet, host: string): { count: number; intervalSeconds: number } {
  const gs = fleet.haGroups.filter(
    (g) => g.clientHost === host && groupsOf(p, fleet).some((x) => x.label === g.label),
  );
  const counts = gs.map((g) => g.retry.count);
  // -1 (unlimited) wins over any finite count; otherwise the largest.
  const count = counts.includes(-1) ? -1 : Math.max(...counts);
  const intervalSeconds = Math.min(...gs.map((g) => g.retry.intervalSeconds));
  return { count, intervalSeconds };
}

function readNumber(text: string, re: RegExp, host: string, command: string): number {
  const m = re.exec(text);
  if (!m)
    throw Object.assign(
      new UnexpectedResult(`${host}: '${command}' printed no value this runbook can read`),
      {
        host,
        command,
      },
    );
  return Number(m[1]);
}
