// A session as a step sees it: before each command the job must still hold its locks and not be cancelled; every
// command, raw reply and parse goes on the job's evidence (redacted); device errors and replies without the fields
// the step relies on throw their typed error (fail closed).
import type { z } from "zod";
import { redact } from "../config/secret.ts";
import { describeError, JobCancelled, UnexpectedResult } from "./errors.ts";
import type { CommandOptions, DeviceShell, ShellReply, StepRecorder } from "./ports.ts";

export interface StepShell {
  /** Send one command; throws the typed error when the device refused or the reply could not be parsed. */
  run(command: string, opts?: CommandOptions): Promise<ShellReply>;
  /**
   * Send one command (a read or a change) and check its parsed reply carries the fields `schema` describes (fail
   * closed); returns them.
   */
  send<T>(command: string, schema: z.ZodType<T>, opts?: CommandOptions): Promise<T>;
}

export interface ShellGate {
  signal: AbortSignal;
  /** Throws when the job no longer holds its device locks: someone else may hold the device now. */
  assertLocked: () => void;
}

export function recordedShell(
  shell: DeviceShell,
  via: "lunash" | "lunacm" | "host",
  on: string,
  record: StepRecorder,
  gate: ShellGate,
): StepShell {
  const run = async (command: string, opts?: CommandOptions): Promise<ShellReply> => {
    if (gate.signal.aborted)
      throw new JobCancelled(`job cancelled before '${redact(command)}' was sent to ${on}`);
    gate.assertLocked();
    await record("command", { via, on, command });
    let reply: ShellReply;
    try {
      reply = await shell.run(command, opts);
    } catch (err) {
      await record("error", { via, on, command, error: describeError(err) });
      throw err;
    }
    await record("reply", { via, on, command, raw: reply.raw });
    const outcome = unwrapResult(reply.result);
    if ("error" in outcome) {
      await record("parse", { via, on, command, error: describeError(outcome.error) });
      throw outcome.error;
    }
    await record("parse", { via, on, command, result: outcome.value });
    return { command: reply.command, raw: reply.raw, result: outcome.value };
  };
  return {
    run,
    async send(command, schema, opts) {
      const reply = await run(command, opts);
      const checked = schema.safeParse(reply.result);
      if (!checked.success) {
        const fields = checked.error.issues.map((i) => i.path.join(".") || "(value)").join(", ");
        throw Object.assign(
          new UnexpectedResult(`${on}: '${command}' parsed without the expected fields (${fields})`),
          via === "lunash" ? { device: on, command } : { host: on, command },
        );
      }
      return checked.data;
    },
  };
}

/** The value of a reply's result, or the typed error it carries (thrown). */
function unwrapResult(result: unknown): { value: unknown } | { error: Error } {
  if (result instanceof Error) return { error: result };
  if (typeof result === "object" && result !== null && typeof (result as { ok?: unknown }).ok === "boolean") {
    const r = result as { ok: boolean; value?: unknown; error?: unknown };
    if (r.ok) return { value: r.value };
    return {
      error:
        r.error instanceof Error
          ? r.error
          : new UnexpectedResult(`device reported an error: ${String(r.error)}`),
    };
  }
  return { value: result };
}
