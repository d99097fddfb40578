// The one reply path: a command goes out through the shell driver (which frames its reply: raw text and the footer it
// saw), and its one parser — the one the command vocabulary names for it — says what the reply means: the parser's own
// typed value, or the device's error with its code, name, message and every warning. A reply the parser cannot read
// abandons the session (the stream may be out of step) and fails closed. Nothing else in lunafleet reads device text.
import { type CommandParser, interpret, resolveCommand } from "../../parsers/index.ts";
import { CommandRefused, DeviceError, ParseFailed } from "./errors.ts";
import type { RunOptions, RunOutput, ShellSession } from "./session.ts";

/** A reply as its parser read it: the value, or the device's own error (a finding a step may act on). */
export type Reply<T> = { ok: true; value: T } | { ok: false; error: DeviceError };

export interface Sent<T> {
  /** The framed reply (raw text, footer, notices, confirmations answered). */
  output: RunOutput;
  reply: Reply<T>;
}

/**
 * Send `command` through `session` and read the reply with `parser`. The parser must be the one the vocabulary names
 * for the command on this session's shell — checked before anything is sent (a command nobody can read is not sent).
 */
export async function sendCommand<T>(
  session: Pick<ShellSession, "run" | "abandon" | "target" | "platform">,
  command: string,
  parser: CommandParser<T>,
  opts: RunOptions = {},
): Promise<Sent<T>> {
  const shell = session.platform.kind;
  const resolved = resolveCommand(shell, command);
  const expected = resolved.ok ? resolved.entry.parser : undefined;
  if (parser.shell !== shell || expected !== parser.slug)
    throw new CommandRefused(
      { target: session.target, command },
      "reply-without-parser",
      resolved.ok
        ? `the reply of ${shell} '${resolved.canonical}' is read by ${expected ? `the '${expected}' parser` : "no parser"}, not '${parser.slug}': a command whose reply nobody reads is not sent`
        : resolved.reason,
    );
  const output = await session.run(command, opts);
  const read = interpret(parser, output.raw);
  if (read.ok) return { output, reply: { ok: true, value: read.value } };
  if ("deviceError" in read)
    return {
      output,
      reply: { ok: false, error: new DeviceError({ target: session.target, command }, read.deviceError) },
    };
  session.abandon(`unreadable reply to '${command}' (${read.parseError.reason})`);
  throw new ParseFailed(
    { target: session.target, command, cause: `unparseable output: ${read.parseError.reason}` },
    output.raw,
  );
}
