// A session as a step sees it. Before each command the job must still hold its locks and not be cancelled; the
// command goes out through the one reply path (src/shell/reply.ts: the driver frames the reply, the command's own
// parser reads it), and the command, the raw reply and what the parser made of it go on the job's evidence
// (redacted). A step gets the parser's own type back; the device's refusal is its typed error (send) or a typed
// finding (attempt); a reply nobody can read fails closed.
import type { CommandParser } from "../../parsers/index.ts";
import { redact } from "../config/secret.ts";
import type { Reply, Sent } from "../shell/reply.ts";
import { sendCommand } from "../shell/reply.ts";
import { describeError, JobCancelled } from "./errors.ts";
import type { CommandOptions, DeviceShell, StepRecorder } from "./ports.ts";

export type { Reply };

export interface StepShell {
  /**
   * Send one command — a read or a change — and return its reply as `parser` reads it. `parser` must be the one the
   * command vocabulary names for the command (`parsers.hsmShow` for `hsm show`), or nothing is sent. The device's
   * refusal throws its DeviceError (code, name, message, warnings); an unreadable reply throws ParseFailed.
   */
  send<T>(command: string, parser: CommandParser<T>, opts?: CommandOptions): Promise<T>;
  /** Like send(), but the device's refusal comes back as `{ ok: false, error }`: a finding the step may report. */
  attempt<T>(command: string, parser: CommandParser<T>, opts?: CommandOptions): Promise<Reply<T>>;
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
  const attempt = async <T>(
    command: string,
    parser: CommandParser<T>,
    opts?: CommandOptions,
  ): Promise<Reply<T>> => {
    if (gate.signal.aborted)
      throw new JobCancelled(`job cancelled before '${redact(command)}' was sent to ${on}`);
    gate.assertLocked();
    await record("command", { via, on, command });
    let sent: Sent<T>;
    try {
      sent = await sendCommand(shell, command, parser, opts);
    } catch (err) {
      await record("error", { via, on, command, error: describeError(err) });
      throw err;
    }
    await record("reply", { via, on, command, raw: sent.output.raw });
    if (sent.reply.ok)
      await record("parse", { via, on, command, parser: parser.slug, result: sent.reply.value });
    else
      await record("parse", {
        via,
        on,
        command,
        parser: parser.slug,
        deviceError: { ...sent.reply.error.report },
      });
    return sent.reply;
  };
  return {
    attempt,
    async send(command, parser, opts) {
      const reply = await attempt(command, parser, opts);
      if (!reply.ok) throw reply.error;
      return reply.value;
    },
  };
}
