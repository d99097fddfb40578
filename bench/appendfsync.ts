// What `appendfsync always` costs (issue 15 item 4): the embedded Redis fsyncs its append-only file before it answers
// a write, so the guard ledger's record of a login attempt is on disk before the password goes out. Redis 7.0 has no
// WAITAOF, so every write of the daemon pays, not only the ledger's. This measures both settings on the same data
// dir kind (a temp dir on this machine's disk): guard-ledger attempts (begin: the fenced record + its fsync, then
// finish: the outcome), one at a time (the latency a login waits) and 64 at once (Redis folds the writes of one event-
// loop turn into one fsync). The daemon figures above already run with the default, always.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LoginLedger } from "../src/guard/ledger.ts";
import { connectRedis } from "../src/redis/client.ts";
import { startEmbeddedRedis } from "../src/redis/embedded-server.ts";
import { fmt, percentile } from "./stats.ts";
import { mapLimit } from "./sweep.ts";

export interface AppendfsyncFigures {
  attempts: number;
  /** Per setting: ms per ledger attempt (begin + finish) one at a time (p50, p99), and attempts/s at 64 at once. */
  always: FsyncFigure;
  everysec: FsyncFigure;
}

export interface FsyncFigure {
  sequentialP50Ms: number;
  sequentialP99Ms: number;
  concurrentPerSecond: number;
  redisCpuMsPerAttempt: number;
}

async function measure(mode: "always" | "everysec", attempts: number): Promise<FsyncFigure> {
  const dataDir = mkdtempSync(join(tmpdir(), "lf-fsync-"));
  const server = await startEmbeddedRedis({ dataDir, appendfsync: mode, handleSignals: false });
  const redis = connectRedis({ url: server.url, connectionName: "lunafleet:bench-fsync" });
  try {
    const ledger = new LoginLedger(redis);
    const redisCpu = async () => {
      const info = await redis.info("cpu");
      const f = (n: string) => Number(new RegExp(`^${n}:([0-9.]+)`, "m").exec(info)?.[1] ?? Number.NaN);
      return (f("used_cpu_user") + f("used_cpu_sys")) * 1000;
    };
    const attempt = async (i: number) => {
      const key = { device: `bench-${i % 256}`, role: "co", partition: "p", appliance: `bench-${i % 256}` };
      const id = `a-${mode}-${i}`;
      const began = await ledger.begin(key, id, { maxPriorFailures: 1 });
      if (!began.ok) throw new Error(`ledger refused attempt ${id}: ${began.reason}`);
      await ledger.finish(key, id, "success", "", "bench");
    };
    for (let i = 0; i < 50; i++) await attempt(-1 - i); // warm-up: scripts loaded, AOF open
    const cpu0 = await redisCpu();
    const latencies: number[] = [];
    for (let i = 0; i < attempts; i++) {
      const t = performance.now();
      await attempt(i);
      latencies.push(performance.now() - t);
    }
    latencies.sort((a, b) => a - b);
    const t0 = performance.now();
    await mapLimit(
      Array.from({ length: attempts }, (_, i) => attempts + i),
      64,
      attempt,
    );
    const concurrentMs = performance.now() - t0;
    const cpu = (await redisCpu()) - cpu0;
    return {
      sequentialP50Ms: percentile(latencies, 50),
      sequentialP99Ms: percentile(latencies, 99),
      concurrentPerSecond: (attempts / concurrentMs) * 1000,
      redisCpuMsPerAttempt: cpu / (2 * attempts),
    };
  } finally {
    redis.disconnect();
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

export async function runAppendfsyncBenchmark(opts: {
  attempts: number;
  log: (line: string) => void;
}): Promise<AppendfsyncFigures> {
  const always = await measure("always", opts.attempts);
  const everysec = await measure("everysec", opts.attempts);
  for (const [name, f] of [
    ["always (default)", always],
    ["everysec", everysec],
  ] as const)
    opts.log(
      `appendfsync ${name}: guard-ledger attempt (begin + finish) one at a time p50 ${fmt(f.sequentialP50Ms, 2)} ms, ` +
        `p99 ${fmt(f.sequentialP99Ms, 2)} ms; 64 at once ${fmt(f.concurrentPerSecond, 0)} attempts/s; ` +
        `redis-server CPU ${fmt(f.redisCpuMsPerAttempt, 3)} ms per attempt`,
    );
  opts.log(
    `appendfsync always costs a login ${fmt(always.sequentialP50Ms - everysec.sequentialP50Ms, 2)} ms (p50) over everysec; ` +
      `throughput at 64 at once ${fmt((100 * always.concurrentPerSecond) / everysec.concurrentPerSecond, 0)} % of everysec's`,
  );
  return { attempts: opts.attempts, always, everysec };
}
