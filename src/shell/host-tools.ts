// The client tools run from a client host's OS shell (`vtl`). The OS shell's session returns raw text (it has no
// footer); the reply of each tool command goes to its parser in parsers/ like every other command's. A tool command
// without a parser is refused rather than returned unparsed: a step that reads must know what it read.
import { DeviceError, ParseFailed } from "../transport/errors.ts";
import { lunaOutputParser } from "./output-parser.ts";
import type { RunOptions, ShellSession } from "./session.ts";

/** A client host's OS shell as a step sees it: replies come back parsed (a value, or the typed error as result). */
export interface ClientToolShell {
  readonly usable: boolean;
  run(command: string, opts?: RunOptions): Promise<{ command: string; raw: string; result: unknown }>;
}

export function clientToolShell(session: ShellSession): ClientToolShell {
  return {
    get usable() {
      return session.usable;
    },
    async run(command, opts) {
      const out = await session.run(command, { ...opts, parse: false });
      return { command, raw: out.raw, result: parseClientTool(session.target, command, out.raw) };
    },
  };
}

function parseClientTool(host: string, command: string, raw: string): unknown {
  if (/^vtl\s+(addServer|deleteServer)\b/i.test(command)) return vtlChangeResult(host, command, raw);
  if (!lunaOutputParser.has("lunacm", command))
    return new ParseFailed(
      { target: host, command, cause: "no parser exists for this client-host command" },
      raw,
    );
  // The session returned because the OS shell's prompt came back at the start of a line, so the output ended with a
  // line end that the session trimmed along with the prompt; give it back so the parser sees a complete capture.
  const parsed = lunaOutputParser.parse("lunacm", command, raw.endsWith("\n") ? raw : `${raw}\n`);
  if (parsed.ok) return parsed.value;
  if ("deviceError" in parsed) {
    const d = parsed.deviceError;
    return new DeviceError({ target: host, command }, d.code, d.name, d.message);
  }
  return new ParseFailed(
    { target: host, command, cause: `unparseable output: ${parsed.parseError.reason}` },
    raw,
  );
}

/**
 * `vtl addServer` / `vtl deleteServer` print one line of success (§8.5) or an `Error:` line; nothing else is
 * accepted, so a garbled reply is never taken for a change that happened.
 */
function vtlChangeResult(host: string, command: string, raw: string): unknown {
  const text = raw.replace(/\r/g, "");
  const error = /^Error:\s*(.*)$/m.exec(text);
  if (error) return new DeviceError({ target: host, command }, "ERROR", "VTL_ERROR", error[1]?.trim() ?? "");
  const done =
    /^(New server \S+ successfully added to server list\.|Server \S+ successfully deleted from server list\.)$/m.exec(
      text,
    );
  if (done && text.trim() === done[0]) return { message: done[0] };
  return new ParseFailed(
    { target: host, command, cause: "unrecognised vtl reply (expected one success line)" },
    raw,
  );
}
