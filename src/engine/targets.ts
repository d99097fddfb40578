// Resolve a runbook's `target` parameter (a device, a client host, an HA group, or `fleet`) into the devices and
// client hosts a job touches. One place, one wording for "unknown target".
import { UnknownTargetError } from "../config/model.ts";
import type { Fleet } from "../config/schema.ts";
import type { JobTargets } from "./runbook.ts";

export type TargetKind = "fleet" | "device" | "clientHost" | "haGroup";

export interface ResolvedTarget extends JobTargets {
  kind: TargetKind;
}

/**
 * `fleet` = every device and client host; a device = that device plus the client hosts assigned to it; a client
 * host = that host plus the devices it is assigned to; an HA group = its members' devices plus its client host.
 * Device order follows the fleet file so plans and results read the same every time.
 */
export function resolveTarget(fleet: Fleet, target: string, allow: readonly TargetKind[]): ResolvedTarget {
  const kinds = new Set(allow);
  const hostsOf = (device: string) =>
    fleet.clientHosts.filter((h) => h.assignments.some((a) => a.device === device)).map((h) => h.name);
  const inFleetOrder = (names: Set<string>) =>
    fleet.devices.filter((d) => names.has(d.name)).map((d) => d.name);

  if (target === "fleet" && kinds.has("fleet"))
    return {
      kind: "fleet",
      devices: fleet.devices.map((d) => d.name),
      clientHosts: fleet.clientHosts.map((h) => h.name),
    };
  const device = fleet.devices.find((d) => d.name === target);
  if (device && kinds.has("device"))
    return { kind: "device", devices: [device.name], clientHosts: hostsOf(device.name) };
  const host = fleet.clientHosts.find((h) => h.name === target);
  if (host && kinds.has("clientHost"))
    return {
      kind: "clientHost",
      devices: inFleetOrder(new Set(host.assignments.map((a) => a.device))),
      clientHosts: [host.name],
    };
  const group = fleet.haGroups.find((g) => g.label === target);
  if (group && kinds.has("haGroup"))
    return {
      kind: "haGroup",
      devices: inFleetOrder(new Set(group.members.map((m) => m.device))),
      clientHosts: [group.clientHost],
    };

  const accepted: string[] = [];
  if (kinds.has("fleet")) accepted.push("'fleet'");
  if (kinds.has("device")) accepted.push(`a device (${fleet.devices.map((d) => d.name).join(", ")})`);
  if (kinds.has("clientHost"))
    accepted.push(`a client host (${fleet.clientHosts.map((h) => h.name).join(", ") || "none"})`);
  if (kinds.has("haGroup"))
    accepted.push(`an HA group (${fleet.haGroups.map((g) => g.label).join(", ") || "none"})`);
  throw new UnknownTargetError(`unknown target '${target}': expected ${accepted.join(", or ")}`);
}
