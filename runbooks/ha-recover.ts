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
import { parsers } from "../parsers/index.ts";
import { getDevice, getHaGroup } from "../src/config/model.ts";
import type { Fleet, HaGroup } from "../src/config/schema.ts";
import { UnexpectedResult } from "../src/engine/errors.ts";
import type { Verdict } from "../src/engine/outcome.ts";
import { defineRunbook, type JobTargets, type PlannedCommand, type Step } from "../src/engine/runbook.ts";
import type { StepContext, StepShell } from "../src/engine/step-context.ts";
import { memberKey, recordFailure, recordSuccess } from "./lib/breaker.ts";
import { isAlive } from "./lib/ha.ts";
import { describeFinding, type HaFinding, type SkipReason } from "./lib/ha-findings.ts";
import {
  type GroupInspection,
  type GroupRecovery,
  inspectGroup,
  inspectionFacts,
  listed,
  recoveryFacts,
} from "./lib/ha-inspect.ts";
import { haSettingsFact, memberFactRefs } from "./lib/member-facts.ts";

export type { GroupInspection, GroupRecovery, MemberCheck } from "./lib/ha-inspect.ts";

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

function groupsOf(p: Params, fleet: Fleet): HaGroup[] {
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

const inspect = {
  id: "inspect",
  title: (h: string) =>
    `List ${h}'s HA groups; check each down member (breaker, NTLS reachable, partition intact)`,
  kind: "read",
  forEach: "clientHost",
  observes: (p: Params, fleet: Fleet, h: string | undefined) =>
    memberFactRefs(
      fleet,
      groupsOnHost(p, fleet, h!).map((g) => g.label),
    ),
  facts: (r) => inspectionFacts(r.groups),
  commands: (p: Params, fleet: Fleet, h: string | undefined) => {
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
  async run(ctx: Ctx): Promise<{ host: string; groups: GroupInspection[] }> {
    const host = ctx.target!;
    const groups: GroupInspection[] = [];
    for (const g of groupsOnHost(ctx.params, ctx.fleet, host)) groups.push(await inspectGroup(ctx, g));
    return { host, groups };
  },
} satisfies Step<Params, { host: string; groups: GroupInspection[] }>;

const recover = {
  id: "recover",
  title: (h: string) =>
    `hagroup recover on ${h} for groups with recoverable down members; verify with listgroups`,
  kind: "change",
  forEach: "clientHost",
  // What recover left: members it brought back, and those still down (re-read with listgroups after it).
  facts: (r) => recoveryFacts(r.groups),
  commands: (p: Params, fleet: Fleet, h: string | undefined) =>
    groupsOnHost(p, fleet, h!).flatMap((g) => [
      `hagroup recover -group ${g.label}   (only if a member is down and recoverable)`,
      "hagroup listgroups",
    ]),
  async run(ctx: Ctx): Promise<{ host: string; groups: GroupRecovery[] }> {
    const host = ctx.target!;
    const inspected = ctx.resultOf(inspect, host);
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
      const before = await listed(ctx, g.group, host);
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
      // lunacm reports members it could not bring back as its error (with a warning per member); the listing
      // below says which members are alive now either way.
      const recovered = await shell.attempt(`hagroup recover -group ${g.group}`, parsers.hagroupRecover);
      if (!recovered.ok) {
        const e = recovered.error;
        rec.recoverError = [`${e.code} ${e.errorName}: ${e.deviceMessage}`, ...e.warnings].join(" ");
      }
      const after = await listed(ctx, g.group, host);
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
} satisfies Step<Params, { host: string; groups: GroupRecovery[] }>;

/** A value the -show form of `hagroup retry` / `hagroup interval` must print. */
function shown<T>(value: T | null, host: string, command: string): T {
  if (value === null)
    throw Object.assign(new UnexpectedResult(`${host}: '${command}' printed no value`), { host, command });
  return value;
}

async function readSettings(
  shell: StepShell,
  host: string,
): Promise<{ count: number; intervalSeconds: number }> {
  const retry = await shell.send("hagroup retry -show", parsers.hagroupRetry);
  const interval = await shell.send("hagroup interval -show", parsers.hagroupInterval);
  return {
    count: shown(retry.count, host, "hagroup retry -show"),
    intervalSeconds: shown(interval.intervalSeconds, host, "hagroup interval -show"),
  };
}

const haSettings = {
  id: "ha-settings",
  title: (h: string) =>
    `Set ${h}'s HA retry count and interval to the fleet file's values (report when they differed)`,
  kind: "change",
  forEach: "clientHost",
  observes: (_p: Params, _f: Fleet, h: string | undefined) => [
    { subject: `client:${h}`, fact: "ha-settings" },
  ],
  facts: (r) => [haSettingsFact(r.host, r.before, r.wanted, r.changed)],
  commands: (p: Params, fleet: Fleet, h: string | undefined) => {
    const want = wantedSettings(p, fleet, h!);
    return [
      "hagroup retry -show",
      "hagroup interval -show",
      `hagroup retry -count ${want.count}   (only if different)`,
      `hagroup interval -interval ${want.intervalSeconds}   (only if different)`,
    ];
  },
  async run(ctx: Ctx): Promise<HaSettingsResult> {
    const host = ctx.target!;
    const want = wantedSettings(ctx.params, ctx.fleet, host);
    const shell = await ctx.lunacm(host);
    const before = await readSettings(shell, host);
    const changed: string[] = [];
    if (before.count !== want.count) {
      await shell.send(`hagroup retry -count ${want.count}`, parsers.hagroupRetry);
      changed.push(`retry count ${before.count} -> ${want.count}`);
    }
    if (before.intervalSeconds !== want.intervalSeconds) {
      await shell.send(`hagroup interval -interval ${want.intervalSeconds}`, parsers.hagroupInterval);
      changed.push(`interval ${before.intervalSeconds}s -> ${want.intervalSeconds}s`);
    }
    const after = changed.length > 0 ? await readSettings(shell, host) : before;
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
} satisfies Step<Params, HaSettingsResult>;

export interface HaSettingsResult {
  host: string;
  before: { count: number; intervalSeconds: number };
  wanted: { count: number; intervalSeconds: number };
  matched: boolean;
  changed: string[];
}

export interface HaRecoverReport {
  groups: {
    group: string;
    clientHost: string;
    downBefore: string[];
    recovered: string[];
    stillDown: string[];
    breakerTripped: string[];
    skipped: { member: string; reason: SkipReason; why: string }[];
    settingsMatched: boolean;
    settingsChanged: string[];
  }[];
  breakersOpen: string[];
  /** Every member fact and setting change, typed (for the report and the fleet state model). */
  findings: HaFinding[];
}

const report = {
  id: "report",
  title:
    "Per group: members recovered, still down, skipped (breaker, unreachable, partition) and settings fixed",
  kind: "read",
  async run(ctx: Ctx): Promise<HaRecoverReport> {
    const findings: HaFinding[] = [];
    const groups = ctx.targets.clientHosts.flatMap((h) => {
      const rec = ctx.resultOf(recover, h).groups;
      const settings = ctx.resultOf(haSettings, h);
      if (!settings.matched)
        findings.push({ kind: "ha-settings-changed", host: h, changed: settings.changed });
      return ctx.resultOf(inspect, h).groups.map((g) => {
        const r = rec.find((x) => x.group === g.group);
        for (const m of g.members) {
          const ref = { group: g.group, device: m.device, partition: m.partition, serial: m.serial };
          const key = memberKey(m.device, m.partition);
          if (m.skip) findings.push({ ...ref, kind: "member-down-skipped", ...m.skip });
          else if (r?.recovered.includes(key)) findings.push({ ...ref, kind: "member-recovered" });
          else if (r?.stillDown.includes(key))
            findings.push({ ...ref, kind: "member-still-down", detail: r.recoverError ?? "" });
        }
        return {
          group: g.group,
          clientHost: h,
          downBefore: g.down,
          recovered: r?.recovered ?? [],
          stillDown: r?.stillDown ?? [],
          breakerTripped: r?.breakerTripped ?? [],
          skipped: g.members.flatMap((m) =>
            m.skip
              ? [{ member: memberKey(m.device, m.partition), reason: m.skip.reason, why: m.skip.detail }]
              : [],
          ),
          settingsMatched: settings.matched,
          settingsChanged: settings.changed,
        };
      });
    });
    const breakersOpen = groups.flatMap((g) =>
      g.skipped.filter((s) => s.reason === "breaker-open").map((s) => `${g.group}:${s.member}`),
    );
    return { groups, breakersOpen, findings };
  },
} satisfies Step<Params, HaRecoverReport>;

export const haRecover = defineRunbook({
  name: "ha-recover",
  description:
    "Recover down HA members (reachable, partition intact, breaker closed) and align retry/interval",
  params,
  targets: targetsOf,
  verdict: ({ resultOf }) => {
    const r = resultOf(report);
    if (!r) return { outcome: "failed", findings: ["ha-recover finished without its report"] };
    return haRecoverVerdict(r);
  },
  steps: [inspect, recover, haSettings, report],
});

/**
 * A member still down after `hagroup recover` is a failed job (its goal was not reached), never green; a down member
 * left alone (breaker open, appliance unreachable, partition not intact) is a finding; nothing down and settings as
 * the fleet file says: nothing to do.
 */
function haRecoverVerdict(r: HaRecoverReport): Verdict {
  const lines = (kinds: HaFinding["kind"][]) =>
    r.findings.filter((f) => kinds.includes(f.kind)).map(describeFinding);
  const stillDown = lines(["member-still-down"]);
  const skipped = lines(["member-down-skipped"]);
  if (stillDown.length > 0) return { outcome: "failed", findings: [...stillDown, ...skipped] };
  if (skipped.length > 0) return { outcome: "succeeded-with-findings", findings: skipped };
  const acted = r.groups.some((g) => g.recovered.length > 0 || !g.settingsMatched);
  return { outcome: acted ? "succeeded" : "nothing-to-do", findings: [] };
}

/** Member state as inspect saw it (down members with why they are left alone), and partitions it checked. */
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
