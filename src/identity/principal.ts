// The authenticated principal of a request: one name that evidence records carry, and the roles that decide what it
// may do. Three ways in:
//   oidc   a bearer token from the fleet's identity provider: named by oidc.principalClaim; a principal of the fleet
//          file that lists that value is that person (their name and roles); roles also come from the token's app
//          roles / groups as the fleet file maps them. Unlisted people are `oidc:<value>`.
//   token  an API token (`lunafleet token create`): `token:<name>`, with the one role it was created with.
//   os     the OS account running the CLI on the daemon host (it reaches the data dir's Redis socket): a principal
//          listing that account is that person; anyone else is `os:<user>` with identity.localRoles.
// The requester of a job is its principal's name, so "the requester's approval never counts" compares like with like.
import { userInfo } from "node:os";
import type { IdentityConfig, Role } from "../config/identity-schema.ts";
import { ROLES } from "./roles.ts";

export type AuthMethod = "oidc" | "token" | "os";

export interface Principal {
  /** What evidence records and approvals name. */
  name: string;
  method: AuthMethod;
  roles: Role[];
  /** The raw identity behind the name (token claim value, token name, OS user), for the record. */
  subject: string;
}

function uniqueRoles(roles: Iterable<Role>): Role[] {
  const set = new Set(roles);
  return ROLES.filter((r) => set.has(r));
}

export function principalFromClaims(claims: Record<string, unknown>, identity: IdentityConfig): Principal {
  const claim = identity.oidc?.principalClaim ?? "sub";
  const value = claims[claim];
  if (typeof value !== "string" || value.length === 0)
    throw new Error(`the token has no '${claim}' claim to name its principal`);
  const listed = identity.principals.find((p) => p.oidc.includes(value));
  const list = (v: unknown): string[] =>
    Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
  const appRoles = list(claims.roles);
  const groups = list(claims.groups);
  const mapped: Role[] = [];
  for (const role of ROLES) {
    const match = identity.roles[role];
    if (!match) continue;
    if (match.appRoles.some((r) => appRoles.includes(r)) || match.groups.some((g) => groups.includes(g)))
      mapped.push(role);
  }
  return {
    name: listed?.name ?? `oidc:${value}`,
    method: "oidc",
    roles: uniqueRoles([...(listed?.roles ?? []), ...mapped]),
    subject: value,
  };
}

export function principalFromOsAccount(user: string, identity: IdentityConfig): Principal {
  const listed = identity.principals.find((p) => p.os.includes(user));
  if (listed) return { name: listed.name, method: "os", roles: uniqueRoles(listed.roles), subject: user };
  return { name: `os:${user}`, method: "os", roles: uniqueRoles(identity.localRoles), subject: user };
}

export function principalFromToken(tokenName: string, role: Role): Principal {
  return { name: `token:${tokenName}`, method: "token", roles: [role], subject: tokenName };
}

/**
 * The OS account running this process (the CLI on the daemon host), from the process's uid — never from $USER or
 * $LOGNAME, which anyone sets: `USER=alice lunafleet run …` must not make the requester alice.
 */
export function currentOsUser(): string {
  try {
    const name = userInfo().username;
    if (name) return name;
  } catch {
    // no passwd entry for this uid (a container's arbitrary uid)
  }
  const uid = process.getuid?.();
  return uid === 0 ? "root" : `uid-${uid ?? "unknown"}`;
}
