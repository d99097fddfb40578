// Starts bench/twin-child.ts as a child process and talks to it over its stdin/stdout line protocol.
import { type ChildProcess, spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { createInterface, type Interface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { BenchEndpoint } from "./fleet.ts";

const CHILD = join(dirname(fileURLToPath(import.meta.url)), "twin-child.ts");

export interface CpuSample {
  /** µs of user + system CPU the twin process has used since it started. */
  cpuUs: number;
  rss: number;
}

export interface TwinProcess {
  endpoints: BenchEndpoint[];
  startMs: number;
  pid: number;
  cpu(): Promise<CpuSample>;
  stop(): Promise<void>;
}

export async function startTwinProcess(
  devices: number,
  timeoutMs = 120_000,
  opts: { latency?: boolean } = {},
): Promise<TwinProcess> {
  // LUNAFLEET_BENCH_TWIN_PROF=<dir>: profile the twin too (node --cpu-prof), to see what a login costs the server.
  const prof = process.env.LUNAFLEET_BENCH_TWIN_PROF;
  const profArgs = prof ? ["--cpu-prof", `--cpu-prof-dir=${prof}`] : [];
  const child: ChildProcess = spawn(
    process.execPath,
    [...profArgs, "--import", "tsx", CHILD, String(devices), ...(opts.latency ? ["--latency"] : [])],
    {
      stdio: ["pipe", "pipe", "pipe"],
    },
  );
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const stdout = child.stdout;
  if (!stdout || !child.stdin || child.pid === undefined) throw new Error("twin child: no stdio");
  const lines: Interface = createInterface({ input: stdout });
  const waiting: ((line: string) => void)[] = [];
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  lines.on("line", (line) => waiting.shift()?.(line));

  const nextLine = (what: string, ms: number) =>
    new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`twin child: no ${what} within ${ms} ms`)), ms);
      waiting.push((line) => {
        clearTimeout(timer);
        resolve(line);
      });
      void exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`twin child exited (${code}) before ${what}: ${stderr.trim()}`));
      });
    });

  const ready = JSON.parse(await nextLine("ready line", timeoutMs)) as {
    ready: boolean;
    startMs: number;
    endpoints: BenchEndpoint[];
  };
  if (!ready.ready || ready.endpoints.length !== devices)
    throw new Error(`twin child: expected ${devices} endpoints, got ${ready.endpoints.length}`);

  return {
    endpoints: ready.endpoints,
    startMs: ready.startMs,
    pid: child.pid,
    async cpu(): Promise<CpuSample> {
      const answer = nextLine("cpu answer", 10_000);
      child.stdin?.write("cpu\n");
      const r = JSON.parse(await answer) as { cpu: { user: number; system: number }; rss: number };
      return { cpuUs: r.cpu.user + r.cpu.system, rss: r.rss };
    },
    async stop(): Promise<void> {
      child.stdin?.end("stop\n");
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
