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
  /** An error of this connection's commands as the operator should read it (a deadline missed: DaemonUnavailable). */
  explain(err: unknown): unknown;
  close(): Promise<void>;
}

// With the daemon down every command answers within 2 s: a local socket answers a PING in milliseconds or not at
// all, a remote Redis gets 1.5 s. A daemon that hangs (its Redis accepts, then never answers: a stopped process, a
// link dead mid-session) gets the same treatment: every Redis command of the CLI must be answered within
// COMMAND_TIMEOUT_MS, else the command ends with one line and exit 3. LUNAFLEET_CLI_TIMEOUT_MS sets all three
// deadlines at once (a slow link's longer one; a test's short one, so it asserts the outcome and never a duration).
const SOCKET_PING_MS = 1000;
const PING_TIMEOUT_MS = 1500;
const COMMAND_TIMEOUT_MS = 10_000;

/** The deadline LUNAFLEET_CLI_TIMEOUT_MS sets (whole milliseconds, 1 ms – 10 min), or undefined. */
export function cliDeadlineFromEnv(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const raw = env.LUNAFLEET_CLI_TIMEOUT_MS;
  if (raw === undefined || raw === "") return undefined;
  const ms = Number(raw);
  if (!Number.isInteger(ms) || ms < 1 || ms > 600_000)
    throw new DaemonUnavailable(
      `LUNAFLEET_CLI_TIMEOUT_MS must be whole milliseconds, 1 to 600000 (got '${raw}')`,
    );
  return ms;
}

/**
 * An error of a Redis command the CLI sent, as the operator should read it: a command the daemon's Redis left
 * unanswered past the deadline is the daemon out of reach (DaemonUnavailable, exit 3); anything else unchanged.
 * ioredis signals the deadline with a plain Error of this one fixed text (ioredis/built/Command.js), no class.
 */
export function daemonHung(err: unknown, where: string, ms: number): unknown {
  if (err instanceof Error && err.message === "Command timed out")
    return new DaemonUnavailable(
      `the daemon's Redis at ${where} did not answer within ${ms} ms (is the daemon hung? its host reachable?)`,
    );
  return err;
}

/** The daemon's Redis (embedded socket of the data dir, or REDIS_URL), or DaemonUnavailable within ~1.5 s. */
async function connectDaemonRedis(
  opts: { dataDir?: string; url?: string; connectionName?: string } = {},
): Promise<{ redis: RedisClient; dataDir: string; where: string; commandTimeoutMs: number }> {
  const deadline = cliDeadlineFromEnv();
  const socketPingMs = deadline ?? SOCKET_PING_MS;
  const pingMs = deadline ?? PING_TIMEOUT_MS;
  const commandTimeoutMs = deadline ?? COMMAND_TIMEOUT_MS;
  const dataDir = opts.dataDir ?? defaultDataDir();
  const socketPath = embeddedRedisSocketPath(dataDir);
  const target: RedisTarget = resolveRedisTarget({ ...(opts.url ? { url: opts.url } : {}), socketPath });
  const where = describeRedisTarget(target);
  if (target.kind === "socket") {
    const answer = existsSync(target.path) ? await pingSocket(target.path, socketPingMs) : "refused";
    if (answer !== "pong")
      throw new DaemonUnavailable(
        `the daemon is not running on data dir ${dataDir} (no Redis at ${target.path}: ${answer === "timeout" ? `no answer within ${socketPingMs} ms` : answer}). ` +
          "Start it (`lunafleet daemon --fleet <file>` or `npm start`), pass --data-dir, or set REDIS_URL",
      );
  }
  const redis = connectRedis({
    target,
    connectionName: opts.connectionName ?? "lunafleet:cli",
    commandTimeoutMs,
  });
  try {
    await withTimeout(redis.ping(), pingMs, `no answer from Redis at ${where} within ${pingMs} ms`);
  } catch (err) {
    redis.disconnect();
    throw new DaemonUnavailable(`${(err as Error).message}; is REDIS_URL right, is Redis running?`);
  }
  return { redis, dataDir, where, commandTimeoutMs };
}

export async function connectCli(opts: { dataDir?: string; url?: string } = {}): Promise<CliConnection> {
  const { redis, dataDir, where, commandTimeoutMs } = await connectDaemonRedis(opts);
  const queue = createJobQueue(redis);
  return {
    redis,
    queue,
    dataDir,
    where,
    explain: (err) => daemonHung(err, where, commandTimeoutMs),
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
