// What one guarded login sends, for the plan: the device's own counter is read first (always), then the login once.
// `lunafleet plan` shows a login as one line; a run's commands are checked against the plan with these expanded
// (src/engine/plan-match.ts). Kept beside the guard so the two cannot drift: device-counter.ts sends exactly these.
import { lunacmRoleName } from "./device-counter.ts";
import type { GuardRole } from "./roles.ts";

export interface GuardedCommand {
  /** The shell it goes to: the login's own shell, or (for a Crypto Officer/User) the device's lunash too. */
  via: "lunash" | "lunacm";
  /** `device`: on the device's lunash; `session`: where the login itself goes (lunash of the device, lunacm of the host). */
  where: "device" | "session";
  /** The command, `<n>` where the run fills in a value. */
  command: string;
}

export function guardedLoginCommands(role: GuardRole): GuardedCommand[] {
  if (role === "hsmSo") return [session("lunash", "hsm show"), session("lunash", "hsm login")];
  // No parser reads an `audit login` reply: the guard reads the counter and refuses before sending the login.
  if (role === "auditor") return [session("lunash", "hsm show")];
  // `role show` names the Partition SO `so`; `role login` names it `po` (device-counter.ts, guard.ts).
  const shown = role === "partitionSo" ? "so" : role;
  const r = lunacmRoleName(role);
  return [
    session("lunacm", "slot list"),
    session("lunacm", "slot set -slot <n>"),
    session("lunacm", "partition showinfo"),
    session("lunacm", `role show -name ${shown}`),
    ...(role === "co" || role === "cu"
      ? [{ via: "lunash" as const, where: "device" as const, command: "hsm showPolicies" }]
      : []),
    session("lunacm", `role login -name ${r}`),
  ];
}

function session(via: "lunash" | "lunacm", command: string): GuardedCommand {
  return { via, where: "session", command };
}
