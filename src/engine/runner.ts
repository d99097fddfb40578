// Run one job of a runbook: validate params, record the request, then walk the expanded steps in order. A step
// that already has a checkpoint is not run again (its recorded result stands); every other step runs, and its
// result is checkpointed before the next one starts. The first error stops the job and keeps its type.
import type { z } from "zod";
import type { Fleet } from "../config/schema.ts";
import { redact } from "../config/secret.ts";
import type { FactSink } from "../facts/model.ts";
import { probeTcp, probeTls } from "../net/probe.ts";
import { type AdmittedJob, admitJob } from "./admit.ts";
import type { JobLocksPort } from "./approval-wait.ts";
import type { CheckpointRecord, CheckpointStore } from "./checkpoints.ts";
import { describeError, type ErrorInfo, JobCancelled, RunbookDefinitionError } from "./errors.ts";
import type { HostCheckPort } from "./host-check-port.ts";
import { type Json, toRedactedJson } from "./json.ts";
import type { KeyVaultPort } from "./key-vault-ports.ts";
import { GOAL_NOT_MET, type JobOutcome, type Verdict } from "./outcome.ts";
import type {
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
import type { ExpandedStep, JobTargets, Runbook, StepKind, StepRef, StepResult } from "./runbook.ts";
import { createStepContext, toObservations } from "./step-context.ts";
import { uncheckedFacts } from "./unchecked-facts.ts";

/** How the engine ended the job; `outcome` says what it amounts to (src/engine/outcome.ts). */
export type JobStatus = "succeeded" | "failed" | "cancelled";

/** done = ran in this attempt; resumed = finished in an earlier attempt (not re-run); pending = never started. */
export type StepStatus = "done" | "resumed" | "failed" | "pending";

export interface StepOutcome {
  id: string;
  title: string;
  kind: StepKind;
  target?: string;
  status: StepStatus;
  result?: Json;
  error?: ErrorInfo;
  startedAt?: string;
  finishedAt?: string;
}

export interface JobResult {
  jobId: string;
  runbook: string;
  status: JobStatus;
  /** succeeded | succeeded-with-findings | nothing-to-do | failed | cancelled: the word jobs, job, --wait and metrics use. */
  outcome: JobOutcome;
  /** What an operator should look at (succeeded-with-findings), or why the goal was not reached (failed verdict). */
  findings?: string[];
  targets?: JobTargets;
  steps: StepOutcome[];
  /** Why the job did not succeed; `retryable` tells the queue whether a retry (resuming here) may help. */
  error?: ErrorInfo;
}

export interface RunJobOptions<S extends z.ZodType> {
  runbook: Runbook<S>;
  params: unknown;
  /**
   * The job as the worker admitted it (parameters parsed, targets resolved, steps expanded) before taking its locks;
   * the runner does not compute it again. Absent: the runner admits the job itself (direct callers, tests).
   */
  admitted?: AdmittedJob<S>;
  jobId: string;
  fleet: Fleet;
  /** The job's sessions (src/shell JobShells), shared by its steps and its guard. */
  shells: ShellPort;
  /** Certificate files (src/shell jobFiles); ctx.files throws CapabilityUnavailable without it. */
  files?: FileTransport;
  evidence: EvidenceSink;
  checkpoints: CheckpointStore;
  signal?: AbortSignal;
  /**
   * The job's device locks (src/queue DeviceLockSet). Checked before every step and every command: a job that lost
   * a lock stops (LockLostError) and resumes later from its last checkpoint.
   */
  locks?: JobLocksPort;
  /** BullMQ's attempt number (1 = first); a later attempt's evidence says "resumed", not "requested". */
  attempt?: number;
  /** Who asked (operator principal, `schedule:<window>`, `alert:<id>`), recorded with every evidence record. */
  actor?: string;
  log?: JobLogger;
  probes?: NetProbes;
  azure?: AzurePort;
  /** Managed HSM / Key Vault (src/azure keyVaultAccessFor); ctx.keyVault throws CapabilityUnavailable without it. */
  keyVault?: KeyVaultPort;
  /** The crypto gate's check commands on client hosts (src/shell hostChecks); ctx.hostCheck needs it. */
  hostChecks?: HostCheckPort;
  guard?: GuardPort;
  /** Approvals store (src/coord/approvals.ts approvalsPort); steps see it bound to this job as ctx.approvals. */
  approvals?: ApprovalsPort;
  /** How often a job waiting for approvals re-reads them (default 1 s). */
  approvalPollMs?: number;
  /** The fleet state model (src/facts RedisFactStore): what steps observe, and check-failed for what they could not. */
  facts?: FactSink;
  /** Durable key-value facts across jobs (RedisStateStore); ctx.state throws CapabilityUnavailable without it. */
  state?: StateStore;
  now?: () => Date;
}

const silent: JobLogger = { info() {}, warn() {}, error() {}, debug() {} };
const realProbes: NetProbes = { tcp: probeTcp, tls: probeTls };

export async function runJob<S extends z.ZodType>(opts: RunJobOptions<S>): Promise<JobResult> {
  const { runbook, jobId, fleet, evidence, checkpoints } = opts;
  const now = opts.now ?? (() => new Date());
  const log = opts.log ?? silent;
  const signal = opts.signal ?? new AbortController().signal;
  const assertLocked = () => opts.locks?.throwIfLost();
  const append = (kind: EvidenceKind, data: Record<string, unknown>) =>
    evidence.append(kind, { jobId, runbook: runbook.name, ...data }, opts.actor);
  const failed = (err: unknown, steps: StepOutcome[] = [], targets?: JobTargets): JobResult => {
    const status = err instanceof JobCancelled ? "cancelled" : "failed";
    return {
      jobId,
      runbook: runbook.name,
      status,
      outcome: status,
      ...(targets ? { targets } : {}),
      steps,
      error: describeError(err),
    };
  };

  // 1. Parameters and targets (admitted once, by the worker before its locks, or here). A job that cannot say what
  //    it will touch touches nothing.
  let params: z.output<S>;
  let targets: JobTargets;
  let plan: ExpandedStep<z.output<S>>[];
  let planDigest: string;
  try {
    const admitted = opts.admitted ?? admitJob(runbook, opts.params, fleet);
    params = admitted.params;
    targets = admitted.targets;
    plan = admitted.steps;
    planDigest = admitted.planDigest;
  } catch (err) {
    const rejected = failed(err);
    await append("requested", { params: opts.params });
    await append("error", { error: rejected.error });
    await append("result", { status: rejected.status, outcome: rejected.outcome, error: rejected.error });
    return rejected;
  }

  // 2. What an earlier attempt of this job already finished. Without Redis or evidence nothing may run.
  let finished: Map<string, CheckpointRecord>;
  const planned = new Set(plan.map((s) => s.id));
  try {
    finished = await checkpoints.finishedSteps(jobId);
    const stale = [...finished.keys()].filter((id) => !planned.has(id));
    if (stale.length > 0)
      log.warn({ jobId, stale }, "checkpoints exist for steps this plan no longer has (fleet changed?)");
    if (finished.size === 0 && (opts.attempt ?? 1) <= 1) {
      await append("requested", { params, targets });
      await append("plan", {
        steps: plan.map((s) => ({ id: s.id, title: s.title, kind: s.kind, commands: s.commands })),
      });
    } else {
      // The same job again (a retry after a crash or a retryable error): its evidence continues the same chain.
      await append("note", {
        event: "resumed",
        attempt: opts.attempt ?? null,
        alreadyFinished: [...finished.keys()].filter((id) => planned.has(id)),
      });
    }
  } catch (err) {
    log.error(
      { jobId, error: describeError(err) },
      "cannot read checkpoints or write evidence; nothing was run",
    );
    return failed(err, [], targets);
  }

  // 3. The steps, in order.
  const results = new Map<string, Json>();
  const outcomes: StepOutcome[] = plan.map((s) => ({
    id: s.id,
    title: s.title,
    kind: s.kind,
    ...(s.target !== undefined ? { target: s.target } : {}),
    status: "pending" as StepStatus,
  }));
  for (const [i, step] of plan.entries()) {
    const outcome = outcomes[i]!;
    const done = finished.get(step.id);
    if (done) {
      results.set(step.id, done.result);
      Object.assign(outcome, resumedOutcome(done));
      await append("step", { step: step.id, event: "resumed", finishedAt: done.finishedAt });
      continue;
    }
    const startedAt = now().toISOString();
    const observed = new Set<string>();
    try {
      if (signal.aborted) throw new JobCancelled(`job ${jobId} cancelled before step '${step.id}'`);
      assertLocked();
      outcome.startedAt = startedAt;
      await append("step", { step: step.id, event: "started", title: step.title, kind: step.kind });
      log.info({ jobId, step: step.id }, "step started");
      const ctx = createStepContext(
        {
          params,
          fleet,
          jobId,
          targets,
          signal,
          assertLocked,
          evidence,
          ...(opts.actor ? { actor: opts.actor } : {}),
          shells: opts.shells,
          ...(opts.files ? { files: opts.files } : {}),
          probes: opts.probes ?? realProbes,
          log,
          results,
          ...(opts.azure ? { azure: opts.azure } : {}),
          ...(opts.keyVault ? { keyVault: opts.keyVault } : {}),
          ...(opts.hostChecks ? { hostChecks: opts.hostChecks } : {}),
          ...(opts.guard ? { guard: opts.guard } : {}),
          ...(opts.approvals ? { approvals: opts.approvals } : {}),
          ...(opts.locks ? { locks: opts.locks } : {}),
          runbook: runbook.name,
          planDigest,
          ...(opts.approvalPollMs !== undefined ? { approvalPollMs: opts.approvalPollMs } : {}),
          ...(opts.state ? { state: opts.state } : {}),
          ...(opts.facts ? { facts: opts.facts } : {}),
          observed,
          now,
        },
        step,
      );
      const result = resultJson(step.id, await step.run(ctx));
      const finishedAt = now().toISOString();
      // A step that outlived its locks may have raced another job: do not commit it; the retry re-runs it.
      assertLocked();
      // The checkpoint is the step's commit point: written before anything else happens.
      await checkpoints.recordStepResult(jobId, step.id, result, {
        title: step.title,
        startedAt,
        finishedAt,
      });
      results.set(step.id, result);
      Object.assign(outcome, { status: "done", result, finishedAt });
      if (step.facts && opts.facts) {
        const seen = step.facts(result, { params, fleet, target: step.target, targets });
        if (seen.length > 0) await opts.facts.record(toObservations(seen, now(), jobId, runbook.name));
      }
      await append("step", { step: step.id, event: "finished", result });
      log.info({ jobId, step: step.id }, "step finished");
    } catch (err) {
      const error = describeError(err);
      Object.assign(outcome, {
        status: err instanceof JobCancelled ? "pending" : "failed",
        error,
        finishedAt: now().toISOString(),
      });
      log.error({ jobId, step: step.id, error }, "step failed");
      await append("error", { step: step.id, error }).catch((e: unknown) =>
        log.error({ jobId, error: describeError(e) }, "evidence append failed"),
      );
      // What this step was to see, and what the steps left for the same target will not see now: check-failed,
      // with the reason, so no older green observation stands in for a check that failed.
      if (opts.facts && !(err instanceof JobCancelled)) {
        const unseen = uncheckedFacts(plan, i, observed);
        const reason = `${error.type}: ${error.message}${error.command ? ` (${error.command})` : ""}`;
        await opts.facts
          .record(
            toObservations(
              unseen.map((f) => ({ ...f, status: "check-failed", summary: "check failed", reason })),
              now(),
              jobId,
              runbook.name,
            ),
          )
          .catch((e: unknown) => log.error({ jobId, error: describeError(e) }, "fleet state write failed"));
      }
      const result = failed(err, outcomes, targets);
      await append("result", {
        status: result.status,
        outcome: result.outcome,
        error,
        steps: stepStatuses(outcomes),
      }).catch(() => {});
      return result;
    }
  }

  // 4. What it amounts to: the runbook's verdict over its results (never green by default when it has one).
  let verdict: Verdict;
  try {
    verdict = runbook.verdict?.({
      params,
      targets,
      result: (id, t) => results.get(t === undefined ? id : `${id}:${t}`),
      // A checkpoint is the JSON of what that step's run() returned (resultJson): it has that type.
      resultOf: <S extends StepRef>(ref: S, t?: string) =>
        results.get(t === undefined ? ref.id : `${ref.id}:${t}`) as StepResult<S> | undefined,
    }) ?? {
      outcome: "succeeded",
      findings: [],
    };
  } catch (err) {
    verdict = {
      outcome: "failed",
      findings: [`the runbook's verdict failed: ${describeError(err).message}`],
    };
  }
  const findings = verdict.findings.map((f) => redact(f));
  if (verdict.outcome === "failed") {
    const error: ErrorInfo = {
      type: GOAL_NOT_MET,
      message: findings.join("; ") || "goal not met",
      retryable: false,
    };
    await append("result", {
      status: "failed",
      outcome: "failed",
      error,
      findings,
      steps: stepStatuses(outcomes),
    });
    return {
      jobId,
      runbook: runbook.name,
      status: "failed",
      outcome: "failed",
      findings,
      targets,
      steps: outcomes,
      error,
    };
  }
  await append("result", {
    status: "succeeded",
    outcome: verdict.outcome,
    findings,
    steps: stepStatuses(outcomes),
  });
  return {
    jobId,
    runbook: runbook.name,
    status: "succeeded",
    outcome: verdict.outcome,
    ...(findings.length > 0 ? { findings } : {}),
    targets,
    steps: outcomes,
  };
}

/** A step must return JSON; anything else is a runbook bug, never retried. */
function resultJson(stepId: string, value: unknown): Json {
  try {
    return toRedactedJson(value);
  } catch (err) {
    throw new RunbookDefinitionError(
      `step '${stepId}' returned a result that is not JSON: ${(err as Error).message}`,
    );
  }
}

function stepStatuses(outcomes: StepOutcome[]): Record<string, StepStatus> {
  return Object.fromEntries(outcomes.map((o) => [o.id, o.status]));
}

function resumedOutcome(done: CheckpointRecord): Partial<StepOutcome> {
  return { status: "resumed", result: done.result, startedAt: done.startedAt, finishedAt: done.finishedAt };
}
