// The guard as one job sees it (the engine's ctx.guard): `login(device, role, { partition })` picks the session the
// job's steps use (the same ShellSessions the engine's SessionProvider lends, so the step's later commands run in
// the logged-in shell), the job's locks and evidence, and calls LoginGuard.login.
import { getClientHost, getDevice } from "../config/model.ts";
import type { ClientHost, Fleet } from "../config/schema.ts";
import type { ShellSession } from "../shell/session.ts";
import type { ShellSessions } from "../shell/sessions.ts";
import { clientHostTarget, deviceTarget } from "../transport/target.ts";
import { GuardRefused } from "./errors.ts";
import type { GuardEvidence, GuardLocks, LoginGuard, LoginResult } from "./guard.ts";
import { GUARD_ROLES, type GuardRole } from "./roles.ts";

export interface JobGuardDeps {
  guard: LoginGuard;
  sessions: ShellSessions;
  fleet: Fleet;
  jobId: string;
  locks: GuardLocks;
  evidence: GuardEvidence;
  actor?: string;
}

export interface JobGuard {
  login(
    device: string,
    role: GuardRole,
    opts?: { partition?: string; clientHost?: string },
  ): Promise<LoginResult>;
}

export function jobGuard(deps: JobGuardDeps): JobGuard {
  const lunash = (device: string): Promise<ShellSession> =>
    deps.sessions.lunash(deviceTarget(deps.fleet, getDevice(deps.fleet, device)));
  const lunacm = (host: ClientHost): Promise<ShellSession> =>
    deps.sessions.lunacm(
      host.local
        ? { kind: "local", name: host.name, commandTimeoutMs: deps.fleet.defaults.timeouts.commandMs }
        : clientHostTarget(deps.fleet, host),
    );
  return {
    async login(device, role, opts = {}) {
      if (!GUARD_ROLES.includes(role))
        throw new GuardRefused({ device, role: String(role), reason: `unknown role '${String(role)}'` });
      const common = {
        fleet: deps.fleet,
        device,
        role,
        jobId: deps.jobId,
        locks: deps.locks,
        evidence: deps.evidence,
        ...(deps.actor ? { actor: deps.actor } : {}),
      };
      if (role === "hsmSo" || role === "auditor")
        return deps.guard.login({ ...common, session: await lunash(device) });
      const partition = opts.partition;
      if (!partition) throw new GuardRefused({ device, role, reason: `${role} needs { partition }` });
      const hostName =
        opts.clientHost ??
        deps.fleet.clientHosts.find((h) =>
          h.assignments.some((a) => a.device === device && a.partitions.includes(partition)),
        )?.name;
      if (!hostName)
        throw new GuardRefused({
          device,
          partition,
          role,
          reason: "no client host in the fleet file is assigned this partition",
        });
      return deps.guard.login({
        ...common,
        partition,
        session: await lunacm(getClientHost(deps.fleet, hostName)),
        // Policy 15 decides whether a CO lockout is permanent; read it where the device shell is reachable.
        applianceSession:
          role === "co" || role === "cu" ? await lunash(device).catch(() => undefined) : undefined,
      });
    },
  };
}
