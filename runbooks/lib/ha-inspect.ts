// ha-recover's inspection of an HA group's members, and what it and the recovery tell the fleet state model: which
// members are down, and for each down member whether this job may try to recover it (breaker closed, its appliance's
// NTLS port reachable, its partition intact) or why it is left alone.
import { parsers } from "../../parsers/index.ts";
import { getDevice } from "../../src/config/model.ts";
import type { HaGroup } from "../../src/config/schema.ts";
import { UnexpectedResult } from "../../src/engine/errors.ts";
import type { StepContext } from "../../src/engine/step-context.ts";
import { memberKey, readBreaker, recordSuccess } from "./breaker.ts";
import { declaredMembers, isAlive, listGroup } from "./ha.ts";
import type { SkipReason } from "./ha-findings.ts";
import { memberFacts, partitionFact } from "./member-facts.ts";

type Ctx = StepContext<{ timeoutMs?: number | undefined }>;

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
  skip: { reason: SkipReason; detail: string } | null;
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

export async function listed(ctx: Ctx, group: string, host: string) {
  return listGroup(await ctx.lunacm(host), group, host);
}

export async function inspectGroup(ctx: Ctx, group: HaGroup): Promise<GroupInspection> {
  const threshold = ctx.fleet.defaults.breakerThreshold;
  const listing = await listed(ctx, group.label, group.clientHost);
  const timeoutMs = ctx.params.timeoutMs ?? ctx.fleet.defaults.timeouts.connectMs;
  const members: MemberCheck[] = [];
  for (const m of declaredMembers(ctx.fleet, group.label)) {
    const row = listing.members.find((r) => r.serial === m.serial);
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
      check.skip = {
        reason: "breaker-open",
        detail: `breaker open after ${breaker.failures} failed recoveries: not touched until 'lunafleet ha release-breaker ${group.label} ${key}'`,
      };
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
      check.skip = {
        reason: "unreachable",
        detail: `${m.device} NTLS ${dev.host}:${dev.ntlsPort} not reachable (${tcp.error ?? "no connection"})`,
      };
      members.push(check);
      continue;
    }
    const shell = await ctx.lunash(m.device);
    const shown = await shell.attempt(`partition show -partition ${m.partition}`, parsers.partitionShow);
    if (!shown.ok) {
      // The appliance's own answer (e.g. no such partition) is a finding about this member, not a job failure.
      const e = shown.error;
      check.partitionIntact = false;
      check.skip = {
        reason: "partition-not-intact",
        detail: `partition ${m.partition} on ${m.device}: ${e.code} ${e.errorName}: ${e.deviceMessage}`,
      };
    } else {
      const par = shown.value;
      check.partitionIntact =
        par.serial === m.serial && par.psoZeroized !== true && (par.objectCount ?? 0) > 0;
      if (!check.partitionIntact)
        check.skip = {
          reason: "partition-not-intact",
          detail: `partition ${m.partition} on ${m.device} is not intact (serial ${par.serial}, zeroized ${par.psoZeroized}, objects ${par.objectCount})`,
        };
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

export function inspectionFacts(groups: GroupInspection[]) {
  return groups.flatMap((g) => [
    ...memberFacts(
      g.members.map((m) => ({
        group: g.group,
        device: m.device,
        partition: m.partition,
        status: m.status,
        alive: isAlive(m.status),
        why: m.skip?.detail ?? null,
      })),
      "seen",
    ),
    ...g.members
      .filter((m) => m.partitionIntact !== null)
      .map((m) => partitionFact(m.device, m.partition, m.partitionIntact === true, m.skip?.detail ?? null)),
  ]);
}

export function recoveryFacts(groups: GroupRecovery[]) {
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
