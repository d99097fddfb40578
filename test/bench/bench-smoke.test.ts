// `npm run bench --quick` end to end: a twin child process, the lunafleet fresh sweep, the OpenSSH `ssh` baseline,
// the reuse sweeps, the daemon section (the same sweep as jobs, directly and through the queue), and the report with
// its ratio line. Figures vary by machine; what must hold is that every device answered (exit 0), the figures are real
// numbers, and the ratio against OpenSSH is printed.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "../..");

function runBench(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "bench/run.ts"), ...args], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("npm run bench -- --quick", () => {
  it("sweeps 10 twin appliances with lunafleet and OpenSSH and prints the ratio and the targets", async () => {
    const { code, stdout, stderr } = await runBench(["--quick"]);
    expect(stderr).not.toMatch(/Error/);
    expect(code).toBe(0);
    const ratio = /ratio lunafleet\/OpenSSH \(fresh sweep, N=10, concurrency \d+\): (\d+\.\d)×/.exec(stdout);
    expect(ratio).not.toBeNull();
    expect(Number(ratio?.[1])).toBeGreaterThan(0);
    // Every device answered with its own serial (errors would be counted on these lines).
    expect(stdout).toMatch(/fresh sweep: \d+\.\d devices\/s, client CPU \d+\.\d+ ms\/device/);
    expect(stdout).toMatch(/OpenSSH ssh under xargs -P \d+: \d+\.\d devices\/s.*10\/10 answered/);
    expect(stdout).toMatch(/reuse: 3 sweeps over 10 open shells: \d+\.\d device-commands\/s/);
    expect(stdout).not.toMatch(/ERRORS/);
    for (const target of ["fresh sweep vs OpenSSH", "fresh sweep rate", "client CPU per fresh device"])
      expect(stdout).toMatch(new RegExp(`${target} .*(met|MISSED)`));
    // The daemon section: the same sweep as 20 jobs, directly and through the queue, all answered, both overheads.
    expect(stdout).toMatch(/\(a\) direct runJob, in-memory sinks: 20\/20 jobs, 50 steps/);
    expect(stdout).toMatch(/\(b\) queue \+ worker \(locks, checkpoints, evidence\): 20\/20 jobs, 50 steps/);
    expect(stdout).toMatch(/evidence: 20 JSONL files, 20 sampled chains verified/);
    // Issue 15's daemon targets are judged on the 1,000-device sweep only: at N=10 measured, and n/a.
    expect(stdout).toMatch(/daemon overhead per device-step, CPU .*-?\d+\.\d\d ms .*N=10 @64.* n\/a/);
    expect(stdout).toMatch(/jobs through the queue .*\d+\.\d jobs\/s \(direct \d+\.\d jobs\/s\) +n\/a/);
    expect(stdout).toMatch(/daemon peak RSS \(queued sweep\) .*\d+ MB \(direct \d+ MB\) +n\/a/);
    // The realistic-latency case (one wave of 8 in --quick) and the appendfsync figure.
    expect(stdout).toMatch(/realistic latency: 8\/8 devices at concurrency 8 in \d+\.\d\d s .*p99 \d+ ms/);
    expect(stdout).toMatch(/realistic latency sweep vs ideal .*(met|MISSED)/);
    expect(stdout).toMatch(/appendfsync always \(default\): guard-ledger attempt .*p50 \d+\.\d\d ms/);
    expect(stdout).toMatch(/appendfsync everysec: guard-ledger attempt .*p50 \d+\.\d\d ms/);
    // No twin password leaks into the report.
    expect(stdout + stderr).not.toMatch(/Bench-\d+-(appliance|so)-pw/);
  }, 30_000);

  it("--json prints one parseable document with the figures", async () => {
    const { code, stdout } = await runBench(["--quick", "--json", "--sizes", "5", "--openssh-sizes", "5"]);
    expect(code).toBe(0);
    const doc = JSON.parse(stdout) as {
      results: { devices: number; fresh: { ok: number; errors: string[] }; openssh?: { ok: number } }[];
      targets: { name: string; met: boolean | null }[];
      daemon?: {
        status: string;
        queued: { ok: number; steps: number; errors: string[] };
        direct: { ok: number; steps: number; errors: string[] };
        overheadCpuMsPerStep: number;
      };
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
  }, 30_000);
});
