// What the device itself says about a role before the guard spends an attempt: its remaining attempts, whether the
// role is locked out or the HSM/partition zeroized, and the policies that decide what the threshold does. Every
// read is a normal (non-login) command through the same session; anything unparsed or not attributable to the
// right device/partition throws (the guard then refuses: never guess).
import type { Device, Partition } from "../config/schema.ts";
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

type Json = Record<string, unknown>;
const isObj = (x: unknown): x is Json => typeof x === "object" && x !== null && !Array.isArray(x);
const num = (x: unknown): number | undefined =>
  typeof x === "number" && Number.isInteger(x) ? x : undefined;

/** Run a read command and return its parsed value; a device error or unparsed reply throws CounterUnreadable. */
async function read(session: ShellSession, command: string): Promise<Json> {
  const out = await session.run(command, { parse: true });
  if (!out.result.ok) throw new CounterUnreadable(`'${command}': ${out.result.error.reason}`);
  if (!isObj(out.result.value)) throw new CounterUnreadable(`'${command}': no structured reply`);
  return out.result.value;
}

/** `hsm show`: serial, zeroized, HSM Admin attempts left. The serial must be the fleet's (right box). */
export async function readHsmShow(
  session: ShellSession,
  device: Device,
): Promise<{ serial: string; zeroized: boolean; adminLoginAttemptsLeft: number }> {
  const v = await read(session, "hsm show");
  const serial = typeof v.serial === "string" ? v.serial : undefined;
  const left = num(v.adminLoginAttemptsLeft);
  if (serial === undefined || typeof v.zeroized !== "boolean" || left === undefined)
    throw new CounterUnreadable("'hsm show' lacks serial, zeroized or HSM Admin login attempts left");
  if (serial !== device.serial)
    throw new CounterUnreadable(
      `'hsm show' reports serial ${serial}, but the fleet file says ${device.name} is ${device.serial}`,
    );
  return { serial, zeroized: v.zeroized, adminLoginAttemptsLeft: left };
}

/** HSM policy 15 from `hsm showPolicies`; undefined when the reply has no policy 15. */
export async function readPolicy15(session: ShellSession): Promise<number | undefined> {
  const v = await read(session, "hsm showPolicies");
  const policies = Array.isArray(v.policies) ? v.policies : [];
  for (const p of policies)
    if (isObj(p) && p.code === 15) {
      const n = num(p.numericValue);
      if (n === undefined) throw new CounterUnreadable("'hsm showPolicies': policy 15 has no numeric value");
      return n;
    }
  return undefined;
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
  const slots = await read(session, "slot list");
  obs.reads.push("slot list");
  const list = Array.isArray(slots.slots) ? slots.slots : [];
  const slot = list.find((s) => isObj(s) && s.serialNumber === partition.serial && s.haVirtual !== true);
  const slotId = isObj(slot) ? num(slot.slotId) : undefined;
  if (slotId === undefined)
    throw new CounterUnreadable(
      `no lunacm slot carries partition ${partition.label} (serial ${partition.serial}) of ${device.name}`,
    );
  const set = await session.run(`slot set -slot ${slotId}`, { parse: false });
  if (!set.result.ok) throw new CounterUnreadable(`'slot set -slot ${slotId}': ${set.result.error.reason}`);
  obs.reads.push(`slot set -slot ${slotId}`);

  const info = await read(session, "partition showinfo");
  obs.reads.push("partition showinfo");
  if (info.serial !== partition.serial)
    throw new CounterUnreadable(
      `'partition showinfo' reports serial ${String(info.serial)}, expected ${partition.serial}`,
    );
  if (typeof info.hsmSerial === "string" && info.hsmSerial !== device.serial)
    throw new CounterUnreadable(
      `'partition showinfo' reports HSM serial ${info.hsmSerial}, expected ${device.serial} (${device.name})`,
    );
  const status = typeof info.status === "string" ? info.status.toLowerCase() : "";
  if (status.includes("zeroiz")) obs.state = "zeroized";
  const prefix = role === "partitionSo" ? "pso" : role;
  const infoLeft = num(info[`${prefix}LoginAttemptsLeft`]);
  if (info[`${prefix}LockedOut`] === true) obs.state = obs.state === "zeroized" ? "zeroized" : "locked";

  const r = LUNACM_ROLE[role];
  let showLeft: number | undefined;
  try {
    const show = await read(session, `role show -name ${r}`);
    obs.reads.push(`role show -name ${r}`);
    if (show.lockedOut === true && obs.state === "ok") obs.state = "locked";
    if (typeof show.status === "string" && /zeroiz/i.test(show.status)) obs.state = "zeroized";
    showLeft = num(show.loginAttemptsLeft);
    // Where the device prints the failures too, left + failed is the role's full counter: for CO/CU that is the
    // effective partition policy 20 (the maximum failed logins), read from the device itself.
    const extra = isObj(show.extra) ? show.extra : {};
    const failed = Number(extra["Failed Login Count"]);
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
