// Who may do what. Every API route and CLI command names one operation; a principal may perform it when one of its
// roles grants it. Every role can read (viewer's operations): an operator who cannot see the job they ran is no use.
// `admin` can do everything, including managing API tokens; approving still needs a registered key's signature,
// whatever the role (src/signing/approval-check.ts).
import { ROLES, type Role } from "../config/identity-schema.ts";

export { ROLES, type Role };

export const OPERATIONS = {
  "fleet.read": "viewer", // GET /fleet, /report
  "jobs.read": "viewer", // list, get, the live event stream
  "approvals.read": "viewer", // what waits, the statement to sign
  "guard.read": "viewer", // ledger, quarantines
  "ha.read": "viewer", // breakers
  "schedules.read": "viewer",
  "evidence.read": "viewer", // verify, export
  plan: "operator",
  "jobs.submit": "operator",
  "jobs.cancel": "operator",
  "ha.release-breaker": "operator",
  "approvals.decide": "approver", // approve (signed) or reject
  "credentials.register": "approver", // register / list / revoke one's own security keys (signed by one's SSH key)
  "credentials.manage": "admin", // list and revoke anyone's security keys
  "guard.release": "guard-admin",
  "tokens.manage": "admin",
} as const satisfies Record<string, Role>;

export type Operation = keyof typeof OPERATIONS;

export function mayPerform(roles: readonly Role[], op: Operation): boolean {
  if (roles.includes("admin")) return true;
  const needed = OPERATIONS[op];
  if (needed === "viewer") return roles.length > 0;
  return roles.includes(needed);
}

/** The operations a set of roles grants (for `whoami` and the console's buttons). */
export function operationsOf(roles: readonly Role[]): Operation[] {
  return (Object.keys(OPERATIONS) as Operation[]).filter((op) => mayPerform(roles, op));
}
