// What a runbook is: a parameter schema, the devices and hosts it touches, and ordered steps. A runbook is data the
// engine walks; plan and run expand the same list (expandSteps), so the dry run prints exactly what a run does.
import type { z } from "zod";
import type { Fleet } from "../config/schema.ts";
import type { FactRef, ObservationInput } from "../facts/model.ts";
import type { GuardRole } from "../guard/roles.ts";
import { RunbookDefinitionError } from "./errors.ts";
import type { Verdict, VerdictView } from "./outcome.ts";
import type { StepContext } from "./step-context.ts";

/** Every device and client host a job will touch. The queue locks all of them before step 1. */
export interface JobTargets {
  devices: string[];
  clientHosts: string[];
  /** Managed HSMs (fleet names) the job reads or changes: locked as `azure:<name>` like devices. */
  azure?: string[];
}

/** A read step only observes; a change step alters a device or cloud resource and must re-read state first. */
export type StepKind = "read" | "change";

/**
 * Where a planned command goes: a device's lunash, a client host's lunacm or OS shell (vtl), a probe, ARM, or the
 * operators (`approval`: the job waits for `lunafleet approve`).
 */
export type CommandChannel = "lunash" | "lunacm" | "host" | "tcp" | "tls" | "azure" | "approval" | "sftp";

/** One command a step will send, for `lunafleet plan`: the exact text and where it goes. */
export interface PlannedCommand {
  via: CommandChannel;
  /** Device name, client host name, `host:port` for probes, or an ARM resource id. */
  on: string;
  /**
   * The command as it will be sent. `<...>` stands for a value only the run knows (a slot, a server name); text after
   * two or more blanks in parentheses says when it is sent (`   (only if down)`).
   */
  command: string;
  /**
   * A login through the login guard, which first reads the device's own counter (src/guard/login-plan.ts lists what
   * it sends): the plan names the login, the guard's reads come with it.
   */
  guard?: { device: string; role: GuardRole; partition?: string };
}

/**
 * One step of a runbook. With `forEach`, the step is repeated for every target device (or client host) in the
 * order targets() lists them; each repetition has its own id (`<id>:<target>`) and its own checkpoint.
 *
 * A `change` step must begin by reading the state it is about to change: a resumed job re-runs the step that was
 * interrupted, and that step must find its own half-done work instead of repeating it.
 */
/**
 * One step of a runbook; `R` is what its run() returns (its checkpoint), which its `facts` hook reads typed. Declare
 * a step whose result another step or its own `facts` reads as `{ … } satisfies Step<Params, Result>`.
 */
export interface Step<P, R = unknown> {
  /** Lowercase words joined by '-', unique in the runbook (e.g. `hsm-show`). */
  id: string;
  /** What the operator reads in plan and results; a function gets the target of a forEach step. */
  title: string | ((target: string) => string);
  kind: StepKind;
  /** `azure`: each Managed HSM of JobTargets.azure (its commands must say where they go: via azure). */
  forEach?: "device" | "clientHost" | "azure";
  /**
   * Whether the step is part of this job at all (e.g. the application crypto gate, only where the fleet file asks
   * for it). Pure: plan and run expand the same steps. Absent = always.
   */
  when?(params: P, fleet: Fleet): boolean;
  /**
   * The exact commands this step will send, computed without connecting. A plain string is a command on the
   * step's own target: lunash for a device step, lunacm for a client-host step.
   */
  commands?(
    params: P,
    fleet: Fleet,
    target: string | undefined,
    targets: JobTargets,
  ): (string | PlannedCommand)[];
  /**
   * The facts this step observes (src/facts), computed without connecting: if the step fails, each one it did not
   * record becomes `check-failed` with the error as reason, so the report never shows an older green value instead.
   */
  observes?(params: P, fleet: Fleet, target: string | undefined, targets: JobTargets): FactRef[];
  /**
   * What the step's result tells the fleet state model, recorded by the engine once the step has finished (a step
   * may also call ctx.facts.observe() itself, e.g. right before it throws).
   */
  facts?(result: R, view: StepView<P>): ObservationInput[];
  /** Do the step. Return JSON-able data: it becomes the checkpoint (redacted) and the step's result. */
  run(ctx: StepContext<P>): Promise<R>;
}

/** Anything with a step id and a run(): what ctx.resultOf() takes to find a finished step's result. */
export interface StepRef {
  id: string;
  run(ctx: never): unknown;
}

/**
 * The result of a step: what its run() resolves to. Its checkpoint is the JSON of exactly that value, so a later step
 * reads it with this type (`ctx.resultOf(inspect, host)`). Declare a step a later one reads as a const
 * `{ … } satisfies Step<Params>` so its run()'s return type is kept.
 */
export type StepResult<S> = S extends { run(ctx: never): infer R } ? Awaited<R> : never;

/** What a step's `facts` sees besides its result. */
export interface StepView<P> {
  params: P;
  fleet: Fleet;
  target: string | undefined;
  targets: JobTargets;
}

export interface Runbook<S extends z.ZodType = z.ZodType> {
  name: string;
  description: string;
  params: S;
  targets(params: z.output<S>, fleet: Fleet): JobTargets;
  steps: Step<z.output<S>>[];
  /**
   * What a job whose steps all finished amounts to (src/engine/outcome.ts): succeeded, succeeded-with-findings,
   * nothing-to-do, or failed when its goal was not reached. Without it a finished job is `succeeded`.
   */
  verdict?(view: VerdictView<z.output<S>>): Verdict;
}

const NAME = /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/;

/** Declare a runbook; checks its shape once, at import time, so a malformed runbook never reaches a device. */
export function defineRunbook<S extends z.ZodType>(def: Runbook<S>): Runbook<S> {
  if (!NAME.test(def.name)) throw new RunbookDefinitionError(`runbook name '${def.name}' must be kebab-case`);
  if (def.steps.length === 0) throw new RunbookDefinitionError(`runbook '${def.name}' has no steps`);
  const ids = new Set<string>();
  for (const step of def.steps) {
    if (!NAME.test(step.id))
      throw new RunbookDefinitionError(`runbook '${def.name}': step id '${step.id}' must be kebab-case`);
    if (ids.has(step.id))
      throw new RunbookDefinitionError(`runbook '${def.name}': duplicate step id '${step.id}'`);
    ids.add(step.id);
  }
  return Object.freeze({ ...def, steps: Object.freeze([...def.steps]) as Step<z.output<S>>[] });
}

/** A step as it will run in one job: forEach repetitions expanded, commands resolved. */
export interface ExpandedStep<P> {
  /** `<step id>` or `<step id>:<target>`: the checkpoint key. */
  id: string;
  stepId: string;
  title: string;
  kind: StepKind;
  target?: string;
  targetKind?: "device" | "clientHost" | "azure";
  commands: PlannedCommand[];
  /** The facts it observes (Step.observes), for check-failed when it fails. */
  observes: FactRef[];
  facts?: Step<P>["facts"];
  run: Step<P>["run"];
}

/** The ordered steps of a job. Pure: used by both the runner and plan, so they cannot disagree. */
export function expandSteps<P>(steps: readonly Step<P>[], params: P, fleet: Fleet, targets: JobTargets) {
  const out: ExpandedStep<P>[] = [];
  for (const step of steps) {
    if (step.when && !step.when(params, fleet)) continue;
    const each =
      step.forEach === "device"
        ? targets.devices
        : step.forEach === "clientHost"
          ? targets.clientHosts
          : step.forEach === "azure"
            ? (targets.azure ?? [])
            : [undefined];
    for (const target of each) {
      const title = typeof step.title === "function" ? step.title(target ?? "") : step.title;
      const expanded: ExpandedStep<P> = {
        id: target === undefined ? step.id : `${step.id}:${target}`,
        stepId: step.id,
        title,
        kind: step.kind,
        commands: (step.commands?.(params, fleet, target, targets) ?? []).map((c) =>
          normalizeCommand(c, step, target),
        ),
        observes: step.observes?.(params, fleet, target, targets) ?? [],
        ...(step.facts ? { facts: step.facts } : {}),
        run: step.run,
      };
      if (target !== undefined && step.forEach) {
        expanded.target = target;
        expanded.targetKind = step.forEach;
      }
      out.push(expanded);
    }
  }
  return out;
}

function normalizeCommand<P>(c: string | PlannedCommand, step: Step<P>, target: string | undefined) {
  if (typeof c !== "string") return c;
  if (target === undefined || !step.forEach || step.forEach === "azure")
    throw new RunbookDefinitionError(
      `step '${step.id}': a bare command string needs a forEach target; say where '${c}' goes`,
    );
  return { via: step.forEach === "device" ? "lunash" : "lunacm", on: target, command: c } as PlannedCommand;
}
