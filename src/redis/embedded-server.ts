// The embedded Redis: when no REDIS_URL is given, the daemon runs its own private redis-server as a child process.
// It listens only on a unix socket inside the data dir (no TCP port, so nothing else on the machine or the network
// can reach it), keeps an append-only file, fsynced on every write, so locks, the guard ledger and evidence survive a
// restart and a machine crash, and dies with the daemon.
//
// Data dir layout (dataDir is the lunafleet state directory, default ./.lunafleet or $LUNAFLEET_DATA_DIR):
//   <dataDir>/redis/redis.sock      the socket
//   <dataDir>/redis/appendonlydir/  the AOF (Redis 7 multi-part AOF)
//   <dataDir>/redis/redis.log       the server's log (read back into the error when it fails to start)
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join, resolve } from "node:path";

/** Linux sun_path is 108 bytes including the NUL; Redis refuses longer paths with an obscure message. */
const MAX_SOCKET_PATH = 107;
const DEFAULT_START_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 10_000;

export class EmbeddedRedisError extends Error {
  override name = "EmbeddedRedisError";
}

export interface EmbeddedRedisOptions {
  /** lunafleet state directory; Redis keeps its socket, AOF and log in `<dataDir>/redis/`. */
  dataDir: string;
  /** redis-server binary (default: `redis-server` on PATH). */
  binary?: string;
  /** How long to wait for the server to answer PING (default 15 s; loading a big AOF takes a while). */
  startTimeoutMs?: number;
  /**
   * Stop the server on SIGINT/SIGTERM/SIGHUP (default true). A daemon that shuts down in order (worker, then Redis)
   * passes false and calls stop() itself; the server is still killed when the process exits.
   */
  handleSignals?: boolean;
  /**
   * When Redis fsyncs its append-only file. Default "always" (or LUNAFLEET_EMBEDDED_APPENDFSYNC): see
   * embeddedAppendfsync.
   */
  appendfsync?: "always" | "everysec";
  /** Told when an orphaned redis-server of this data dir (its daemon killed) was stopped and replaced. */
  onOrphanReplaced?: (info: { redisPid: number; daemonPid: number }) => void;
}

export interface EmbeddedRedis {
  /** Absolute path of the unix socket. */
  readonly socketPath: string;
  /** `unix://<socketPath>`; understood by connectRedis({ url }). */
  readonly url: string;
  /** The child's pid (changes on restart). */
  readonly pid: number | undefined;
  /** SIGTERM the server (Redis flushes the AOF on SIGTERM) and wait until it has exited. Idempotent. */
  stop(): Promise<void>;
  /** Stop, then start again on the same data: what a crashed-and-restarted Redis looks like to clients. */
  restart(): Promise<void>;
}

/**
 * The embedded server fsyncs its append-only file before it answers a write ("always"): on one machine there is no
 * replica to acknowledge the guard ledger's record of a login attempt, so the disk must have it before the password
 * is sent — "everysec" can lose the last second of writes when the machine (not just the process) dies, and with it
 * an attempt that was made. Redis 7.0 (Debian 12) has no WAITAOF to fsync only the writes that need it, so every
 * write pays; Redis groups the writes of one event-loop turn into one fsync, and `npm run bench` measures what it
 * costs the sweep (issue 15). LUNAFLEET_EMBEDDED_APPENDFSYNC=everysec trades that durability for throughput.
 */
export function embeddedAppendfsync(env: NodeJS.ProcessEnv): "always" | "everysec" {
  const v = env.LUNAFLEET_EMBEDDED_APPENDFSYNC;
  if (v === undefined || v === "" || v === "always") return "always";
  if (v === "everysec") return "everysec";
  throw new EmbeddedRedisError(`LUNAFLEET_EMBEDDED_APPENDFSYNC: expected always or everysec, got "${v}"`);
}

/** The default lunafleet data dir: $LUNAFLEET_DATA_DIR or ./.lunafleet. */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.LUNAFLEET_DATA_DIR || ".lunafleet");
}

/** Where the embedded server of a data dir puts its socket (for clients that only need to connect). */
export function embeddedRedisSocketPath(dataDir: string): string {
  return join(resolve(dataDir), "redis", "redis.sock");
}

export async function startEmbeddedRedis(opts: EmbeddedRedisOptions): Promise<EmbeddedRedis> {
  const redisDir = join(resolve(opts.dataDir), "redis");
  const socketPath = join(redisDir, "redis.sock");
  const logPath = join(redisDir, "redis.log");
  const binary = opts.binary ?? "redis-server";
  const startTimeoutMs = opts.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;

  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH) {
    throw new EmbeddedRedisError(
      `embedded redis: socket path ${socketPath} is longer than ${MAX_SOCKET_PATH} bytes (unix socket limit); ` +
        "use a shorter data dir (LUNAFLEET_DATA_DIR)",
    );
  }
  mkdirSync(redisDir, { recursive: true, mode: 0o700 });

  // Redis unlinks an existing socket file when it starts: starting a second server on the same data dir would
  // silently steal the first one's socket while both write the same AOF. A server left behind by a daemon that was
  // killed (SIGKILL: no exit handler ran) is ours to replace — only when the owner file proves it: its daemon is dead
  // and the process serving the socket is the redis-server that daemon started. Anything else is refused.
  if (existsSync(socketPath) && (await pingSocket(socketPath, 500)) === "pong") {
    await replaceOrphanOrRefuse(redisDir, socketPath, opts.onOrphanReplaced);
  }

  const args = [
    "--port",
    "0", // no TCP listener at all
    "--unixsocket",
    socketPath,
    "--unixsocketperm",
    "700",
    "--dir",
    redisDir,
    "--appendonly",
    "yes",
    "--appendfsync",
    opts.appendfsync ?? embeddedAppendfsync(process.env),
    "--save",
    "", // the AOF is the persistence; no forking RDB snapshots on a 2-core box
    "--daemonize",
    "no",
    "--protected-mode",
    "no", // socket-only, mode 700: nothing to protect against, and protected mode would refuse nothing useful
    "--logfile",
    logPath,
    "--loglevel",
    "notice",
  ];

  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let stopping = false;

  const killOnExit = () => {
    // 'exit' handlers must be synchronous: send the signal and let Redis finish its AOF on its own.
    if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
  };
  const onSignal = (signal: NodeJS.Signals) => {
    killOnExit();
    // We only wanted to clean up, not to swallow the signal: if nobody else handles it, die as Node would have.
    if (process.listenerCount(signal) === 1) {
      process.removeListener(signal, onSignal);
      process.kill(process.pid, signal);
    }
  };
  const SIGNALS: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];

  const launch = async (): Promise<void> => {
    const spawned = spawn(binary, args, { stdio: ["ignore", "ignore", "pipe"], detached: false });
    child = spawned;
    if (spawned.pid !== undefined)
      writeOwner(redisDir, { daemonPid: process.pid, redisPid: spawned.pid, socketPath });
    let stderr = "";
    spawned.stderr?.setEncoding("utf8");
    spawned.stderr?.on("data", (chunk: string) => {
      if (stderr.length < 8192) stderr += chunk;
    });
    let spawnError: NodeJS.ErrnoException | undefined;
    let exitInfo: string | undefined;
    exited = new Promise<void>((resolveExit) => {
      spawned.once("error", (err: NodeJS.ErrnoException) => {
        spawnError = err;
        resolveExit();
      });
      spawned.once("exit", (code, signal) => {
        exitInfo = signal ? `signal ${signal}` : `exit code ${code}`;
        resolveExit();
      });
    });

    const deadline = Date.now() + startTimeoutMs;
    for (;;) {
      if (spawnError) {
        if (spawnError.code === "ENOENT") {
          throw new EmbeddedRedisError(
            `embedded redis: cannot run ${binary} (not installed or not on PATH). Install it, e.g. ` +
              "`apt-get install -y redis-server`, or point REDIS_URL at an existing Redis",
          );
        }
        throw new EmbeddedRedisError(`embedded redis: cannot start ${binary}: ${spawnError.message}`);
      }
      if (exitInfo !== undefined) {
        throw new EmbeddedRedisError(
          `embedded redis: ${binary} exited during startup (${exitInfo})${describeLog(stderr, logPath)}`,
        );
      }
      const answer = await pingSocket(socketPath, 500);
      if (answer === "pong") return;
      if (Date.now() > deadline) {
        spawned.kill("SIGKILL");
        await exited;
        throw new EmbeddedRedisError(
          `embedded redis: ${socketPath} did not answer PING within ${startTimeoutMs} ms ` +
            `(last: ${answer})${describeLog(stderr, logPath)}`,
        );
      }
      await sleep(answer === "loading" ? 100 : 25);
    }
  };

  const terminate = async (): Promise<void> => {
    const current = child;
    if (!current || current.exitCode !== null || current.signalCode !== null) {
      await exited;
      return;
    }
    current.kill("SIGTERM");
    const timer = setTimeout(() => current.kill("SIGKILL"), STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
  };

  await launch();
  process.on("exit", killOnExit);
  const handleSignals = opts.handleSignals ?? true;
  if (handleSignals) for (const s of SIGNALS) process.on(s, onSignal);

  return {
    socketPath,
    url: `unix://${socketPath}`,
    get pid() {
      return child?.pid;
    },
    async stop() {
      if (stopping) return exited;
      stopping = true;
      process.removeListener("exit", killOnExit);
      for (const s of SIGNALS) process.removeListener(s, onSignal);
      await terminate();
    },
    async restart() {
      if (stopping) throw new EmbeddedRedisError("embedded redis: restart() after stop()");
      await terminate();
      await launch();
    },
  };
}

/** Who started the redis-server of a data dir: written at each launch, read by the next start. */
interface OwnerRecord {
  daemonPid: number;
  redisPid: number;
  socketPath: string;
  startedAt?: string;
}

const OWNER_FILE = "lunafleet-owner.json";

function writeOwner(redisDir: string, o: OwnerRecord): void {
  writeFileSync(
    join(redisDir, OWNER_FILE),
    `${JSON.stringify({ ...o, startedAt: new Date().toISOString() })}\n`,
    {
      mode: 0o600,
    },
  );
}

function readOwner(redisDir: string): OwnerRecord | undefined {
  try {
    const o = JSON.parse(readFileSync(join(redisDir, OWNER_FILE), "utf8")) as OwnerRecord;
    return Number.isInteger(o.daemonPid) && Number.isInteger(o.redisPid) ? o : undefined;
  } catch {
    return undefined;
  }
}

/** Whether a process exists (EPERM: it exists, owned by someone else). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** `INFO server` over the socket: the pid of the process that really answers there. */
export function servingPid(socketPath: string, timeoutMs: number): Promise<number | undefined> {
  return new Promise((resolvePid) => {
    const sock = connect(socketPath);
    let buf = "";
    const done = (pid: number | undefined) => {
      clearTimeout(timer);
      sock.destroy();
      resolvePid(pid);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    sock.setEncoding("utf8");
    sock.on("connect", () => sock.write("*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n"));
    sock.on("data", (chunk: string) => {
      buf += chunk;
      const m = /\r\nprocess_id:(\d+)\r\n/.exec(buf);
      if (m) done(Number(m[1]));
      else if (buf.startsWith("-")) done(undefined);
    });
    sock.on("error", () => done(undefined));
  });
}

/** The command line of a process (Linux /proc), to check a pid is the redis-server of this socket. */
function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
  } catch {
    return "";
  }
}

async function replaceOrphanOrRefuse(
  redisDir: string,
  socketPath: string,
  onReplaced?: (info: { redisPid: number; daemonPid: number }) => void,
): Promise<void> {
  const owner = readOwner(redisDir);
  const refuse = (why: string) =>
    new EmbeddedRedisError(`embedded redis: another redis-server is already serving ${socketPath}; ${why}`);
  if (!owner)
    throw refuse("it was not started by lunafleet here (no owner record): is another daemon running?");
  if (processAlive(owner.daemonPid))
    throw refuse(
      `the lunafleet process that started it (pid ${owner.daemonPid}) is still running on this data dir`,
    );
  const serving = await servingPid(socketPath, 2000);
  if (serving === undefined || serving !== owner.redisPid)
    throw refuse(
      `it is not the redis-server lunafleet started (serving pid ${serving ?? "unknown"}, recorded ${owner.redisPid}); stop it by hand`,
    );
  if (existsSync("/proc/self") && !commandLine(serving).includes(socketPath))
    throw refuse(
      `process ${serving} does not serve this data dir's socket on its command line; stop it by hand`,
    );
  // Ours, orphaned by a daemon that died without stopping it: stop it (SIGTERM lets it finish its AOF), then start
  // a fresh child. Nothing is lost: the AOF is the state.
  process.kill(serving, "SIGTERM");
  const deadline = Date.now() + STOP_GRACE_MS;
  while (processAlive(serving) && (await pingSocket(socketPath, 200)) !== "refused") {
    if (Date.now() > deadline) {
      process.kill(serving, "SIGKILL");
      break;
    }
    await sleep(50);
  }
  while (processAlive(serving) && Date.now() < deadline + 2000) await sleep(20);
  onReplaced?.({ redisPid: serving, daemonPid: owner.daemonPid });
}

type PingAnswer = "pong" | "loading" | "refused" | "timeout" | "error";

/** One raw PING over the socket; no client library, so startup probing makes no reconnect noise. */
export function pingSocket(socketPath: string, timeoutMs: number): Promise<PingAnswer> {
  return new Promise((resolvePing) => {
    const sock = connect(socketPath);
    let buf = "";
    const done = (answer: PingAnswer) => {
      clearTimeout(timer);
      sock.destroy();
      resolvePing(answer);
    };
    const timer = setTimeout(() => done("timeout"), timeoutMs);
    sock.setEncoding("utf8");
    sock.on("connect", () => sock.write("PING\r\n"));
    sock.on("data", (chunk: string) => {
      buf += chunk;
      if (!buf.includes("\r\n")) return;
      if (buf.startsWith("+PONG")) done("pong");
      else if (buf.startsWith("-LOADING")) done("loading");
      else done("error");
    });
    sock.on("error", (err: NodeJS.ErrnoException) =>
      done(err.code === "ENOENT" || err.code === "ECONNREFUSED" ? "refused" : "error"),
    );
  });
}

function describeLog(stderr: string, logPath: string): string {
  let log = "";
  try {
    log = readFileSync(logPath, "utf8");
  } catch {
    // no log yet: the server died before opening it (bad argument); stderr says why
  }
  const tail = `${stderr}\n${log}`
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(-6)
    .join("\n  ");
  return tail ? `:\n  ${tail}` : "";
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
