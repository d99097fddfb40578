// The application crypto gate's check command on a Luna client host (src/shell/host-checks.ts), as a step runs it:
// only on a client host the job locked, recorded as evidence (the command, then its exit status, the output's size
// and digest, and on failure its last line, redacted) — the output itself is the application's and is not kept.
import { createHash } from "node:crypto";
import type { ClientHost } from "../config/schema.ts";
import { redact } from "../config/secret.ts";
import { describeError, JobCancelled } from "./errors.ts";
import type { StepRecorder } from "./ports.ts";

export interface HostCheckPort {
  run(host: ClientHost, command: string): Promise<{ exitCode: number | null; output: string }>;
}

export interface HostCheckOutcome {
  host: string;
  command: string;
  passed: boolean;
  exitCode: number | null;
  /** The output's last non-empty line (redacted, at most 200 characters) when the check failed. */
  lastLine?: string;
  outputBytes: number;
  outputSha256: string;
}

export async function recordedHostCheck(
  port: HostCheckPort,
  host: ClientHost,
  command: string,
  record: StepRecorder,
  gate: { signal: AbortSignal; assertLocked(): void },
): Promise<HostCheckOutcome> {
  if (gate.signal.aborted) throw new JobCancelled(`job cancelled before the crypto gate on ${host.name}`);
  gate.assertLocked();
  await record("command", { via: "host-check", on: host.name, command });
  let out: { exitCode: number | null; output: string };
  try {
    out = await port.run(host, command);
  } catch (err) {
    await record("error", { via: "host-check", on: host.name, command, error: describeError(err) });
    throw err;
  }
  const passed = out.exitCode === 0;
  const last = out.output
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean)
    .at(-1);
  const outcome: HostCheckOutcome = {
    host: host.name,
    command,
    passed,
    exitCode: out.exitCode,
    ...(!passed && last ? { lastLine: redact(last).slice(0, 200) } : {}),
    outputBytes: Buffer.byteLength(out.output),
    outputSha256: createHash("sha256").update(out.output).digest("hex"),
  };
  await record("parse", { via: "host-check", on: host.name, command, result: outcome });
  return outcome;
}
