// Small helpers the CLI commands share: job commands (run, jobs, job, schedule, report) and the commands that act on
// the embedded Redis directly (guard, ha).

import { InvalidArgumentError } from "commander";
import { redact } from "../config/secret.ts";
import { JobSubmitError } from "../queue/jobs.ts";
import { DaemonUnavailable } from "./connection.ts";
import {
  ApiCallError,
  ClientUsageError,
  type DaemonClient,
  exitCodeOfRefusal,
  openDaemonClient,
} from "./daemon-client.ts";
import { EXIT } from "./exit-codes.ts";

/**
 * `--as <principal>`: an assertion, never a choice. Who acts is whoever authenticated — the OS account's principal on
 * the daemon host (the fleet file's identity.principals[].os lists which account is which person), the token's over
 * the API. `--as` only checks that this is the principal expected (scripts written for a named principal stop instead
 * of acting as someone else); a different name is refused.
 */
export function principalOption(what: string): [string, string] {
  return [
    "--as <principal>",
    `${what}: must be who you are authenticated as (the OS account's principal, or the API token's)`,
  ];
}

/** Refuse (exit 1) when `--as` names another principal than the authenticated one; returns who acts. */
export async function assertPrincipal(client: DaemonClient, as: string | undefined): Promise<string> {
  const me = await client.whoami();
  if (as !== undefined && as.trim() !== me.name)
    throw new ApiCallError(
      403,
      `--as ${as}: you are authenticated as ${me.name} (${me.method === "os" ? `OS account ${me.subject}` : me.method === "token" ? `API token ${me.subject}` : `OIDC subject ${me.subject}`}); ` +
        "a principal is never chosen on the command line (on the daemon host the fleet file's identity.principals[].os says which OS account is which principal)",
      undefined,
    );
  return me.name;
}

/**
 * Run `act` with the daemon client (the API with LUNAFLEET_URL, else the local operations on the data dir); its return
 * value is the exit code. Refusals print `lunafleet <command>: <why>` with their exit code; the client is closed.
 */
export async function withDaemonClient(
  command: string,
  opts: { dataDir?: string | undefined; fleet?: string | undefined },
  act: (client: DaemonClient) => Promise<number | undefined>,
): Promise<void> {
  let client: DaemonClient;
  try {
    client = await openDaemonClient({ dataDir: opts.dataDir, fleetFile: opts.fleet });
  } catch (err) {
    failCommand(command, err);
    return;
  }
  try {
    const code = await act(client);
    if (code !== undefined) process.exitCode = code;
  } catch (err) {
    failCommand(command, err);
  } finally {
    await client.close();
  }
}

export const dataDirOption = [
  "--data-dir <dir>",
  "lunafleet data dir (default $LUNAFLEET_DATA_DIR or ./.lunafleet)",
] as const;

/**
 * Print a refusal plainly, as one line: a usage error (exit 2), the daemon out of reach (exit 3), a request refused
 * (exit 1). Anything else is one line too (exit 1), never a stack trace (LUNAFLEET_DEBUG=1 prints it).
 */
export function failCommand(command: string, err: unknown): void {
  if (err instanceof UsageError) {
    console.error(`lunafleet ${command}: ${err.message}`);
    process.exitCode = EXIT.usage;
    return;
  }
  // An unknown runbook named before anything connects is a refusal like any at submit (it lists the known ones).
  const unknownRunbook = err instanceof Error && err.name === "UnknownRunbook";
  if (
    err instanceof DaemonUnavailable ||
    err instanceof JobSubmitError ||
    err instanceof ApiCallError ||
    err instanceof ClientUsageError ||
    unknownRunbook
  ) {
    console.error(`lunafleet ${command}: ${unknownRunbook ? "refused: " : ""}${redact(err.message)}`);
    process.exitCode = unknownRunbook ? EXIT.failed : exitCodeOfRefusal(err);
    return;
  }
  const e = err instanceof Error ? err : new Error(String(err));
  console.error(
    `lunafleet ${command}: ${e.name === "Error" ? "" : `${e.name}: `}${redact(e.message.split("\n")[0] ?? "")}`,
  );
  if (process.env.LUNAFLEET_DEBUG) console.error(e.stack);
  process.exitCode = EXIT.failed;
}

/** `key=value`; the value is JSON when it parses as JSON (numbers, booleans, lists), else the literal string. */
export function collectParam(kv: string, acc: string[]): string[] {
  return [...acc, kv];
}

export function parseParams(pairs: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of pairs) {
    const eq = kv.indexOf("=");
    if (eq <= 0) throw new UsageError(`--param '${kv}': expected key=value`);
    const key = kv.slice(0, eq);
    // A parameter name, never an object's machinery: `__proto__` or `constructor` would reach into the object itself.
    if (!/^[A-Za-z][A-Za-z0-9]{0,63}$/.test(key) || key in Object.prototype)
      throw new UsageError(`--param ${JSON.stringify(key)}: not a parameter name (letters and digits)`);
    if (Object.hasOwn(out, key)) throw new UsageError(`--param ${key} given twice`);
    const raw = kv.slice(eq + 1);
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      // a plain word stays a string
    }
    out[key] = value;
  }
  return out;
}

/**
 * A job request's parameters from the command line: `--param` pairs and the positional target, which must agree.
 * A runbook acting on the whole fleet needs `fleet` spelled out; without a target a request is a usage error (unless
 * it asks for auto=true, which names its own targets).
 */
export function jobParams(target: string | undefined, pairs: string[]): Record<string, unknown> {
  const params = parseParams(pairs);
  if (target !== undefined && params.target !== undefined && params.target !== target)
    throw new UsageError(
      `--param target=${JSON.stringify(params.target)} disagrees with the target '${target}'; give the target once`,
    );
  if (target === undefined && params.target === undefined && params.auto !== true)
    throw new UsageError(
      "no target: name a device, a client host, an HA group, or `fleet` for the whole fleet (ha-recover also takes --param auto=true)",
    );
  return target === undefined ? params : { ...params, target };
}

/** A missing or malformed argument: exit 2. */
class UsageError extends Error {
  override name = "UsageError";
}

/**
 * A commander parser for a whole number in [min, max]: `abc`, `1.5`, `1e3`, `-1` are refused as usage errors (exit
 * 2) instead of becoming NaN and silently changing what the command does.
 */
export function integerOption(flag: string, min: number, max: number): (value: string) => number {
  return (value: string) => {
    if (!/^\d+$/.test(value.trim()))
      throw new InvalidArgumentError(`${flag} must be a whole number, got '${value}'`);
    const n = Number(value);
    if (n < min || n > max)
      throw new InvalidArgumentError(`${flag} must be between ${min} and ${max}, got ${n}`);
    return n;
  };
}

/** A commander parser for a duration: `90s`, `90m`, `24h`, `7d` (a bare number is minutes). Returns milliseconds. */
export function durationOption(flag: string): (value: string) => number {
  return (value: string) => {
    const m = /^(\d{1,7})(s|m|h|d)?$/.exec(value.trim());
    if (!m) throw new InvalidArgumentError(`${flag} must be a duration like 90m, 24h or 7d, got '${value}'`);
    const n = Number(m[1]);
    const unit = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? "m") as "s" | "m" | "h" | "d"];
    if (n === 0) throw new InvalidArgumentError(`${flag} must be more than zero`);
    return n * unit;
  };
}

export function ago(ms: number | undefined): string {
  if (!ms) return "-";
  return new Date(ms)
    .toISOString()
    .replace("T", " ")
    .replace(/\.\d+Z$/, "Z");
}
