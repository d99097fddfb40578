import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { connectRedis } from "../../src/redis/client.ts";
import {
  EmbeddedRedisError,
  embeddedAppendfsync,
  pingSocket,
  startEmbeddedRedis,
} from "../../src/redis/embedded-server.ts";
import { withRedis } from "../helpers/redis.ts";

const redis = await withRedis();
const tempDirs: string[] = [];
afterAll(() => {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});
function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

describe("embedded redis-server", () => {
  it("answers on a socket inside the data dir, with no TCP port and AOF on, fsynced before every answer", async () => {
    expect(redis.socketPath).toBe(join(redis.dataDir, "redis", "redis.sock"));
    expect(statSync(redis.socketPath).isSocket()).toBe(true);
    const c = redis.client();
    expect(await c.ping()).toBe("PONG");
    const [, port] = (await c.config("GET", "port")) as [string, string];
    expect(port).toBe("0");
    const [, aof] = (await c.config("GET", "appendonly")) as [string, string];
    expect(aof).toBe("yes");
    // The test fixture runs everysec (test/helpers/redis.ts); the product's default is checked below.
    const [, fsync] = (await c.config("GET", "appendfsync")) as [string, string];
    expect(fsync).toBe("everysec");
  });

  it("fsyncs its append-only file before it answers a write, by default", async () => {
    // The guard ledger has no replica to acknowledge it on one machine: the disk must have it (issue 15).
    const server = await startEmbeddedRedis({ dataDir: tempDir("lf-fsync-") });
    const c = connectRedis({ url: server.url });
    try {
      const [, fsync] = (await c.config("GET", "appendfsync")) as [string, string];
      expect(fsync).toBe("always");
    } finally {
      c.disconnect();
      await server.stop();
    }
  });

  it("takes appendfsync from LUNAFLEET_EMBEDDED_APPENDFSYNC, and refuses a value it does not know", () => {
    expect(embeddedAppendfsync({})).toBe("always");
    expect(embeddedAppendfsync({ LUNAFLEET_EMBEDDED_APPENDFSYNC: "everysec" })).toBe("everysec");
    expect(() => embeddedAppendfsync({ LUNAFLEET_EMBEDDED_APPENDFSYNC: "no" })).toThrow(/always or everysec/);
  });

  it("keeps data across restart (AOF) and clients reconnect by themselves", async () => {
    const c = redis.client();
    await c.set("lf:test:survives", "yes");
    await redis.restart();
    expect(await c.get("lf:test:survives")).toBe("yes");
    expect(existsSync(join(redis.dataDir, "redis", "appendonlydir"))).toBe(true);
  });

  it("refuses a second server on the same data dir instead of stealing its socket", async () => {
    await expect(startEmbeddedRedis({ dataDir: redis.dataDir })).rejects.toThrow(/already serving/);
    expect(await pingSocket(redis.socketPath, 1000)).toBe("pong");
  });

  it("names the package to install when the binary is missing", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lf-nobin-"));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const err = await startEmbeddedRedis({ dataDir: dir, binary: "/nonexistent/redis-server" }).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(EmbeddedRedisError);
    expect(String(err.message)).toContain("apt-get install -y redis-server");
  });

  it("stop() ends the server; the socket stops answering", async () => {
    const dir = tempDir("lf-stop-");
    const server = await startEmbeddedRedis({ dataDir: dir });
    const c = connectRedis({ url: server.url });
    expect(await c.ping()).toBe("PONG");
    c.disconnect();
    const pid = server.pid!;
    await server.stop();
    expect(() => process.kill(pid, 0)).toThrow();
    expect(await pingSocket(server.socketPath, 500)).not.toBe("pong");
    await server.stop(); // idempotent
  });
});
