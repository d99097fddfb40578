import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { acquireDeviceLocks } from "../../src/coord/locks.ts";
import { withRedis } from "../helpers/redis.ts";

const redis = await withRedis();
const workerScript = fileURLToPath(new URL("./fixtures/lock-worker.ts", import.meta.url));

function startWorker(args: string[]): ChildProcess {
  return spawn(process.execPath, ["--import", "tsx", workerScript, ...args], {
    env: { ...process.env, REDIS_URL: redis.url },
    stdio: ["ignore", "pipe", "pipe"],
  });
}

function finished(child: ChildProcess): Promise<void> {
  let stderr = "";
  child.stderr?.on("data", (d) => {
    stderr += d;
  });
  return new Promise((resolve, reject) =>
    child.once("exit", (code) =>
      code === 0 ? resolve() : reject(new Error(`worker exit ${code}: ${stderr}`)),
    ),
  );
}

describe("device locks across processes", () => {
  it("three Node processes never hold the same device together; tokens grow in grant order", async () => {
    const device = "device:hsm-proc";
    const c = redis.client();
    const workers = ["p1", "p2", "p3"].map((name) => startWorker([device, name, "8"]));
    const done = Promise.all(workers.map(finished));
    while (Number(await c.get(`lf:test:ready:${device}`)) < 3) await new Promise((r) => setTimeout(r, 10));
    await c.set(`lf:test:go:${device}`, "1");
    await done;
    expect(Number(await c.get(`lf:test:contended:${device}`))).toBeGreaterThan(0);
    expect(await c.get(`lf:test:violations:${device}`)).toBeNull();
    const log = await c.lrange(`lf:test:log:${device}`, 0, -1);
    expect(log).toHaveLength(24);
    for (const p of ["p1", "p2", "p3"]) expect(log.filter((l) => l.startsWith(`${p}:`))).toHaveLength(8);
    const tokens = log.map((l) => Number(l.split(":")[1]));
    for (let i = 1; i < tokens.length; i++) expect(tokens[i]).toBeGreaterThan(tokens[i - 1]!);
  });

  it("a worker killed while holding a lock frees it by expiry; the next holder gets a newer token", async () => {
    const device = "device:hsm-killed";
    const child = startWorker([device, "job-killed", "1", "hold-forever"]);
    const token = await new Promise<number>((resolve, reject) => {
      child.stdout?.on("data", (d: Buffer) => {
        const m = /held (\d+)/.exec(d.toString());
        if (m) resolve(Number(m[1]));
      });
      child.once("exit", (code) => reject(new Error(`worker exited early (${code})`)));
    });
    child.kill("SIGKILL");
    const set = await acquireDeviceLocks(redis.client(), [device], {
      owner: "job-next",
      ttlMs: 1000,
      waitMs: 3000,
    });
    expect(set.tokenFor(device)).toBeGreaterThan(token);
    await set.release();
  });
});
