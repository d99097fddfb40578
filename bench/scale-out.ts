// The scale-out figure (issue 15 item 6), `npm run bench -- --daemons 3`: the same fleet sweep (tcp-check and
// patch-verify on every device) through 1, 2, … K daemons, each its own process (bench/daemon-child.ts), on one
// Redis (the embedded server, appendfsync always, fresh for each K), against one twin. Per K: jobs/s, the seconds
// jobs waited for device locks (all daemons), redis-server CPU per job, the daemons' CPU per job. Each daemon opens
// its SSH connections as its jobs need them: that cost is in the figure (K daemons open up to K connections per
// device). On a 2-core machine the figure can show that more daemons do not collapse (lock waits, Redis CPU) — not
// a linear gain: the daemons share the same two cores with the twin and Redis.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { Fleet } from "../src/config/index.ts";
import { submitSweep } from "../src/daemon/sweep.ts";
import type { JobResult } from "../src/engine/runner.ts";
import { createJobQueue } from "../src/queue/jobs.ts";
import { connectRedis } from "../src/redis/client.ts";
import { startEmbeddedRedis } from "../src/redis/embedded-server.ts";
import { benchFleet, pinFleet } from "./fleet.ts";
import { fmt, mb, perSecond, table } from "./stats.ts";
import { startTwinProcess } from "./twin-process.ts";

const CHILD = join(dirname(fileURLToPath(import.meta.url)), "daemon-child.ts");

export interface ScaleOutRow {
  daemons: number;
  jobs: number;
  /** Jobs that completed with a succeeded result. */
  ok: number;
  wallMs: number;
  jobsPerSecond: number;
  lockWaitSeconds: number;
  redisCpuMsPerJob: number;
  daemonCpuMsPerJob: number;
  peakDaemonRssMb: number;
  errors: string[];
}

interface Stats {
  cpuMs: number;
  rss: number;
  lockWaitSeconds: number;
}

interface Child {
  stats(): Promise<Stats>;
  stop(): Promise<void>;
}

async function startChild(args: string[]): Promise<Child> {
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", CHILD, ...args], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  const lines = createInterface({ input: child.stdout! });
  const waiting: ((line: string) => void)[] = [];
  lines.on("line", (line) => waiting.shift()?.(line));
  const next = () =>
    new Promise<string>((resolve, reject) => {
      waiting.push(resolve);
      void exited.then((code) => reject(new Error(`daemon child exited (${code}): ${stderr.trim()}`)));
    });
  const ready = await next();
  if (ready !== "READY") throw new Error(`daemon child: expected READY, got ${ready}`);
  return {
    async stats() {
      const answer = next();
      child.stdin?.write("stats\n");
      return JSON.parse(await answer) as Stats;
    },
    async stop() {
      child.stdin?.end("stop\n");
      await exited;
    },
  };
}

export async function runScaleOut(opts: {
  devices: number;
  maxDaemons: number;
  concurrency: number;
  log: (line: string) => void;
}): Promise<ScaleOutRow[]> {
  const { devices, log } = opts;
  const twin = await startTwinProcess(devices);
  const root = mkdtempSync(join(tmpdir(), "lf-scale-"));
  const rows: ScaleOutRow[] = [];
  try {
    log(`twin: ${devices} appliances up in ${twin.startMs} ms`);
    const fleet = pinFleet(benchFleet(devices), twin.endpoints);
    const endpointsFile = join(root, "endpoints.json");
    writeFileSync(endpointsFile, JSON.stringify(twin.endpoints));
    for (let k = 1; k <= opts.maxDaemons; k++)
      rows.push(await runWith({ k, root, fleet, endpointsFile, concurrency: opts.concurrency, log }));
  } finally {
    await twin.stop();
    rmSync(root, { recursive: true, force: true });
  }
  log(
    table([
      [
        "daemons",
        "jobs/s",
        "lock waits s",
        "redis CPU ms/job",
        "daemons CPU ms/job",
        "peak daemon RSS MB",
        "ok",
      ],
      ...rows.map((r) => [
        String(r.daemons),
        fmt(r.jobsPerSecond),
        fmt(r.lockWaitSeconds),
        fmt(r.redisCpuMsPerJob, 2),
        fmt(r.daemonCpuMsPerJob, 2),
        fmt(r.peakDaemonRssMb, 0),
        `${r.ok}/${r.jobs}`,
      ]),
    ]),
  );
  return rows;
}

async function runWith(opts: {
  k: number;
  root: string;
  fleet: Fleet;
  endpointsFile: string;
  concurrency: number;
  log: (line: string) => void;
}): Promise<ScaleOutRow> {
  const { k, root, fleet, endpointsFile, log } = opts;
  const dir = join(root, `k${k}`);
  mkdirSync(dir);
  const server = await startEmbeddedRedis({ dataDir: join(dir, "redis-data"), handleSignals: false });
  const redis = connectRedis({ url: server.url, connectionName: "lunafleet:bench-scale" });
  const queue = createJobQueue(redis);
  const children: Child[] = [];
  try {
    for (let i = 1; i <= k; i++) {
      const dataDir = join(dir, `d${i}`);
      mkdirSync(dataDir);
      children.push(
        await startChild([endpointsFile, server.url, dataDir, `d${i}`, String(opts.concurrency)]),
      );
    }
    const redisCpu = async () => {
      const info = await redis.info("cpu");
      const f = (n: string) => Number(new RegExp(`^${n}:([0-9.]+)`, "m").exec(info)?.[1] ?? Number.NaN);
      return (f("used_cpu_user") + f("used_cpu_sys")) * 1000;
    };
    const before = await Promise.all(children.map((c) => c.stats()));
    const redis0 = await redisCpu();
    const t0 = performance.now();
    const submitted = await submitSweep(queue, fleet, "operator:bench");
    // The queue's counts (one round trip), not each job's state: polling 2,000 jobs would load the Redis measured.
    const deadline = Date.now() + 600_000;
    for (;;) {
      const c = await queue.getJobCounts("completed", "failed");
      if ((c.completed ?? 0) + (c.failed ?? 0) >= submitted.length) break;
      if (Date.now() > deadline) throw new Error(`scale-out (${k} daemons): jobs unfinished after 600 s`);
      await new Promise((r) => setTimeout(r, 250));
    }
    const wallMs = performance.now() - t0;
    const redisMs = (await redisCpu()) - redis0;
    const after = await Promise.all(children.map((c) => c.stats()));
    const errors: string[] = [];
    let ok = 0;
    for (const j of submitted) {
      const job = await queue.getJob(j.jobId);
      const result = job?.returnvalue as JobResult | undefined;
      if (result?.status === "succeeded") ok += 1;
      else errors.push(`${j.runbook} ${j.device}: ${job?.failedReason ?? result?.status ?? "missing"}`);
    }
    const row: ScaleOutRow = {
      daemons: k,
      jobs: submitted.length,
      ok,
      wallMs,
      jobsPerSecond: perSecond(ok, wallMs),
      lockWaitSeconds: after.reduce(
        (s, a, i) => s + a.lockWaitSeconds - (before[i]?.lockWaitSeconds ?? 0),
        0,
      ),
      redisCpuMsPerJob: redisMs / submitted.length,
      daemonCpuMsPerJob:
        after.reduce((s, a, i) => s + a.cpuMs - (before[i]?.cpuMs ?? 0), 0) / submitted.length,
      peakDaemonRssMb: Math.max(...after.map((a) => mb(a.rss))),
      errors,
    };
    log(
      `${k} daemon(s): ${ok}/${submitted.length} jobs in ${fmt(wallMs / 1000, 1)} s = ${fmt(row.jobsPerSecond)} jobs/s, ` +
        `lock waits ${fmt(row.lockWaitSeconds)} s, redis-server CPU ${fmt(row.redisCpuMsPerJob, 2)} ms/job, ` +
        `daemons CPU ${fmt(row.daemonCpuMsPerJob, 2)} ms/job` +
        (errors.length ? `, ${errors.length} ERRORS (${errors[0]})` : ""),
    );
    return row;
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    await queue.close().catch(() => {});
    redis.disconnect();
    await server.stop();
  }
}
