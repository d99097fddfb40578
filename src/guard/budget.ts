// The budget: may an automated login attempt be made now? A pure function of the role's policy, the write-ahead
// ledger and what the device itself last said about its counter. Every "no" carries the reason an operator reads.
import { isDestructive, type RolePolicy } from "./roles.ts";

export interface LedgerView {
  /** Failures recorded by lunafleet since the last success (unknown outcomes count). */
  failures: number;
  /** An attempt was recorded but its outcome never was (crash, lost connection): counts as a failure. */
  pending: boolean;
  quarantined: boolean;
  quarantineReason?: string;
}

export interface DeviceCounterView {
  /** Attempts left as the device printed them (`hsm show`, `partition show`, `role show`); undefined = not shown. */
  attemptsLeft?: number;
  /** True when the device reports the role as locked out or the HSM/partition as zeroized. */
  lockedOrZeroized?: boolean;
}

export type BudgetDecision =
  | { allowed: true; attemptsLeftAfterFailure: number }
  | { allowed: false; reason: string };

export function decideLoginBudget(
  policy: RolePolicy,
  ledger: LedgerView,
  device: DeviceCounterView,
  opts: { deviceCounterRequired: boolean },
): BudgetDecision {
  if (ledger.quarantined)
    return {
      allowed: false,
      reason: `credential quarantined after a failure (${ledger.quarantineReason ?? "no reason recorded"}); an operator must run 'lunafleet guard release'`,
    };
  if (ledger.pending)
    return {
      allowed: false,
      reason: "an earlier attempt has no recorded outcome (crash or lost connection); it counts as a failure",
    };
  if (device.lockedOrZeroized)
    return { allowed: false, reason: "the device reports this role locked out or zeroized" };
  if (device.attemptsLeft === undefined && opts.deviceCounterRequired)
    return { allowed: false, reason: "the device's own counter could not be read; refusing to guess" };

  const ledgerLeft = policy.threshold - ledger.failures;
  const left = Math.min(ledgerLeft, device.attemptsLeft ?? Number.POSITIVE_INFINITY);

  if (isDestructive(policy.effect)) {
    if (ledger.failures > 0)
      return {
        allowed: false,
        reason: `${ledger.failures} failed attempt(s) recorded since the last success`,
      };
    if (device.attemptsLeft !== undefined && device.attemptsLeft < policy.threshold)
      return {
        allowed: false,
        reason: `the device shows ${device.attemptsLeft} of ${policy.threshold} attempts left: someone failed a login outside lunafleet`,
      };
    return { allowed: true, attemptsLeftAfterFailure: left - 1 };
  }
  // A healing lockout: allowed only while a failure would still leave one attempt standing.
  if (left < 2)
    return { allowed: false, reason: `only ${left} attempt(s) left before lockout; at least 2 are required` };
  return { allowed: true, attemptsLeftAfterFailure: left - 1 };
}
