// One real, private redis-server per test file, in a temp dir, torn down after the file.
//
//   import { withRedis } from "../helpers/redis.ts";
//   const redis = await withRedis();          // top level of the test file (or inside describe): stops in afterAll
//   const a = redis.client();                 // a fresh ioredis connection, closed automatically
//   await redis.restart();                    // SIGTERM + start again on the same data (AOF survives)
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Redis } from "ioredis";
import { afterAll } from "vitest";
import { connectRedis } from "../../src/redis/client.ts";
import { startEmbeddedRedis } from "../../src/redis/embedded-server.ts";

export interface TestRedis {
  /** `unix://…/redis.sock`, for connectRedis({ url }) or child processes (REDIS_URL). */
  readonly url: string;
  readonly socketPath: string;
  /** The temp data dir (redis lives in <dataDir>/redis); also usable as the evidence data dir. */
  readonly dataDir: string;
  /** A new connection ("command" flavour); every one is disconnected on stop(). */
  client(): Redis;
  restart(): Promise<void>;
  /** Close clients, stop the server, delete the temp dir. Idempotent; registered with afterAll. */
  stop(): Promise<void>;
}

export async function withRedis(): Promise<TestRedis> {
  // Short prefix: unix socket paths are limited to 107 bytes.
  const dataDir = mkdtempSync(join(tmpdir(), "lf-redis-"));
  // appendfsync everysec: these servers hold test fixtures, not a ledger that must survive a power cut, and the
  // suite runs dozens of them at once on one disk. The product's default (always) is checked in
  // test/redis/embedded-server.test.ts and runs in every test that starts a daemon on its embedded server.
  const server = await startEmbeddedRedis({ dataDir, appendfsync: "everysec" });
  const clients: Redis[] = [];
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    for (const c of clients) c.disconnect();
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  };
  afterAll(stop);
  return {
    url: server.url,
    socketPath: server.socketPath,
    dataDir,
    client() {
      // The embedded server is always standalone, so the client is a plain Redis.
      const c = connectRedis({ url: server.url }) as Redis;
      clients.push(c);
      return c;
    },
    restart: () => server.restart(),
    stop,
  };
}
