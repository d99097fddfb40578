// The twin's fault injection (`lunafleet sim` fault commands, tests): slow, dropped or garbled replies, an expired or
// regenerated NTLS certificate, a member down, NTLS closed, a reboot that hangs, a power cycle.
import type { Fleet } from "../config/index.ts";
import { powerCycle as powerCycleState } from "./appliance/power.ts";
import { generateSelfSignedCert } from "./certs.ts";
import type { CarrierFaults } from "./ssh-server.ts";
import type { TwinAppliance, TwinClientHost } from "./twin.ts";

export const FAULTS = [
  "slow",
  "drop",
  "garble",
  "expire-cert",
  "regen-cert",
  "member-down",
  "close-ntls",
  "hang-reboot",
  "power-cycle",
  "hold",
] as const;
export type FaultName = (typeof FAULTS)[number];

export function isFaultName(s: string): s is FaultName {
  return (FAULTS as readonly string[]).includes(s);
}

export class TwinFaultError extends Error {
  override name = "TwinFaultError";
}

interface FaultScope {
  fleet: Fleet;
  appliances: Map<string, TwinAppliance>;
  clientHosts: Map<string, TwinClientHost>;
  appliance(name: string): TwinAppliance;
}

const OFF = new Set(["off", "none", "clear", "0", "false", "no"]);

export async function applyFault(
  scope: FaultScope,
  target: string,
  fault: FaultName,
  value?: string,
): Promise<string> {
  const off = value !== undefined && OFF.has(value.toLowerCase());
  const ch = scope.clientHosts.get(target);
  if (ch && (fault === "slow" || fault === "drop" || fault === "garble" || fault === "hold"))
    return carrierFault(ch, fault, value, off);
  if (fault === "member-down") return memberDown(scope, target, value);
  const a = scope.appliance(target);
  const { state } = a;
  switch (fault) {
    case "slow": {
      const ms = off ? 0 : Number(value ?? 2000);
      if (!Number.isInteger(ms) || ms < 0)
        throw new TwinFaultError(`slow: '${value}' is not a delay in milliseconds`);
      state.faults.slowReplyMs = ms || undefined;
      return ms ? `${target} answers every command ${ms} ms late` : `${target} answers promptly again`;
    }
    case "drop":
    case "garble": {
      const key = fault === "drop" ? "dropMidCommand" : "garbleCommand";
      if (!value) throw new TwinFaultError(`${fault}: name the command (e.g. "hsm show"), or 'off'`);
      state.faults[key] = off ? undefined : value;
      if (off) return `${target}: ${fault} fault cleared`;
      return fault === "drop"
        ? `${target} drops the connection in the middle of '${value}'`
        : `${target} garbles the output of '${value}'`;
    }
    case "expire-cert":
    case "regen-cert": {
      const days =
        fault === "expire-cert"
          ? -Math.max(1, Number(value ?? 1) || 1)
          : Math.max(1, Number(value ?? 365) || 365);
      const old = state.ntls.certPem;
      const cert = await generateSelfSignedCert({
        commonName: state.hostname,
        validDays: days,
        altNames: [a.address],
      });
      state.ntls.certPem = cert.certPem;
      state.ntls.keyPem = cert.keyPem;
      state.ntls.notAfter = cert.notAfter;
      if (fault === "regen-cert") {
        state.ntls.certGeneration += 1;
        return `${target} has a new NTLS certificate (valid ${days} days); clients holding the old server.pem no longer trust it`;
      }
      // The same certificate, aged: clients that trusted it keep their copy in step (it is "theirs", just expired).
      for (const c of scope.clientHosts.values())
        if (c.host.serverCerts.get(target) === old) c.host.serverCerts.set(target, cert.certPem);
      return `${target}'s NTLS certificate expired ${-days} day(s) ago`;
    }
    case "close-ntls":
      state.ntls.listening = off;
      await a.server.reconcile();
      return off
        ? `${target}: NTLS listening on ${a.ntlsPort} again`
        : `${target}: nothing listens on ${a.ntlsPort}`;
    case "hang-reboot":
      if (value === "now") {
        state.power = "hung";
        await a.server.reconcile();
        return `${target} hangs now (no SSH, no NTLS) until power-cycle`;
      }
      state.faults.hangReboot = off ? undefined : true;
      return off ? `${target} reboots normally again` : `${target}'s next reboot will hang until power-cycle`;
    case "hold":
      throw new TwinFaultError(
        `hold applies to client hosts (their lunacm and vtl sessions), not to ${target}`,
      );
    case "power-cycle":
      powerCycleState(state);
      await a.server.reconcile();
      return `${target} power-cycled (power: ${state.power})`;
    default:
      throw new TwinFaultError(`unknown fault '${fault as string}'`);
  }
}

function carrierFault(
  ch: TwinClientHost,
  fault: "slow" | "drop" | "garble" | "hold",
  value: string | undefined,
  off: boolean,
): string {
  if (fault === "hold") return holdFault(ch, value, off);
  if (fault === "slow") {
    const ms = off ? 0 : Number(value ?? 2000);
    if (!Number.isInteger(ms) || ms < 0)
      throw new TwinFaultError(`slow: '${value}' is not a delay in milliseconds`);
    ch.faults.slowReplyMs = ms || undefined;
    return ms ? `${ch.name} answers ${ms} ms late` : `${ch.name} answers promptly again`;
  }
  if (!value) throw new TwinFaultError(`${fault}: name the command (e.g. "hagroup listgroups"), or 'off'`);
  const key = fault === "drop" ? "dropMidCommand" : "garbleCommand";
  ch.faults[key] = off ? undefined : value;
  return off ? `${ch.name}: ${fault} fault cleared` : `${ch.name}: ${fault} on '${value}'`;
}

/**
 * `hold <client-host> "<command>"`: the reply to that command is held back until `hold <client-host> off` — a job
 * sits inside the command for as long as whoever set the fault wants (a test watching a job live, with no timer).
 * Only the timing changes, never the text: a slow line, not something a Luna would not print.
 */
function holdFault(ch: TwinClientHost, value: string | undefined, off: boolean): string {
  const current = ch.faults.hold as (CarrierFaults["hold"] & { release?: () => void }) | undefined;
  if (off) {
    ch.faults.hold = undefined;
    current?.release?.();
    return current ? `${ch.name}: replies to '${current.command}' released` : `${ch.name}: nothing was held`;
  }
  if (!value) throw new TwinFaultError(`hold: name the command (e.g. "hagroup recover"), or 'off'`);
  current?.release?.();
  let release!: () => void;
  const released = new Promise<void>((r) => {
    release = r;
  });
  ch.faults.hold = Object.assign({ command: value, released }, { release });
  return `${ch.name}: replies to '${value}' are held until 'hold off'`;
}

/**
 * `member-down <client-host> <device>/<partition>` downs one HA member on that client; `member-down <device>
 * [<partition>]` downs the device's members on every client host that has them in an HA group.
 */
function memberDown(scope: FaultScope, target: string, value?: string): string {
  const downed: string[] = [];
  const down = (c: TwinClientHost, device: string, partition: string) => {
    const has = c.host.haGroups.some((g) =>
      g.members.some((m) => m.device === device && m.partition === partition),
    );
    if (!has) return;
    c.host.setMemberDown(device, partition, true);
    downed.push(`${c.name}: ${device}/${partition}`);
  };
  const ch = scope.clientHosts.get(target);
  if (ch) {
    const [device, partition] = (value ?? "").split("/");
    if (!device || !partition)
      throw new TwinFaultError("member-down <client-host> needs <device>/<partition>");
    down(ch, device, partition);
  } else {
    scope.appliance(target);
    const dev = scope.fleet.devices.find((d) => d.name === target);
    for (const c of scope.clientHosts.values())
      for (const p of dev?.partitions ?? []) if (!value || p.label === value) down(c, target, p.label);
  }
  if (downed.length === 0)
    throw new TwinFaultError(`member-down: no HA member matches ${target} ${value ?? ""}`.trim());
  return `HA member(s) down: ${downed.join(", ")}`;
}
