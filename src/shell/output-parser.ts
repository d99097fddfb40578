// The bridge to parsers/: the shell hands each command's output to the one parser for that command. parsers/ is pure
// (no I/O, no imports from src/), so this adapter is the only place the two meet.
import { findParser, type ParseResult, parseCommandOutput, resolveCommand } from "../../parsers/index.ts";

export type { ParseResult } from "../../parsers/index.ts";

export interface OutputParser {
  /** Whether a parser exists for this command (abbreviations resolved the way the device resolves them). */
  has(shell: "lunash" | "lunacm", command: string): boolean;
  parse(shell: "lunash" | "lunacm", command: string, raw: string): ParseResult;
  /** The canonical command the device would run (aliases such as `hsm sh` → `hsm show`), if known. */
  canonical(shell: "lunash" | "lunacm", command: string): string | undefined;
}

export const lunaOutputParser: OutputParser = {
  has(shell, command) {
    const r = resolveCommand(shell, command);
    return r.ok && findParser(shell, r.canonical) !== undefined;
  },
  parse: parseCommandOutput,
  canonical(shell, command) {
    const r = resolveCommand(shell, command);
    return r.ok ? r.canonical : undefined;
  },
};
