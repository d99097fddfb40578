// What a step sees. Runbooks reach devices, hosts, probes, files, Azure and the guard only through this context: it
// checks that a device or host belongs to the job's (locked) targets, and hands out the recorded forms of each port
// (recorded-shell.ts, recorded-io.ts, recorded-azure.ts), which put every command, reply and parse on the evidence
// and fail closed on device errors and on replies that lack what the step relies on.
import { getClientHost } from "../config/model.ts";
import type { Fleet } from "../config/schema.ts";
import type { FactSink, Observation, ObservationInput } from "../facts/model.ts";
import { type ApprovalWaitOptions, type JobLocksPort, waitForApproval } from "./approval-wait.ts";
import { CapabilityUnavailable, JobCancelled, MissingCheckpoint, TargetNotLocked } from "./errors.ts";
import { type HostCheckOutcome, type HostCheckPort, recordedHostCheck } from "./host-check-port.ts";
import { type Json, toRedactedJson } from "./json.ts";
import { type KeyVaultPort, recordedKeyVault, type StepKeyVault } from "./key-vault-ports.ts";
import type {
  ApprovalRequest,
  ApprovalState,
  ApprovalsPort,
  AzurePort,
  EvidenceKind,
  EvidenceSink,
  FileTransport,
  GuardPort,
  JobLogger,
  NetProbes,
  ShellPort,
  StateStore,
} from "./ports.ts";
import { recordedAzure } from "./recorded-azure.ts";
import {
  recordedFiles,
  recordedProbes,
  type StepFiles,
  type StepProbes,
  type StepScope,
} from "./recorded-io.ts";
import { recordedShell, type StepShell } from "./recorded-shell.ts";
import type { JobTargets, StepRef, StepResult } from "./runbook.ts";

export type { ClientHandshakeOptions, StepFiles, StepProbes } from "./recorded-io.ts";
export type { StepShell } from "./recorded-shell.ts";

export interface StepContext<P = unknown> {
  readonly params: P;
  readonly fleet: Fleet;
  readonly jobId: string;
  /** Expanded id of the running step (`hsm-show:hsm-a1`). */
  readonly stepId: string;
  /** The device or client host of a forEach step. */
  readonly target: string | undefined;
  readonly targets: JobTargets;
  readonly signal: AbortSignal;
  lunash(device: string): Promise<StepShell>;
  lunacm(host: string): Promise<StepShell>;
  /** The OS shell of a client host: `vtl verify`, `vtl listServers` (the command policy allows vtl and lunacm only). */
  hostShell(host: string): Promise<StepShell>;
  readonly tcp: StepProbes;
  /** Certificate files on devices and client hosts (recorded as evidence by size and SHA-256). */
  readonly files: StepFiles;
  /** Durable key-value facts across jobs (e.g. the HA breaker); keys are namespaced by the store. */
  readonly state: StateStore;
  /** Put something on the job's record (a decision, an operator-facing finding); redacted, tagged with the step. */
  readonly evidence: { note(data: unknown): Promise<void> };
  /**
   * The fleet state model (src/facts): record what this step saw, each fact with its status (ok, problem,
   * check-failed, unknown); when, by which job and runbook is added here. Redacted. Not wired (direct runs in tests):
   * nothing is kept.
   */
  readonly facts: { observe(...observations: ObservationInput[]): Promise<void> };
  /** The result of a finished step of this job (also one finished before a resume); undefined if not finished. */
  checkpoint(stepId: string, target?: string): Json | undefined;
  /** Like checkpoint(), but a missing result is an error: use for steps that must have run first. */
  requireCheckpoint(stepId: string, target?: string): Json;
  /** The result of a step of this job that must have finished, typed by that step's own run(). */
  resultOf<S extends StepRef>(step: S, target?: string): StepResult<S>;
  /** The result of a step of this job if it finished (also before a resume), typed by its run(); else undefined. */
  findResultOf<S extends StepRef>(step: S, target?: string): StepResult<S> | undefined;
  readonly log: JobLogger;
  /** ARM, recorded: every call is an `azure` evidence record; deletes check the job's locks and signal first. */
  readonly azure: AzurePort;
  /** Managed HSM, Key Vault, the crypto gate and Graph, recorded (src/engine/key-vault-ports.ts). */
  readonly keyVault: StepKeyVault;
  /** The application crypto gate's check command on a client host the job locked (exit status 0 = passed). */
  hostCheck(host: string, command: string): Promise<HostCheckOutcome>;
  readonly guard: GuardPort;
  /** This job's approvals: ask (idempotent) and read; operators approve through `lunafleet approve`. */
  readonly approvals: {
    request(req: ApprovalRequest): Promise<ApprovalState>;
    state(): Promise<ApprovalState | null>;
    /**
     * Ask and wait in `awaiting-approval` until approved (resolves), rejected/expired/withdrawn (ApprovalNotGranted)
     * or cancelled, holding only the locks of the devices it will change (src/engine/approval-wait.ts).
     */
    waitFor(req: ApprovalRequest, opts?: ApprovalWaitOptions): Promise<ApprovalState>;
  };
}

export interface ContextDeps<P> {
  params: P;
  fleet: Fleet;
  jobId: string;
  targets: JobTargets;
  signal: AbortSignal;
  /** Throws when the job no longer holds its device locks (DeviceLockSet.throwIfLost); checked before every command. */
  assertLocked: () => void;
  evidence: EvidenceSink;
  actor?: string;
  /** The job's sessions (src/shell JobShells): one per target, shared by its steps and its guard. */
  shells: ShellPort;
  files?: FileTransport;
  probes: NetProbes;
  log: JobLogger;
  /** Results of finished steps by expanded id; the runner adds to it as steps finish. */
  results: ReadonlyMap<string, Json>;
  azure?: AzurePort;
  keyVault?: KeyVaultPort;
  hostChecks?: HostCheckPort;
  guard?: GuardPort;
  approvals?: ApprovalsPort;
  /** The job's runbook name and admitted plan digest (engine/admit.ts), recorded with approval requests. */
  runbook?: string;
  planDigest?: string;
  /** The job's locks (narrowed while it waits for approvals); absent = the wait keeps every lock. */
  locks?: JobLocksPort;
  /** How often a job waiting for approvals re-reads them (default 1 s). */
  approvalPollMs?: number;
  state?: StateStore;
  /** The fleet state model; `observed` collects `<subject>#<fact>` of what this step recorded (for check-failed). */
  facts?: FactSink;
  observed?: Set<string>;
  now?: () => Date;
}

/** Observations as the engine stores them: redacted, with when, by which job and runbook. */
export function toObservations(
  inputs: readonly ObservationInput[],
  at: Date,
  jobId: string,
  by: string,
): Observation[] {
  return inputs.map((o) => {
    const clean = toRedactedJson(o) as unknown as ObservationInput;
    return { ...clean, observedAt: at.toISOString(), jobId, by };
  });
}

export function createStepContext<P>(
  deps: ContextDeps<P>,
  step: { id: string; target?: string },
): StepContext<P> {
  const record = async (kind: EvidenceKind, data: Record<string, unknown>) => {
    // The sink redacts (EvidenceSink): redacting here too walked every record's data twice.
    await deps.evidence.append(kind, { step: step.id, ...data }, deps.actor);
  };
  const notLocked = (what: string, name: string, locked: string[]) =>
    new TargetNotLocked(
      `step '${step.id}' reached for ${what} '${name}', which is not among the job's targets (${locked.join(", ") || "none"})`,
    );
  const scope: StepScope = {
    stepId: step.id,
    fleet: deps.fleet,
    record,
    signal: deps.signal,
    assertLocked: deps.assertLocked,
    device(name) {
      if (!deps.targets.devices.includes(name)) throw notLocked("device", name, deps.targets.devices);
      return name;
    },
    clientHost(name) {
      if (!deps.targets.clientHosts.includes(name))
        throw notLocked("client host", name, deps.targets.clientHosts);
      return name;
    },
  };
  const checkpoint = (stepId: string, target?: string) =>
    deps.results.get(target === undefined ? stepId : `${stepId}:${target}`);
  const requireCheckpoint = (stepId: string, target?: string): Json => {
    const r = checkpoint(stepId, target);
    if (r === undefined)
      throw new MissingCheckpoint(
        `step '${step.id}' needs the result of '${target === undefined ? stepId : `${stepId}:${target}`}', which has not finished`,
      );
    return r;
  };
  let probes: StepProbes | undefined;
  let files: StepFiles | undefined;
  const capability = <T>(value: T | undefined, name: string): T => {
    if (value === undefined)
      throw new CapabilityUnavailable(`step '${step.id}': ctx.${name} is not wired into this engine`);
    return value;
  };

  return {
    params: deps.params,
    fleet: deps.fleet,
    jobId: deps.jobId,
    stepId: step.id,
    target: step.target,
    targets: deps.targets,
    signal: deps.signal,
    lunash: async (name) =>
      recordedShell(await deps.shells.lunash(scope.device(name)), "lunash", name, record, deps),
    lunacm: async (name) =>
      recordedShell(await deps.shells.lunacm(scope.clientHost(name)), "lunacm", name, record, deps),
    hostShell: async (name) =>
      recordedShell(await deps.shells.hostShell(scope.clientHost(name)), "host", name, record, deps),
    // Made when a step first reaches for them: most steps use neither, and every step makes a context.
    get tcp(): StepProbes {
      probes ??= recordedProbes(deps.probes, scope);
      return probes;
    },
    get files(): StepFiles {
      files ??= recordedFiles(deps.files, scope);
      return files;
    },
    get state(): StateStore {
      return capability(deps.state, "state");
    },
    evidence: { note: (data) => record("note", { data }) },
    facts: {
      async observe(...observations) {
        if (!deps.facts || observations.length === 0) return;
        const at = (deps.now ?? (() => new Date()))();
        await deps.facts.record(toObservations(observations, at, deps.jobId, deps.runbook ?? "?"));
        for (const o of observations) deps.observed?.add(`${o.subject}#${o.fact}`);
      },
    },
    checkpoint,
    requireCheckpoint,
    // A checkpoint is the JSON of exactly what that step's run() returned (runner.ts resultJson): it has that type.
    // This is the one place the engine says so; runbooks read results typed, never cast.
    resultOf: <S extends StepRef>(ref: S, target?: string) =>
      requireCheckpoint(ref.id, target) as StepResult<S>,
    findResultOf: <S extends StepRef>(ref: S, target?: string) =>
      checkpoint(ref.id, target) as StepResult<S> | undefined,
    log: deps.log,
    get azure(): AzurePort {
      return recordedAzure(capability(deps.azure, "azure"), record, deps);
    },
    hostCheck: async (name, command) =>
      recordedHostCheck(
        capability(deps.hostChecks, "hostCheck"),
        getClientHost(deps.fleet, scope.clientHost(name)),
        command,
        record,
        deps,
      ),
    get keyVault(): StepKeyVault {
      return recordedKeyVault(capability(deps.keyVault, "keyVault"), {
        stepId: step.id,
        fleet: deps.fleet,
        record,
        signal: deps.signal,
        assertLocked: deps.assertLocked,
        lockedAzure: deps.targets.azure ?? [],
      });
    },
    get approvals() {
      const port = capability(deps.approvals, "approvals");
      // The job's runbook and plan digest go with every request: they are part of what an approver approves.
      const request = (req: ApprovalRequest) =>
        port.request(deps.jobId, {
          ...(deps.runbook ? { runbook: deps.runbook } : {}),
          ...(deps.planDigest ? { planDigest: deps.planDigest } : {}),
          ...req,
        });
      const state = () => port.state(deps.jobId);
      return {
        request,
        state,
        waitFor: (req: ApprovalRequest, opts?: ApprovalWaitOptions) =>
          waitForApproval(
            {
              jobId: deps.jobId,
              request,
              state,
              note: (data) => record("note", { data }),
              log: deps.log,
              signal: deps.signal,
              ...(deps.locks ? { locks: deps.locks } : {}),
              pollMs: deps.approvalPollMs ?? 1_000,
            },
            req,
            opts,
          ),
      };
    },
    get guard(): GuardPort {
      return lockedGuard(capability(deps.guard, "guard"), scope);
    },
  };
}

/** The guard as a step reaches it: only for a device the job locked, and only while the job holds its locks. */
function lockedGuard(guard: GuardPort, scope: StepScope): GuardPort {
  const locked = (device: string, what: string) => {
    try {
      scope.device(device);
    } catch {
      throw new TargetNotLocked(
        `step '${scope.stepId}' asked the guard for ${what} '${device}', which is not among the job's targets`,
      );
    }
  };
  return {
    async login(device, role, opts) {
      // The guard's fence check is against the job's own device lock.
      locked(device, "a login to");
      scope.assertLocked();
      return guard.login(device, role, opts);
    },
    async sanctionedZeroize(device) {
      locked(device, "the sanctioned zeroize of");
      if (scope.signal.aborted) throw new JobCancelled(`job cancelled before the zeroize of ${device}`);
      scope.assertLocked();
      if (!guard.sanctionedZeroize)
        throw new CapabilityUnavailable(
          `step '${scope.stepId}': this engine's guard offers no sanctioned zeroize; nothing was sent`,
        );
      return guard.sanctionedZeroize(device);
    },
  };
}
