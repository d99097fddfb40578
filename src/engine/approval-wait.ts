// Waiting for approvals, the one way every runbook does it (deprovision, ntls-cert-sync regen): ask (idempotent: a
// resumed job gets its standing request), then wait in `awaiting-approval` — no exception, no BullMQ retry that
// could fail the job while its request stays open — until the request is approved, rejected, expired or the job is
// cancelled.
//
// While it waits, the job holds only the locks of the devices it will change: the locks of the other hosts it read
// (every client host, for deprovision's HA check) are given back so the fleet's ha-recover and tcp-check are not
// stalled for up to an hour, and taken again once approved. Whatever the step read on those hosts before the wait
// must therefore be read again after it, before the first change: the runbook does that (deprovision re-checks HA
// membership on every client host), this module only says, in the evidence, which locks were given back and when
// they were taken again.
import type { ApprovalRequest, ApprovalState } from "../coord/approvals.ts";
import { EngineError, JobCancelled } from "./errors.ts";
import type { JobLogger } from "./ports.ts";

/** Approvals did not arrive, were rejected, expired or were withdrawn. Never retried: a new job asks again. */
export class ApprovalNotGranted extends EngineError {
  override name = "ApprovalNotGranted";
  constructor(
    message: string,
    readonly status: string,
    readonly device: string,
  ) {
    super(message);
  }
}

/** The job's locks as the wait uses them (the worker adapts its DeviceLockSet; absent = nothing is given back). */
export interface JobLocksPort {
  throwIfLost(): void;
  /** Keep only the locks of these devices; give the others back. Returns the lock resources given back. */
  narrowTo?(devices: readonly string[]): Promise<string[]>;
  /** Take back resources given back by narrowTo, all or nothing; false when one is busy (try again later). */
  widen?(resources: readonly string[]): Promise<boolean>;
}

export interface ApprovalWaitDeps {
  jobId: string;
  request(req: ApprovalRequest): Promise<ApprovalState>;
  state(): Promise<ApprovalState | null>;
  note(data: Record<string, unknown>): Promise<void>;
  log: JobLogger;
  signal: AbortSignal;
  locks?: JobLocksPort;
  /** How often the request is re-read while waiting, and the pause between tries to take locks back. */
  pollMs: number;
  /** Injected in tests; default: a timer that the job's signal interrupts. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

export interface ApprovalWaitOptions {
  /** The devices this job will change: their locks are kept while it waits (default: the request's device). */
  keepDevices?: readonly string[];
  /** Re-read interval for this wait (a runbook parameter); default: the worker's. */
  pollMs?: number;
}

export async function waitForApproval(
  deps: ApprovalWaitDeps,
  req: ApprovalRequest,
  opts: ApprovalWaitOptions = {},
): Promise<ApprovalState> {
  const sleep = deps.sleep ?? abortableSleep;
  const pollMs = opts.pollMs ?? deps.pollMs;
  let state = await deps.request(req);
  let given: string[] = [];
  let seen = "";
  const noteIfChanged = async () => {
    const summary = `${state.status}:${state.approvals.map((a) => a.principal).join(",")}:${state.refusals.length}`;
    if (summary === seen) return;
    seen = summary;
    await deps.note({
      approvals: state.status,
      device: state.device,
      action: state.action,
      granted: state.approvals,
      required: state.required,
      refusals: state.refusals,
      expiresAt: state.expiresAt,
    });
    deps.log.info({ jobId: deps.jobId, device: state.device, approvals: state.status }, "approvals");
  };
  await noteIfChanged();
  if (state.status === "awaiting-approval" && deps.locks?.narrowTo) {
    given = await deps.locks.narrowTo(opts.keepDevices ?? [req.device]);
    if (given.length > 0)
      await deps.note({
        approvals: "waiting",
        locksGivenBack: given,
        locksKept: opts.keepDevices ?? [req.device],
      });
  }
  while (state.status === "awaiting-approval") {
    await sleep(pollMs, deps.signal);
    deps.locks?.throwIfLost();
    const next = await deps.state();
    if (!next)
      throw new ApprovalNotGranted(
        `${req.device}: the approval request vanished from Redis`,
        "missing",
        req.device,
      );
    state = next;
    await noteIfChanged();
  }
  if (state.status !== "approved") throw notGranted(state);
  if (given.length > 0) await takeBack(deps, given, () => sleep(pollMs, deps.signal));
  return state;
}

async function takeBack(
  deps: ApprovalWaitDeps,
  resources: string[],
  pause: () => Promise<void>,
): Promise<void> {
  const widen = deps.locks?.widen;
  if (!widen) return;
  let told = false;
  for (;;) {
    if (deps.signal.aborted)
      throw new JobCancelled(`job ${deps.jobId} cancelled while taking its locks back`);
    deps.locks?.throwIfLost();
    if (await widen.call(deps.locks, resources)) break;
    if (!told) {
      told = true;
      await deps.note({ approvals: "approved", waitingForLocks: resources });
    }
    await pause();
  }
  await deps.note({ approvals: "approved", locksTakenBack: resources });
}

function notGranted(state: ApprovalState): ApprovalNotGranted {
  const d = state.device;
  switch (state.status) {
    case "rejected":
      return new ApprovalNotGranted(
        `${d}: rejected by ${state.rejection?.principal ?? "?"}: ${state.rejection?.reason ?? ""}; nothing was changed`,
        "rejected",
        d,
      );
    case "expired":
      return new ApprovalNotGranted(
        `${d}: approvals expired at ${state.expiresAt} with ${state.approvals.length}/${state.required} granted; nothing was changed`,
        "expired",
        d,
      );
    default:
      return new ApprovalNotGranted(
        `${d}: approval request is ${state.status}; nothing was changed`,
        state.status,
        d,
      );
  }
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new JobCancelled("job cancelled while awaiting approval"));
    const t = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(new JobCancelled("job cancelled while awaiting approval"));
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
