// Redis connections: one place that turns configuration (REDIS_URL and friends, or the embedded server's socket)
// into ioredis clients, in the two flavours the daemon needs.
// Over 400 lines: one factory for every topology (unix socket, one server, Sentinel, Cluster) and the URL forms that
// name them, so no caller builds an ioredis client on its own.
//
// Where Redis is (first match wins):
//   REDIS_URL                    one of
//     unix:///abs/path.sock[?db=N]          (or just /abs/path.sock)
//     redis://[user[:pass]@]host[:port][/db]  rediss:// = TLS
//     redis-sentinel://[user[:pass]@]h1[:26379],h2[:26379]/<master-name>[/db]   rediss-sentinel:// = TLS
//     redis-cluster://[user[:pass]@]h1[:6379],h2[:6379]                          rediss-cluster:// = TLS
//   REDIS_SENTINELS=h1:26379,h2:26379 + REDIS_SENTINEL_NAME=<master-name>   (same as redis-sentinel://)
//   REDIS_CLUSTER_NODES=h1:6379,h2:6379                                      (same as redis-cluster://)
//   with REDIS_USERNAME, REDIS_PASSWORD, REDIS_SENTINEL_PASSWORD, REDIS_TLS=1, REDIS_DB when not in a URL.
//   none of these                → the embedded redis-server of the data dir (see embedded-server.ts)
// Passwords become Secret objects (registered with the redactor) the moment they are parsed.
//
// Cluster note: every multi-key script in lunafleet keeps its keys in one hash slot ({resource} / {jobId} tags).
import { createHash } from "node:crypto";
import { Cluster, Redis, type RedisOptions } from "ioredis";
import { Secret } from "../config/secret.ts";

export type RedisClient = Redis | Cluster;

export interface HostPort {
  host: string;
  port: number;
}

interface Auth {
  username?: string;
  password?: Secret;
}

export type RedisTarget =
  | { kind: "socket"; path: string; db?: number }
  | ({ kind: "standalone"; host: string; port: number; tls: boolean; db?: number } & Auth)
  | ({
      kind: "sentinel";
      sentinels: HostPort[];
      name: string;
      tls: boolean;
      db?: number;
      sentinelPassword?: Secret;
    } & Auth)
  | ({ kind: "cluster"; nodes: HostPort[]; tls: boolean } & Auth);

export class RedisConfigError extends Error {
  override name = "RedisConfigError";
}

/**
 * "command": ordinary request/response use (locks, evidence, guard ledger). A request made while Redis is
 *   unreachable waits through reconnects for ~10 s, then fails, so a caller never hangs forever.
 * "worker": BullMQ Worker / QueueEvents connections, which block; BullMQ requires maxRetriesPerRequest: null.
 */
export type RedisFlavour = "command" | "worker";

export interface ConnectRedisOptions {
  /** A REDIS_URL-style string (see the header). Overrides env. */
  url?: string;
  /** An already parsed target. Overrides url and env. */
  target?: RedisTarget;
  /** The embedded server's socket: used when neither url/target nor the REDIS_* env variables say otherwise. */
  socketPath?: string;
  env?: NodeJS.ProcessEnv;
  flavour?: RedisFlavour;
  /** CLIENT SETNAME, visible in CLIENT LIST; e.g. "lunafleet:worker:3". */
  connectionName?: string;
  /** Connection errors are retried by ioredis; without a listener ioredis prints them to stderr. Default: ignore. */
  onError?: (err: Error) => void;
  /**
   * Each command must be answered within this long, or it fails (ioredis' "Command timed out"). For the CLI, whose
   * operator must not wait forever on a Redis that accepts and never answers; never for the daemon's workers.
   */
  commandTimeoutMs?: number;
}

const COMMAND_MAX_RETRIES = 20;

export function connectRedis(opts: ConnectRedisOptions = {}): RedisClient {
  const target = resolveRedisTarget(opts);
  const flavour = opts.flavour ?? "command";
  const common: RedisOptions = {
    maxRetriesPerRequest: flavour === "worker" ? null : COMMAND_MAX_RETRIES,
    // A command connection is shared by every job of a worker: commands issued in the same tick go out in one
    // write (and one read of the replies) instead of one syscall each. Measured in `npm run bench` (issue 15).
    // Never on the worker flavour, whose connections block (BullMQ).
    enableAutoPipelining: flavour === "command",
    retryStrategy: (times) => Math.min(times * 100, 2000),
    ...(opts.connectionName ? { connectionName: opts.connectionName } : {}),
    ...(opts.commandTimeoutMs ? { commandTimeout: opts.commandTimeoutMs } : {}),
  };
  const auth = (t: Auth): RedisOptions => ({
    ...(t.username ? { username: t.username } : {}),
    ...(t.password ? { password: t.password.reveal() } : {}),
  });
  let client: RedisClient;
  switch (target.kind) {
    case "socket":
      client = new Redis({ ...common, path: target.path, db: target.db ?? 0 });
      break;
    case "standalone":
      client = new Redis({
        ...common,
        ...auth(target),
        host: target.host,
        port: target.port,
        db: target.db ?? 0,
        ...(target.tls ? { tls: { servername: target.host } } : {}),
      });
      break;
    case "sentinel":
      client = new Redis({
        ...common,
        ...auth(target),
        sentinels: target.sentinels,
        name: target.name,
        db: target.db ?? 0,
        ...(target.sentinelPassword ? { sentinelPassword: target.sentinelPassword.reveal() } : {}),
        // Not failoverDetector: with it, a worker's connections stayed closed after a failover in 2 of 13 runs of
        // test/ha/sentinel-failover.test.ts (0 of 8 without); asking the sentinels on reconnect is enough.
        ...(target.tls ? { tls: {}, sentinelTLS: {}, enableTLSForSentinelMode: true } : {}),
      });
      break;
    case "cluster":
      client = new Cluster(target.nodes, {
        clusterRetryStrategy: (times) => Math.min(times * 100, 2000),
        enableAutoPipelining: flavour === "command",
        // While slots move (a resharding, a failover) a command is told MOVED or finds its node's connection
        // closed: wait for the slot table to be read again instead of bouncing through the stale one, and allow
        // more bounces than a failover takes (test/ha/cluster-failover.test.ts).
        retryDelayOnMoved: 100,
        retryDelayOnFailover: 200,
        retryDelayOnClusterDown: 200,
        maxRedirections: 64,
        redisOptions: {
          ...auth(target),
          maxRetriesPerRequest: common.maxRetriesPerRequest ?? null,
          ...(opts.connectionName ? { connectionName: opts.connectionName } : {}),
          ...(target.tls ? { tls: {} } : {}),
        },
      });
      break;
  }
  client.on("error", opts.onError ?? (() => {}));
  return client;
}

/** connectRedis with the flavour BullMQ Workers and QueueEvents need. */
export function connectRedisForWorker(opts: Omit<ConnectRedisOptions, "flavour"> = {}): RedisClient {
  return connectRedis({ ...opts, flavour: "worker" });
}

/** Decide where Redis is, from explicit options, then env, then the embedded socket. */
export function resolveRedisTarget(opts: ConnectRedisOptions = {}): RedisTarget {
  if (opts.target) return opts.target;
  if (opts.url) return parseRedisUrl(opts.url);
  const fromEnv = redisTargetFromEnv(opts.env ?? process.env);
  if (fromEnv) return fromEnv;
  if (opts.socketPath) return { kind: "socket", path: opts.socketPath };
  throw new RedisConfigError(
    "no Redis configured: set REDIS_URL (or REDIS_SENTINELS / REDIS_CLUSTER_NODES) or start the embedded redis-server",
  );
}

/** The REDIS_* variables as a target, or undefined when none is set (the embedded server is then used). */
export function redisTargetFromEnv(env: NodeJS.ProcessEnv): RedisTarget | undefined {
  const set = (name: string) => (env[name] ? name : undefined);
  const given = [set("REDIS_URL"), set("REDIS_SENTINELS"), set("REDIS_CLUSTER_NODES")].filter(Boolean);
  if (given.length > 1) throw new RedisConfigError(`set only one of ${given.join(", ")}`);
  const auth: Auth = {
    ...(env.REDIS_USERNAME ? { username: env.REDIS_USERNAME } : {}),
    ...(env.REDIS_PASSWORD ? { password: new Secret(env.REDIS_PASSWORD, "env:REDIS_PASSWORD") } : {}),
  };
  const tls = env.REDIS_TLS === "1" || env.REDIS_TLS === "true";
  const db = env.REDIS_DB ? parseDb(env.REDIS_DB, "REDIS_DB") : undefined;
  if (env.REDIS_URL) {
    const target = parseRedisUrl(env.REDIS_URL);
    // Credentials in the URL win; the separate variables fill what the URL leaves out.
    if (target.kind === "socket") return { ...target, ...(target.db === undefined && db ? { db } : {}) };
    return { ...auth, ...target } as RedisTarget;
  }
  if (env.REDIS_SENTINELS) {
    const name = env.REDIS_SENTINEL_NAME;
    if (!name)
      throw new RedisConfigError("REDIS_SENTINELS is set but REDIS_SENTINEL_NAME (master name) is not");
    return {
      kind: "sentinel",
      sentinels: parseHostList(env.REDIS_SENTINELS, 26379, "REDIS_SENTINELS"),
      name,
      tls,
      ...auth,
      ...(db !== undefined ? { db } : {}),
      ...(env.REDIS_SENTINEL_PASSWORD
        ? { sentinelPassword: new Secret(env.REDIS_SENTINEL_PASSWORD, "env:REDIS_SENTINEL_PASSWORD") }
        : {}),
    };
  }
  if (env.REDIS_CLUSTER_NODES) {
    return {
      kind: "cluster",
      nodes: parseHostList(env.REDIS_CLUSTER_NODES, 6379, "REDIS_CLUSTER_NODES"),
      tls,
      ...auth,
    };
  }
  return undefined;
}

/** Parse a REDIS_URL (grammar in the file header). Errors never echo the password. */
export function parseRedisUrl(url: string): RedisTarget {
  if (url.startsWith("/")) return socketTarget(url);
  const m = /^([a-z-]+):\/\/(.*)$/i.exec(url);
  if (!m) throw new RedisConfigError(`REDIS_URL: not a URL (expected redis://, rediss://, unix://, ...)`);
  const scheme = m[1]!.toLowerCase();
  const rest = m[2]!;
  if (scheme === "unix" || scheme === "redis+unix") {
    if (!rest.startsWith("/"))
      throw new RedisConfigError("REDIS_URL: unix:// needs an absolute path (unix:///...)");
    return socketTarget(rest);
  }
  const schemes: Record<string, [RedisTarget["kind"], boolean]> = {
    redis: ["standalone", false],
    rediss: ["standalone", true],
    "redis-sentinel": ["sentinel", false],
    "rediss-sentinel": ["sentinel", true],
    "redis-cluster": ["cluster", false],
    "rediss-cluster": ["cluster", true],
  };
  const kindTls = schemes[scheme];
  if (!kindTls) throw new RedisConfigError(`REDIS_URL: unsupported scheme ${scheme}://`);
  const [kind, tls] = kindTls;

  // authority = [userinfo@]hostlist ; path = /... ; query ignored except db
  const q = rest.indexOf("?");
  const beforeQuery = q === -1 ? rest : rest.slice(0, q);
  const query = new URLSearchParams(q === -1 ? "" : rest.slice(q + 1));
  const slash = beforeQuery.indexOf("/");
  const authority = slash === -1 ? beforeQuery : beforeQuery.slice(0, slash);
  const pathParts = (slash === -1 ? "" : beforeQuery.slice(slash + 1)).split("/").filter(Boolean);
  const at = authority.lastIndexOf("@");
  const auth: Auth = {};
  if (at !== -1) {
    const userinfo = authority.slice(0, at);
    const colon = userinfo.indexOf(":");
    const username = decodeURIComponent(colon === -1 ? userinfo : userinfo.slice(0, colon));
    // redis://:pass@host is the classic password-only form; redis://user@host has no password.
    const password = colon === -1 ? "" : decodeURIComponent(userinfo.slice(colon + 1));
    if (colon === -1 && username) {
      auth.username = username;
    } else {
      if (username) auth.username = username;
      if (password) auth.password = new Secret(password, "REDIS_URL");
    }
  }
  const hostList = authority.slice(at + 1);
  const queryDb = query.get("db");
  switch (kind) {
    case "standalone": {
      const hosts = parseHostList(hostList, 6379, "REDIS_URL");
      if (hosts.length !== 1) throw new RedisConfigError("REDIS_URL: redis:// takes exactly one host");
      const dbText = pathParts[0] ?? queryDb ?? undefined;
      return {
        kind,
        ...hosts[0]!,
        tls,
        ...auth,
        ...(dbText !== undefined ? { db: parseDb(dbText, "REDIS_URL") } : {}),
      };
    }
    case "sentinel": {
      const name = pathParts[0] ?? query.get("name") ?? undefined;
      if (!name) throw new RedisConfigError("REDIS_URL: redis-sentinel:// needs the master name as its path");
      const dbText = pathParts[1] ?? queryDb ?? undefined;
      return {
        kind,
        sentinels: parseHostList(hostList, 26379, "REDIS_URL"),
        name: decodeURIComponent(name),
        tls,
        ...auth,
        ...(dbText !== undefined ? { db: parseDb(dbText, "REDIS_URL") } : {}),
      };
    }
    case "cluster":
      if (pathParts.length > 0 || queryDb)
        throw new RedisConfigError("REDIS_URL: Redis Cluster has only database 0; drop the /db");
      return { kind, nodes: parseHostList(hostList, 6379, "REDIS_URL"), tls, ...auth };
    default:
      throw new RedisConfigError(`REDIS_URL: unsupported scheme ${scheme}://`);
  }
}

/** A one-line description safe for logs (never a password). */
export function describeRedisTarget(target: RedisTarget): string {
  const hp = (h: HostPort) => (h.host.includes(":") ? `[${h.host}]:${h.port}` : `${h.host}:${h.port}`);
  const user = "username" in target && target.username ? `${target.username}@` : "";
  const pw = "password" in target && target.password ? " (password set)" : "";
  switch (target.kind) {
    case "socket":
      return `unix:${target.path}${target.db ? ` db ${target.db}` : ""}`;
    case "standalone":
      return `${target.tls ? "rediss" : "redis"}://${user}${hp(target)}${target.db ? `/${target.db}` : ""}${pw}`;
    case "sentinel":
      return `sentinel ${target.name} via ${target.sentinels.map(hp).join(",")}${target.tls ? " (TLS)" : ""}${pw}`;
    case "cluster":
      return `cluster ${target.nodes.map(hp).join(",")}${target.tls ? " (TLS)" : ""}${pw}`;
  }
}

function socketTarget(spec: string): RedisTarget {
  const q = spec.indexOf("?");
  const path = q === -1 ? spec : spec.slice(0, q);
  const db = q === -1 ? null : new URLSearchParams(spec.slice(q + 1)).get("db");
  return { kind: "socket", path, ...(db !== null ? { db: parseDb(db, "REDIS_URL") } : {}) };
}

function parseHostList(list: string, defaultPort: number, what: string): HostPort[] {
  const items = list
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  if (items.length === 0) throw new RedisConfigError(`${what}: no host given`);
  return items.map((item) => {
    // [v6::addr]:port, host:port, host
    const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(item) ?? /^([^:[\]]+)(?::(\d+))?$/.exec(item);
    if (!m) throw new RedisConfigError(`${what}: cannot read host "${item}" (expected host[:port])`);
    const port = m[2] === undefined ? defaultPort : Number(m[2]);
    if (!Number.isInteger(port) || port < 1 || port > 65535)
      throw new RedisConfigError(`${what}: bad port in "${item}"`);
    return { host: m[1]!, port };
  });
}

function parseDb(text: string, what: string): number {
  if (!/^\d{1,2}$/.test(text))
    throw new RedisConfigError(`${what}: database must be a number 0-99, got "${text}"`);
  return Number(text);
}

/**
 * A Lua script run as one atomic Redis step. The name says what the script guarantees (e.g.
 * "takeLockIfFree"); it shows up in errors. Scripts must touch only the keys they are given, all in one hash slot.
 */
export interface LuaScript {
  readonly name: string;
  readonly numberOfKeys: number;
  readonly source: string;
  readonly sha: string;
}

export function luaScript(name: string, numberOfKeys: number, source: string): LuaScript {
  return { name, numberOfKeys, source, sha: createHash("sha1").update(source).digest("hex") };
}

/** EVALSHA, falling back to EVAL when the server has not seen the script (fresh or restarted Redis). */
export async function runScript(
  redis: RedisClient,
  script: LuaScript,
  keys: readonly string[],
  args: readonly (string | number)[],
): Promise<unknown> {
  if (keys.length !== script.numberOfKeys)
    throw new Error(`script ${script.name}: expected ${script.numberOfKeys} keys, got ${keys.length}`);
  // One slot, on every topology: a script whose keys could land on two Cluster nodes fails here, in every test on
  // the embedded server, not first in production on a Cluster.
  const tag = hashTag(keys[0] ?? "");
  const other = keys.find((k) => hashTag(k) !== tag);
  if (other !== undefined)
    throw new Error(
      `script ${script.name}: keys ${JSON.stringify(keys[0])} and ${JSON.stringify(other)} are not in one hash slot ` +
        "(give them the same {hash tag})",
    );
  try {
    return await redis.evalsha(script.sha, keys.length, ...keys, ...args);
  } catch (err) {
    if (!(err instanceof Error) || !err.message.includes("NOSCRIPT")) throw err;
    return await redis.eval(script.source, keys.length, ...keys, ...args);
  }
}

/** The part of a key Redis Cluster hashes: the first non-empty {...}, else the whole key. */
export function hashTag(key: string): string {
  const open = key.indexOf("{");
  if (open === -1) return key;
  const close = key.indexOf("}", open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : key;
}

/**
 * Every key matching `pattern`, with SCAN (never KEYS: it blocks the server). On a Cluster each primary holds its own
 * slots, so each is scanned; a single node is scanned once. Order is unspecified.
 */
export async function scanKeys(redis: RedisClient, pattern: string, count = 500): Promise<string[]> {
  const nodes: Redis[] = redis instanceof Cluster ? redis.nodes("master") : [redis];
  const keys = new Set<string>();
  for (const node of nodes) {
    let cursor = "0";
    do {
      const [next, batch] = await node.scan(cursor, "MATCH", pattern, "COUNT", count);
      cursor = next;
      for (const k of batch) keys.add(k);
    } while (cursor !== "0");
  }
  return [...keys];
}
