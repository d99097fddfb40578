// Small helpers the job commands share (run, jobs, job, schedule, report).

import { JobSubmitError } from "../queue/jobs.ts";
import { DaemonUnavailable } from "./client.ts";

export const dataDirOption = [
  "--data-dir <dir>",
  "lunafleet data dir (default $LUNAFLEET_DATA_DIR or ./.lunafleet)",
] as const;

/** Print a known refusal plainly (exit 1); anything else is a bug and keeps its stack. */
export function failCommand(command: string, err: unknown): void {
  if (err instanceof DaemonUnavailable || err instanceof JobSubmitError) {
    console.error(`lunafleet ${command}: ${err.message}`);
    process.exitCode = err instanceof DaemonUnavailable ? 3 : 1;
    return;
  }
  throw err;
}

/** `key=value`; the value is JSON when it parses as JSON (numbers, booleans, lists), else the literal string. */
export function collectParam(kv: string, acc: string[]): string[] {
  return [...acc, kv];
}

export function parseParams(pairs: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of pairs) {
    const eq = kv.indexOf("=");
    if (eq <= 0) throw new JobSubmitError(`refused: --param '${kv}': expected key=value`, "ParamsInvalid");
    const raw = kv.slice(eq + 1);
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      // a plain word stays a string
    }
    out[kv.slice(0, eq)] = value;
  }
  return out;
}

export function ago(ms: number | undefined): string {
  if (!ms) return "-";
  return new Date(ms)
    .toISOString()
    .replace("T", " ")
    .replace(/\.\d+Z$/, "Z");
}
