// Errors the engine raises, and the retry policy over every error a step can end with. Errors keep their type
// (`name`) all the way into the job result, so the queue can decide without parsing messages (Temporal's rule:
// some error types no retry policy may touch).
import { redact } from "../config/secret.ts";

/**
 * Error types that must never be retried automatically. A retry would either repeat something dangerous (a wrong
 * credential brings a device closer to zeroization) or cannot change the outcome (a pinned host key that does not
 * match, output we cannot parse, a command the policy refuses, a step that touches a device the job did not lock).
 */
export const NEVER_RETRY = new Set<string>([
  "WrongCredential",
  "AuthFailed",
  "HostKeyMismatch",
  "UnexpectedPrompt",
  "GuardRefused",
  "CommandRefused",
  "ParseFailed",
  "DeviceError",
  "ParamsInvalid",
  "UnknownRunbook",
  "UnknownTargetError",
  "TargetNotLocked",
  "UnexpectedResult",
  "DeviceIdentityMismatch",
  "RebootUnsafe",
  "CheckpointConflict",
  "RunbookDefinitionError",
  "SecretResolutionError",
]);

/** Base for the engine's own errors: `retryable` is part of the type, not a guess made later. */
export class EngineError extends Error {
  readonly retryable: boolean = false;
}

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

/**
 * The device (or client tool) itself answered with an error: a finding a read step may report rather than fail on.
 * Runbooks cannot import src/transport, so they ask here. Only this type: a parse failure or a lost connection is
 * never a finding.
 */
export function isDeviceError(err: unknown): err is Error & { code?: string } {
  return err instanceof Error && err.name === "DeviceError";
}

/** Whether the queue may retry a job that ended with `err` (it then resumes after the last checkpoint). */
export function isRetryable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const own = (err as { retryable?: unknown }).retryable;
  if (NEVER_RETRY.has(err.name)) return false;
  if (typeof own === "boolean") return own;
  // Unknown error types: transient until proven otherwise. A retry resumes after the last checkpoint and logins are
  // never inside a retry loop (the guard quarantines after any failure), so this cannot repeat a dangerous action.
  return true;
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
  const fields = err as unknown as Record<string, unknown>;
  for (const key of ["device", "host", "command", "code"] as const) {
    const v = fields[key];
    if (typeof v === "string") info[key] = redact(v);
  }
  return info;
}
