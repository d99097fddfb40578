// Errors the engine raises, and how any error a step ends with is described. Errors keep their type (`name`) all
// the way into the job result; whether the queue may retry is one question, `err instanceof NonRetryable`
// (src/errors): the engine's own errors are all NonRetryable (a runbook bug, a device the job did not lock, a reply
// without what the step relies on cannot be fixed by running again).
import { redact } from "../config/secret.ts";
import { isRetryable, markNonRetryable, NonRetryable } from "../errors/non-retryable.ts";

export { isRetryable, markNonRetryable, NonRetryable };

/** Base for the engine's (and the runbooks') own errors: never retried. */
export class EngineError extends NonRetryable {}

/** The job's parameters do not match the runbook's schema. */
export class ParamsInvalid extends EngineError {
  override name = "ParamsInvalid";
}

/** A runbook is malformed (duplicate step ids, bad names): a programming error, found at definition time. */
export class RunbookDefinitionError extends EngineError {
  override name = "RunbookDefinitionError";
}

/** A step reached for a device or host that the runbook's targets() did not declare, so the queue never locked it. */
export class TargetNotLocked extends EngineError {
  override name = "TargetNotLocked";
}

/** A parsed reply lacks the fields a step relies on: fail closed instead of guessing. */
export class UnexpectedResult extends EngineError {
  override name = "UnexpectedResult";
}

/** The device answered with an identity (serial) other than the fleet file declares: wrong box, stop. */
export class DeviceIdentityMismatch extends EngineError {
  override name = "DeviceIdentityMismatch";
}

/** A step was about to reboot a device that lacks the KB0019789 reboot patch. */
export class RebootUnsafe extends EngineError {
  override name = "RebootUnsafe";
}

/** A checkpoint already exists for this step: another worker finished it, or the job id was reused. */
export class CheckpointConflict extends EngineError {
  override name = "CheckpointConflict";
}

/** A step asked for a checkpoint of a step that has not finished (a runbook ordering bug). */
export class MissingCheckpoint extends EngineError {
  override name = "MissingCheckpoint";
}

/** The job was cancelled (its AbortSignal fired) between steps or while a step waited. */
export class JobCancelled extends EngineError {
  override name = "JobCancelled";
}

/** A capability (ctx.azure, ctx.guard) the step needs was not wired into this engine. */
export class CapabilityUnavailable extends EngineError {
  override name = "CapabilityUnavailable";
}

/** The JSON shape of an error in job results, checkpoints and evidence. Messages are redacted. */
export interface ErrorInfo {
  type: string;
  message: string;
  retryable: boolean;
  device?: string;
  host?: string;
  command?: string;
  code?: string;
}

/** Describe an error for job results and evidence: type, redacted message, and the context fields errors carry. */
export function describeError(err: unknown): ErrorInfo {
  if (!(err instanceof Error)) return { type: "NonError", message: redact(String(err)), retryable: false };
  const info: ErrorInfo = { type: err.name, message: redact(err.message), retryable: isRetryable(err) };
  // Typed errors from the shell/transport carry where they happened; copy the plain string fields only.
  const fields: Partial<Record<keyof ErrorInfo, unknown>> = err;
  for (const key of ["device", "host", "command", "code"] as const) {
    const v = fields[key];
    if (typeof v === "string") info[key] = redact(v);
  }
  return info;
}
