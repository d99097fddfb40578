// `npm run bench --quick` end to end: a twin child process, the lunafleet fresh sweep, the OpenSSH `ssh` baseline,
// the reuse sweeps, the daemon section (the same sweep as jobs, directly and through the queue), and the report with
// its ratio line. Figures vary by machine; what must hold is that every device answered (exit 0), the figures are real
// numbers, and the ratio against OpenSSH is printed.
//
// One run serves every test: with --json the report's lines go to stderr and the JSON document to stdout, so the
// printed report and the document come from the same run. (Two runs — one per output form — cost ~30 s of CPU:
// each starts tsx over the daemon's whole import graph and three twin child processes; on two shared cores under
// load that exceeded the 30 s each test had, though nothing was wrong.) A benchmark's duration is its machine's
// load, not a property to test, so no test here has a speed budget: the bench bounds each of its own waits (twin
// ready, jobs finished) and exits non-zero naming what did not come; the one deadline below only ends a run that
// hangs past all of them.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "../..");

function runBench(
  args: string[],
  signal: AbortSignal,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "bench/run.ts"), ...args], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
      signal,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * Hang guard only: the bench's own waits are bounded (twin ready 120 s, the daemon section's jobs 30 s + 120 s,
 * bench/twin-process.ts and bench/daemon.ts), so a run that is still going after all of them is hung, not slow.
 */
const HANG_GUARD_MS = 300_000;

describe("npm run bench -- --quick", () => {
  let run: { code: number | null; stdout: string; stderr: string };
  // A run the hang guard gave up on is stopped with the tests, not left behind.
  const stop = new AbortController();
  afterAll(() => stop.abort());
  beforeAll(async () => {
    // N=5 (the sizes options are part of what is smoked); the realistic-latency case keeps its own 8 devices.
    run = await runBench(["--quick", "--json", "--sizes", "5", "--openssh-sizes", "5"], stop.signal);
  }, HANG_GUARD_MS);

  it("sweeps 5 twin appliances with lunafleet and OpenSSH and prints the ratio and the targets", () => {
    const { code, stderr: report } = run;
    expect(report).not.toMatch(/Error/);
    expect(code).toBe(0);
    const ratio = /ratio lunafleet\/OpenSSH \(fresh sweep, N=5, concurrency \d+\): (\d+\.\d)×/.exec(report);
    expect(ratio).not.toBeNull();
    expect(Number(ratio?.[1])).toBeGreaterThan(0);
    // Every device answered with its own serial (errors would be counted on these lines).
    expect(report).toMatch(/fresh sweep: \d+\.\d devices\/s, client CPU \d+\.\d+ ms\/device/);
    expect(report).toMatch(/OpenSSH ssh under xargs -P \d+: \d+\.\d devices\/s.*5\/5 answered/);
    expect(report).toMatch(/reuse: 3 sweeps over 5 open shells: \d+\.\d device-commands\/s/);
    expect(report).not.toMatch(/ERRORS/);
    for (const target of ["fresh sweep vs OpenSSH", "fresh sweep rate", "client CPU per fresh device"])
      expect(report).toMatch(new RegExp(`${target} .*(met|MISSED)`));
    // The daemon section: the same sweep as 10 jobs, directly and through the queue, all answered, both overheads.
    expect(report).toMatch(/\(a\) direct runJob, in-memory sinks: 10\/10 jobs, 25 steps/);
    // Three measured sweeps through the queue, the median reported: every job of each has its evidence file.
    for (const round of [1, 2, 3])
      expect(report).toMatch(
        new RegExp(
          `\\(b\\) queue \\+ worker \\(locks, checkpoints, evidence\\), sweep ${round} of 3: 10/10 jobs, 25 steps`,
        ),
      );
    expect(report).toMatch(/median of 3 sweeps: \d+\.\d, \d+\.\d, \d+\.\d\)/);
    expect(report).toMatch(/evidence: 30 JSONL files, 30 sampled chains verified/);
    // Issue 15's daemon targets are judged on the 1,000-device sweep only: at N=5 measured, and n/a.
    expect(report).toMatch(/daemon overhead per device-step, CPU .*-?\d+\.\d\d ms .*N=5 @96.* n\/a/);
    expect(report).toMatch(
      /jobs through the queue .*\d+\.\d, \d+\.\d, \d+\.\d → median \d+\.\d jobs\/s \(direct \d+\.\d jobs\/s\) +n\/a/,
    );
    expect(report).toMatch(/daemon peak RSS \(queued sweep\) .*\d+ MB \(direct \d+ MB\) +n\/a/);
    // The realistic-latency case (one wave of 8 in --quick) and the appendfsync figure.
    expect(report).toMatch(/realistic latency: 8\/8 devices at concurrency 8 in \d+\.\d\d s .*p99 \d+ ms/);
    expect(report).toMatch(/realistic latency sweep vs ideal .*(met|MISSED)/);
    expect(report).toMatch(/appendfsync always \(default\): guard-ledger attempt .*p50 \d+\.\d\d ms/);
    expect(report).toMatch(/appendfsync everysec: guard-ledger attempt .*p50 \d+\.\d\d ms/);
    // No twin password leaks into the report or the document.
    expect(run.stdout + report).not.toMatch(/Bench-\d+-(appliance|so)-pw/);
  });

  it("--json prints one parseable document with the figures", () => {
    const { code, stdout } = run;
    expect(code).toBe(0);
    const doc = JSON.parse(stdout) as {
      results: { devices: number; fresh: { ok: number; errors: string[] }; openssh?: { ok: number } }[];
      targets: { name: string; met: boolean | null }[];
      daemon?: {
        status: string;
        queued: { ok: number; steps: number; errors: string[] };
        direct: { ok: number; steps: number; errors: string[] };
        overheadCpuMsPerStep: number;
        jobsPerSecond: number;
        roundJobsPerSecond: number[];
      };
      latency?: { devices: number; ok: number; errors: string[] };
    };
    expect(doc.results[0]?.devices).toBe(5);
    expect(doc.results[0]?.fresh.ok).toBe(5);
    expect(doc.results[0]?.fresh.errors).toEqual([]);
    expect(doc.results[0]?.openssh?.ok).toBe(5);
    expect(doc.targets.map((t) => t.name)).toContain("fresh sweep vs OpenSSH");
    expect(doc.daemon).toMatchObject({ status: "measured", devices: 5, jobs: 10, stepsPerDevice: 5 });
    expect(doc.daemon?.queued).toMatchObject({ ok: 10, steps: 25, errors: [] });
    expect(doc.daemon?.direct).toMatchObject({ ok: 10, steps: 25, errors: [] });
    expect(Number.isFinite(doc.daemon?.overheadCpuMsPerStep)).toBe(true);
    // The reported jobs/s is the middle one of the three sweeps'.
    const rounds = [...(doc.daemon?.roundJobsPerSecond ?? [])].sort((x, y) => x - y);
    expect(rounds).toHaveLength(3);
    expect(doc.daemon?.jobsPerSecond).toBe(rounds[1]);
    expect(doc.latency).toMatchObject({ devices: 8, ok: 8, errors: [] });
  });
});
