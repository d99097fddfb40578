// The guard as one job sees it (the engine's ctx.guard): `login(device, role, { partition })` picks the session the
// job's steps use (the same JobShells the engine lends to the steps, so the step's later commands run in the
// logged-in session), the job's locks and evidence, and calls LoginGuard.login.
import type { Fleet } from "../config/schema.ts";
import { approvalState } from "../coord/approvals.ts";
import { checkGrantedApprovals, type JobFacts } from "../coord/signed-approvals.ts";
import { loadApproverKeys } from "../coord/webauthn-credentials.ts";
import type { RedisClient } from "../redis/client.ts";
import type { JobShells } from "../shell/job-shells.ts";
import { GuardRefused, SanctionedZeroizeRefused } from "./errors.ts";
import type { GuardEvidence, GuardLocks, LoginGuard, LoginResult } from "./guard.ts";
import { observeGuard } from "./guard-facts.ts";
import { GUARD_ROLES, type GuardRole } from "./roles.ts";
import { type SanctionedZeroizeResult, sanctionedZeroize, type ZeroizeLocks } from "./sanctioned-zeroize.ts";

export interface JobGuardDeps {
  guard: LoginGuard;
  /** The job's sessions: the guard logs in on the session the step's next commands use. */
  shells: Pick<JobShells, "lunash" | "lunacm">;
  fleet: Fleet;
  jobId: string;
  locks: GuardLocks;
  evidence: GuardEvidence;
  actor?: string;
  /** The job's runbook (who observed the guard state after a login). */
  runbook?: string;
  /** For the sanctioned zeroize of a deprovision job: its approvals are read from here (src/coord/approvals.ts). */
  redis?: RedisClient;
  /**
   * What the worker knows of this job (runbook, admitted plan digest, requester): every approval's signature is
   * verified again against it and the fleet's key registry right before the zeroize (src/coord/signed-approvals.ts).
   */
  approvalFacts?: JobFacts;
}

export interface JobGuard {
  login(
    device: string,
    role: GuardRole,
    opts?: { partition?: string; clientHost?: string },
  ): Promise<LoginResult>;
  /**
   * The sanctioned zeroize of this (deprovision) job's device. Approvals and the typed confirmation come from the
   * job's approval record in Redis, never from the caller; sanctionedZeroize() checks them all again.
   */
  sanctionedZeroize(device: string): Promise<SanctionedZeroizeResult>;
}

export function jobGuard(deps: JobGuardDeps): JobGuard {
  const lunash = (device: string) => deps.shells.lunash(device);
  return {
    async sanctionedZeroize(device) {
      const refuse = (reason: string) => new SanctionedZeroizeRefused({ device, reason });
      if (!deps.redis) throw refuse("this job's guard has no Redis to read the approvals from");
      const locks = deps.locks as GuardLocks & Partial<Pick<ZeroizeLocks, "assertHeld">>;
      if (typeof locks.assertHeld !== "function")
        throw refuse("the job's locks cannot be checked against Redis (assertHeld)");
      const approvals = await approvalState(deps.redis, deps.jobId);
      if (approvals?.status !== "approved" || approvals.device !== device)
        throw refuse(
          `deprovision job ${deps.jobId} has no granted approval for ${device} (${approvals ? `${approvals.status}, for ${approvals.device}` : "none"})`,
        );
      const typed = new Set(approvals.approvals.map((a) => a.confirmation));
      if (typed.size !== 1) throw refuse("the approvals do not carry one typed confirmation");
      // The signatures, again, now: a request marked approved in Redis is only a claim.
      if (!deps.approvalFacts) throw refuse("this job's guard does not know the job's plan and requester");
      const signed = await checkGrantedApprovals(
        approvals,
        deps.approvalFacts,
        deps.fleet,
        2,
        Date.now(),
        await loadApproverKeys(deps.redis, deps.fleet, { checkCounters: false }),
      );
      if (!signed.ok) {
        await deps.evidence
          .append(
            "guard",
            {
              event: "zeroize-refused",
              flow: "sanctioned-zeroize",
              device,
              reason: signed.reason,
              refused: signed.refused,
              sent: "nothing",
            },
            deps.actor,
          )
          .catch(() => {});
        throw refuse(
          `approvals do not verify at the moment of the zeroize: ${signed.reason}; nothing was sent`,
        );
      }
      return sanctionedZeroize(deps.redis, {
        session: await lunash(device),
        fleet: deps.fleet,
        device,
        deprovisionJobId: deps.jobId,
        approvals: approvals.approvals
          .filter((a) => signed.principals.includes(a.principal))
          .map((a) => ({ principal: a.principal, at: a.at })),
        confirmation: [...typed][0]!,
        locks: locks as ZeroizeLocks,
        evidence: deps.evidence,
        ...(deps.actor ? { actor: deps.actor } : {}),
      });
    },
    async login(device, role, opts = {}) {
      try {
        return await loginThroughGuard(device, role, opts);
      } finally {
        // Whatever came of it, the device's guard state is seen again (a failed or unknown attempt quarantines).
        if (deps.redis)
          await observeGuard(deps.redis, device, { jobId: deps.jobId, by: deps.runbook ?? "guard" }).catch(
            () => {},
          );
      }
    },
  };

  async function loginThroughGuard(
    device: string,
    role: GuardRole,
    opts: { partition?: string; clientHost?: string },
  ): Promise<LoginResult> {
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
      session: await deps.shells.lunacm(hostName),
      // Policy 15 decides whether a CO lockout is permanent; read it where the device shell is reachable.
      applianceSession:
        role === "co" || role === "cu" ? await lunash(device).catch(() => undefined) : undefined,
    });
  }
}
