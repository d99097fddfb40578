// What the device itself says about a role before the guard spends an attempt: its remaining attempts, whether the
// role is locked out or the HSM/partition zeroized, and the policies that decide what the threshold does. Every
// read is a normal (non-login) command through the same session; anything unparsed or not attributable to the
// right device/partition throws (the guard then refuses: never guess).
import { type CommandParser, parsers } from "../../parsers/index.ts";
import type { Device, Partition } from "../config/schema.ts";
import { sendCommand } from "../shell/reply.ts";
import type { ShellSession } from "../shell/session.ts";
import type { GuardRole } from "./roles.ts";

export interface DeviceObservation {
  /** Attempts left as the device printed them; undefined = the device shows no counter for this role. */
  attemptsLeft?: number;
  state: "ok" | "locked" | "zeroized";
  /** Policy 15 (HSM) and 20 (partition, or the role's full counter when the device shows it) where readable. */
  policy15?: number;
  policy20?: number;
  /** Commands read, for the evidence. */
  reads: string[];
  /** Why something could not be read (not an error by itself: the budget decides whether it may be missing). */
  unreadable: string[];
}

export class CounterUnreadable extends Error {
  override name = "CounterUnreadable";
}

/** Send a (non-login) command and return its parser's value; a device error throws CounterUnreadable. */
async function read<T>(session: ShellSession, command: string, parser: CommandParser<T>): Promise<T> {
  const { reply } = await sendCommand(session, command, parser);
  if (!reply.ok) throw new CounterUnreadable(`'${command}': ${reply.error.reason}`);
  return reply.value;
}

/** `hsm show`: serial, zeroized, HSM Admin attempts left. The serial must be the fleet's (right box). */
export async function readHsmShow(
  session: ShellSession,
  device: Device,
): Promise<{ serial: string; zeroized: boolean; adminLoginAttemptsLeft: number }> {
  const v = await read(session, "hsm show", parsers.hsmShow);
  if (v.serial !== device.serial)
    throw new CounterUnreadable(
      `'hsm show' reports serial ${v.serial}, but the fleet file says ${device.name} is ${device.serial}`,
    );
  return { serial: v.serial, zeroized: v.zeroized, adminLoginAttemptsLeft: v.adminLoginAttemptsLeft };
}

/** HSM policy 15 from `hsm showPolicies`; undefined when the reply has no policy 15. */
export async function readPolicy15(session: ShellSession): Promise<number | undefined> {
  const v = await read(session, "hsm showPolicies", parsers.hsmShowPolicies);
  const p15 = v.policies.find((p) => p.code === 15);
  if (!p15) return undefined;
  if (p15.numericValue === null)
    throw new CounterUnreadable("'hsm showPolicies': policy 15 has no numeric value");
  return p15.numericValue;
}

/** Observe an appliance-level role over lunash (HSM SO from `hsm show`; the auditor shows no counter there). */
export async function observeApplianceRole(
  session: ShellSession,
  device: Device,
  role: "hsmSo" | "auditor",
): Promise<DeviceObservation> {
  const obs: DeviceObservation = { state: "ok", reads: ["hsm show"], unreadable: [] };
  const show = await readHsmShow(session, device);
  if (show.zeroized) obs.state = "zeroized";
  if (role === "hsmSo") obs.attemptsLeft = show.adminLoginAttemptsLeft;
  else obs.unreadable.push("the auditor's remaining attempts are not shown by lunash");
  return obs;
}

const LUNACM_ROLE: Record<"partitionSo" | "co" | "cu", "so" | "co" | "cu"> = {
  partitionSo: "so",
  co: "co",
  cu: "cu",
};

/**
 * Select the partition's slot in lunacm (by serial), then read `partition showinfo` and `role show` for the role.
 * The slot must carry the fleet's partition serial, and showinfo the device's HSM serial when it prints one.
 */
export async function observePartitionRole(
  session: ShellSession,
  device: Device,
  partition: Partition,
  role: "partitionSo" | "co" | "cu",
): Promise<DeviceObservation> {
  const obs: DeviceObservation = { state: "ok", reads: [], unreadable: [] };
  const { slots } = await read(session, "slot list", parsers.slotList);
  obs.reads.push("slot list");
  const slot = slots.find((x) => x.serialNumber === partition.serial && !x.haVirtual);
  if (!slot)
    throw new CounterUnreadable(
      `no lunacm slot carries partition ${partition.label} (serial ${partition.serial}) of ${device.name}`,
    );
  const set = await read(session, `slot set -slot ${slot.slotId}`, parsers.slotSet);
  if (set.slotId !== slot.slotId)
    throw new CounterUnreadable(`'slot set -slot ${slot.slotId}' answered slot ${set.slotId}`);
  obs.reads.push(`slot set -slot ${slot.slotId}`);

  const info = await read(session, "partition showinfo", parsers.partitionShowinfo);
  obs.reads.push("partition showinfo");
  if (info.serial !== partition.serial)
    throw new CounterUnreadable(
      `'partition showinfo' reports serial ${info.serial}, expected ${partition.serial}`,
    );
  if (info.hsmSerial !== null && info.hsmSerial !== device.serial)
    throw new CounterUnreadable(
      `'partition showinfo' reports HSM serial ${info.hsmSerial}, expected ${device.serial} (${device.name})`,
    );
  if ((info.status ?? "").toLowerCase().includes("zeroiz")) obs.state = "zeroized";
  const counter = {
    partitionSo: { left: info.psoLoginAttemptsLeft, locked: null },
    co: { left: info.coLoginAttemptsLeft, locked: info.coLockedOut },
    cu: { left: info.cuLoginAttemptsLeft, locked: info.cuLockedOut },
  }[role];
  const infoLeft = counter.left ?? undefined;
  if (counter.locked === true) obs.state = obs.state === "zeroized" ? "zeroized" : "locked";

  const r = LUNACM_ROLE[role];
  let showLeft: number | undefined;
  try {
    const show = await read(session, `role show -name ${r}`, parsers.roleShow);
    obs.reads.push(`role show -name ${r}`);
    if (show.lockedOut && obs.state === "ok") obs.state = "locked";
    if ((show.status ?? "").toLowerCase().includes("zeroiz")) obs.state = "zeroized";
    showLeft = show.loginAttemptsLeft ?? undefined;
    // Where the device prints the failures too, left + failed is the role's full counter: for CO/CU that is the
    // effective partition policy 20 (the maximum failed logins), read from the device itself.
    const failed = Number(show.extra["Failed Login Count"]);
    if (role !== "partitionSo" && showLeft !== undefined && Number.isInteger(failed) && failed >= 0)
      obs.policy20 = showLeft + failed;
  } catch (err) {
    if (!(err instanceof CounterUnreadable)) throw err;
    obs.unreadable.push(err.message);
  }
  // Two readings of one counter: take the more cautious.
  const readings = [infoLeft, showLeft].filter((x): x is number => x !== undefined);
  if (readings.length > 0) obs.attemptsLeft = Math.min(...readings);
  else obs.unreadable.push(`neither 'partition showinfo' nor 'role show' shows the ${role}'s attempts left`);
  return obs;
}

/** The lunacm role name (`role login -name <r>`); Partition SO is `po` on Luna 7. */
export function lunacmRoleName(role: GuardRole): "po" | "co" | "cu" {
  if (role === "partitionSo") return "po";
  if (role === "co" || role === "cu") return role;
  throw new Error(`${role} is not a partition role`);
}
