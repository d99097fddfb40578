// Which login roles exist, what their failed-login threshold does, and how many failures each tolerates.
// Luna 7 defaults (reference §18): HSM SO 3 → HSM zeroized; Partition SO 10 → partition zeroized;
// Crypto Officer/User 10 (partition policy 20 can lower it) → locked out, permanently when HSM policy 15 = 0;
// Auditor 10 → locked 10 minutes.

export type GuardRole = "hsmSo" | "partitionSo" | "co" | "cu" | "auditor";

export const GUARD_ROLES: readonly GuardRole[] = ["hsmSo", "partitionSo", "co", "cu", "auditor"];

/** What reaching the threshold does to the device. */
export type ThresholdEffect = "zeroize-hsm" | "zeroize-partition" | "permanent-lockout" | "healing-lockout";

export interface RolePolicy {
  role: GuardRole;
  threshold: number;
  effect: ThresholdEffect;
}

/** Effects that cannot be undone without re-initialising and restoring from backup. */
export function isDestructive(effect: ThresholdEffect): boolean {
  return effect !== "healing-lockout";
}

export interface DevicePolicies {
  /** HSM policy 15 "SO can reset partition PIN"; undefined when not read. 0 (the default) = CO lockout is permanent. */
  policy15?: number;
  /** Partition policy 20 "Max failed user logins allowed"; undefined when not read. */
  policy20?: number;
}

export interface FleetThresholds {
  hsmSo: number;
  partitionSo: number;
  co: number;
  auditor: number;
}

/**
 * The policy for one role. Where the device's own policies are unknown, assume the more dangerous reading:
 * policy 15 unknown → CO lockout treated as permanent; policy 20 unknown → the fleet default.
 */
export function rolePolicy(role: GuardRole, fleet: FleetThresholds, device: DevicePolicies = {}): RolePolicy {
  switch (role) {
    case "hsmSo":
      return { role, threshold: 3, effect: "zeroize-hsm" };
    case "partitionSo":
      return { role, threshold: fleet.partitionSo, effect: "zeroize-partition" };
    case "co":
    case "cu": {
      const threshold = Math.min(device.policy20 ?? fleet.co, fleet.co);
      return { role, threshold, effect: device.policy15 === 1 ? "healing-lockout" : "permanent-lockout" };
    }
    case "auditor":
      return { role, threshold: fleet.auditor, effect: "healing-lockout" };
  }
}
