// How CLI commands reach the daemon's Redis: REDIS_URL (and friends) or the embedded server's socket in the data
// dir. When neither answers, say so plainly instead of hanging on reconnects.
import { existsSync } from "node:fs";
import type { Queue } from "bullmq";
import { createJobQueue, type JobData } from "../queue/jobs.ts";
import {
  connectRedis,
  describeRedisTarget,
  type RedisClient,
  type RedisTarget,
  resolveRedisTarget,
} from "../redis/client.ts";
import { defaultDataDir, embeddedRedisSocketPath, pingSocket } from "../redis/embedded-server.ts";

export class DaemonUnavailable extends Error {
  override name = "DaemonUnavailable";
}

export interface CliConnection {
  redis: RedisClient;
  queue: Queue<JobData>;
  dataDir: string;
  where: string;
  close(): Promise<void>;
}

// With the daemon down every command answers within 2 s: a local socket answers a PING in milliseconds or not at
// all, a remote Redis gets 1.5 s.
const SOCKET_PING_MS = 1000;
const PING_TIMEOUT_MS = 1500;

/** The daemon's Redis (embedded socket of the data dir, or REDIS_URL), or DaemonUnavailable within ~1.5 s. */
async function connectDaemonRedis(
  opts: { dataDir?: string; url?: string; connectionName?: string } = {},
): Promise<{ redis: RedisClient; dataDir: string; where: string }> {
  const dataDir = opts.dataDir ?? defaultDataDir();
  const socketPath = embeddedRedisSocketPath(dataDir);
  const target: RedisTarget = resolveRedisTarget({ ...(opts.url ? { url: opts.url } : {}), socketPath });
  const where = describeRedisTarget(target);
  if (target.kind === "socket") {
    const answer = existsSync(target.path) ? await pingSocket(target.path, SOCKET_PING_MS) : "refused";
    if (answer !== "pong")
      throw new DaemonUnavailable(
        `the daemon is not running on data dir ${dataDir} (no Redis at ${target.path}: ${answer}). ` +
          "Start it (`lunafleet daemon --fleet <file>` or `npm start`), pass --data-dir, or set REDIS_URL",
      );
  }
  const redis = connectRedis({ target, connectionName: opts.connectionName ?? "lunafleet:cli" });
  try {
    await withTimeout(redis.ping(), PING_TIMEOUT_MS, `no answer from Redis at ${where}`);
  } catch (err) {
    redis.disconnect();
    throw new DaemonUnavailable(`${(err as Error).message}; is REDIS_URL right, is Redis running?`);
  }
  return { redis, dataDir, where };
}

export async function connectCli(opts: { dataDir?: string; url?: string } = {}): Promise<CliConnection> {
  const { redis, dataDir, where } = await connectDaemonRedis(opts);
  const queue = createJobQueue(redis);
  return {
    redis,
    queue,
    dataDir,
    where,
    async close() {
      await queue.close().catch(() => {});
      redis.disconnect();
    },
  };
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(message)), ms);
    }),
  ]);
}
