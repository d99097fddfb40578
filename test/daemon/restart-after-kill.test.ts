// Restart after a crash, through the real CLI: `lunafleet daemon` SIGKILLed leaves its embedded redis-server running
// (no exit handler ran); a plain `lunafleet daemon` on the same data dir checks that server is the one the dead
// daemon started (owner record, the pid answering INFO on the socket, its command line) and replaces it instead of
// refusing to start. A redis-server that is not provably ours is still refused.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { DEMO_FLEET_FILE } from "../../src/cli/demo.ts";
import {
  embeddedRedisSocketPath,
  pingSocket,
  processAlive,
  servingPid,
  startEmbeddedRedis,
} from "../../src/redis/embedded-server.ts";

const bin = fileURLToPath(new URL("../../bin/lunafleet.js", import.meta.url));
const dirs: string[] = [];
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("REDIS_")));

/** Start `lunafleet daemon` and resolve once it says it runs (or reject with what it printed). */
function daemon(dataDir: string): Promise<{ child: ChildProcess; output: () => string }> {
  const child = spawn(
    process.execPath,
    [
      bin,
      "daemon",
      "--fleet",
      DEMO_FLEET_FILE,
      "--data-dir",
      dataDir,
      "--http-port",
      "0",
      "--api-port",
      "off",
    ],
    { env, stdio: ["ignore", "pipe", "pipe"] },
  );
  children.push(child);
  let out = "";
  return new Promise((resolve, reject) => {
    const onData = (b: Buffer) => {
      out += b.toString();
      if (out.includes("lunafleet daemon: running")) resolve({ child, output: () => out });
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("exit", (code, signal) =>
      reject(new Error(`daemon exited (${code ?? signal}) before running:\n${out}`)),
    );
  });
}

const exited = (c: ChildProcess) =>
  new Promise<void>((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once("exit", () => r())));

describe("restart after the daemon was SIGKILLed", () => {
  it("a plain `lunafleet daemon` on the same data dir replaces its own orphaned redis-server and comes up", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "lf-kill-"));
    dirs.push(dataDir);
    const socket = embeddedRedisSocketPath(dataDir);
    const first = await daemon(dataDir);
    const orphan = (await servingPid(socket, 2000))!;
    expect(orphan).toBeGreaterThan(0);
    first.child.kill("SIGKILL");
    await exited(first.child);
    // The daemon is gone; its redis-server is not.
    expect(await pingSocket(socket, 1000)).toBe("pong");

    const second = await daemon(dataDir);
    const serving = (await servingPid(socket, 2000))!;
    expect(serving).not.toBe(orphan);
    expect(processAlive(orphan)).toBe(false);
    second.child.kill("SIGTERM");
    await exited(second.child);
    expect(second.child.exitCode).toBe(0);
    expect(await pingSocket(socket, 1000)).toBe("refused");
  }, 180_000);

  it("a redis-server on the socket that lunafleet did not start (or whose daemon lives) is refused, untouched", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "lf-notours-"));
    dirs.push(dataDir);
    const server = await startEmbeddedRedis({ dataDir, handleSignals: false });
    try {
      // Started by this (live) test process: refused, naming the live owner.
      const again = await startEmbeddedRedis({ dataDir, handleSignals: false }).catch((e: unknown) => e);
      expect(String(again)).toMatch(
        /already serving .*lunafleet process that started it \(pid \d+\) is still running/,
      );
      // An owner record that names another server pid: not provably ours.
      writeFileSync(
        join(dataDir, "redis", "lunafleet-owner.json"),
        JSON.stringify({ daemonPid: 999_999_999, redisPid: 1, socketPath: server.socketPath }),
      );
      const foreign = await startEmbeddedRedis({ dataDir, handleSignals: false }).catch((e: unknown) => e);
      expect(String(foreign)).toMatch(
        /not the redis-server lunafleet started \(serving pid \d+, recorded 1\)/,
      );
      expect(await pingSocket(server.socketPath, 1000)).toBe("pong");
    } finally {
      await server.stop();
    }
  });
});
