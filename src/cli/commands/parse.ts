// `lunafleet parse`: run one captured lunash/lunacm output through the parser registry and print the typed result.
// Exit codes: 0 parsed (JSON value on stdout); 3 the device reported an error (`{"deviceError":{...}}` on stdout);
// 2 the text could not be explained, or the command/shell could not be determined (reason on stderr).
import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import {
  commandWords,
  detectCommand,
  parseCommandOutput,
  resolveCommand,
  type Shell,
} from "../../../parsers/index.ts";

const EXIT_PARSED = 0;
const EXIT_UNPARSEABLE = 2;
const EXIT_DEVICE_ERROR = 3;

interface ParseOptions {
  command?: string;
  shell?: string;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin)
    chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks).toString("utf8");
}

function fail(reason: string): void {
  process.stderr.write(`lunafleet parse: ${reason}\n`);
  process.exitCode = EXIT_UNPARSEABLE;
}

/** Shell and command to parse with: flags first, then the echoed prompt line, then the one shell knowing the command. */
function chooseTarget(
  raw: string,
  opts: ParseOptions,
): { ok: true; shell: Shell; command: string } | { ok: false; reason: string } {
  if (
    opts.shell !== undefined &&
    opts.shell !== "lunash" &&
    opts.shell !== "lunacm" &&
    opts.shell !== "host"
  ) {
    return {
      ok: false,
      reason: `--shell must be lunash, lunacm or host (vtl), not ${JSON.stringify(opts.shell)}`,
    };
  }
  const flagShell = opts.shell as Shell | undefined;
  const echoed = detectCommand(raw);
  if (flagShell && echoed && echoed.shell !== flagShell) {
    return { ok: false, reason: `--shell ${flagShell} but the capture shows a ${echoed.shell} prompt` };
  }
  const command = opts.command ?? echoed?.command;
  if (!command) {
    return {
      ok: false,
      reason:
        "no --command given and no echoed prompt line ('[host] lunash:>cmd' or 'lunacm:>cmd') in the capture",
    };
  }
  const shell = flagShell ?? echoed?.shell;
  if (shell) return { ok: true, shell, command };
  const knownBy = (["lunash", "lunacm", "host"] as const).filter((s) => resolveCommand(s, command).ok);
  if (knownBy.length === 1 && knownBy[0]) return { ok: true, shell: knownBy[0], command };
  return {
    ok: false,
    reason:
      knownBy.length === 0
        ? `'${commandWords(command)}' is not a known lunash, lunacm or vtl command`
        : `'${commandWords(command)}' exists in more than one shell; give --shell lunash|lunacm|host`,
  };
}

export function registerParseCommand(program: Command): void {
  program
    .command("parse")
    .description(
      "parse a captured lunash/lunacm output (file or stdin) into typed JSON; " +
        "exit 0 parsed, 3 device error, 2 unparseable",
    )
    .argument("[file]", "capture file; stdin when absent")
    .option(
      "--command <cmd>",
      "the command that produced the output (default: read from the echoed prompt line)",
    )
    .option("--shell <shell>", "lunash | lunacm | host (vtl) (default: from the prompt form)")
    .action(async (file: string | undefined, opts: ParseOptions) => {
      let raw: string;
      try {
        raw = file ? await readFile(file, "utf8") : await readStdin();
      } catch (err) {
        fail(`cannot read ${file ?? "stdin"}: ${err instanceof Error ? err.message : String(err)}`);
        return;
      }
      const target = chooseTarget(raw, opts);
      if (!target.ok) {
        fail(target.reason);
        return;
      }
      const result = parseCommandOutput(target.shell, target.command, raw);
      if (result.ok) {
        process.stdout.write(`${JSON.stringify(result.value, null, 2)}\n`);
        process.exitCode = EXIT_PARSED;
      } else if ("deviceError" in result) {
        process.stdout.write(`${JSON.stringify({ deviceError: result.deviceError })}\n`);
        process.exitCode = EXIT_DEVICE_ERROR;
      } else {
        fail(
          `${target.shell} '${result.command ?? commandWords(target.command)}': ${result.parseError.reason}`,
        );
      }
    });
}
