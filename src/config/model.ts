// Lookups over a validated fleet, and credential resolution. Everything downstream asks the fleet through here
// rather than walking arrays, so "unknown device" is one error with one wording.

import { NonRetryable } from "../errors/non-retryable.ts";
import type { ClientHost, Device, Fleet, HaGroup, Partition } from "./schema.ts";
import { resolveSecret, type Secret } from "./secret.ts";

export class UnknownTargetError extends NonRetryable {
  override name = "UnknownTargetError";
}

export function getDevice(fleet: Fleet, name: string): Device {
  const dev = fleet.devices.find((d) => d.name === name);
  if (!dev)
    throw new UnknownTargetError(
      `unknown device '${name}' (fleet has: ${fleet.devices.map((d) => d.name).join(", ")})`,
    );
  return dev;
}

export function getClientHost(fleet: Fleet, name: string): ClientHost {
  const ch = fleet.clientHosts.find((c) => c.name === name);
  if (!ch)
    throw new UnknownTargetError(
      `unknown client host '${name}' (fleet has: ${fleet.clientHosts.map((c) => c.name).join(", ") || "none"})`,
    );
  return ch;
}

export function getHaGroup(fleet: Fleet, label: string): HaGroup {
  const g = fleet.haGroups.find((h) => h.label === label);
  if (!g)
    throw new UnknownTargetError(
      `unknown HA group '${label}' (fleet has: ${fleet.haGroups.map((h) => h.label).join(", ") || "none"})`,
    );
  return g;
}

export function getPartition(device: Device, label: string): Partition {
  const p = device.partitions.find((x) => x.label === label);
  if (!p) throw new UnknownTargetError(`device '${device.name}' has no partition '${label}'`);
  return p;
}

export type DeviceRole = "appliance" | "hsmSo" | "auditor";
export type PartitionRole = "partitionSo" | "co" | "cu";

/** Resolve one of a device's credentials; `undefined` when the fleet file declares none for that role. */
export function deviceSecret(
  fleet: Fleet,
  device: Device,
  role: DeviceRole | "privateKey",
): Secret | undefined {
  const ref = device.credentials[role];
  if (!ref) return undefined;
  return resolveSecret(ref, {
    literalAllowed: fleet.twin,
    what: `devices.${device.name}.credentials.${role}`,
  });
}

export function partitionSecret(
  fleet: Fleet,
  device: Device,
  partition: Partition,
  role: PartitionRole,
): Secret | undefined {
  const ref = partition.credentials[role];
  if (!ref) return undefined;
  return resolveSecret(ref, {
    literalAllowed: fleet.twin,
    what: `devices.${device.name}.partitions.${partition.label}.credentials.${role}`,
  });
}

export function clientHostSecret(
  fleet: Fleet,
  host: ClientHost,
  kind: "ssh" | "privateKey" | "ntlsKey",
): Secret | undefined {
  const ref = host.credentials[kind];
  if (!ref) return undefined;
  return resolveSecret(ref, {
    literalAllowed: fleet.twin,
    what: `clientHosts.${host.name}.credentials.${kind}`,
  });
}

/** The name lunash prints in its prompt: the configured hostname, else the device name. */
export function applianceHostname(device: Device): string {
  return device.hostname ?? device.name;
}

/**
 * What identifies an appliance whatever a fleet file calls it: the serial it reports (the guard and the runbooks
 * refuse a device whose `hsm show` serial is not this one) and where it answers, `<serial>@<host>:<port>`. Two names
 * for one appliance in two fleet files share one identity, so one guard ledger and one device lock.
 */
export function applianceIdentity(device: Device): string {
  return `${device.serial}@${device.host.toLowerCase()}:${device.port}`;
}

/** The lock resource every job takes before touching a device: by the appliance's identity, not its fleet name. */
export function deviceLockResource(device: Device): string {
  return `device:${applianceIdentity(device)}`;
}
