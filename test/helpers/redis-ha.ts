// Real Redis topologies for the failover tests, on a random loopback block (127.A.B.x, one address per process, one
// random port for all of them): a primary with replicas watched by redis-sentinel processes, or a Redis Cluster of
// primaries with replicas. Every process is a child of the test, in a temp dir, killed at stop() (and at exit).
// Readiness and failover are awaited as events or states the servers report (a replica's link up, the sentinels'
// view of each other, +switch-master, cluster_state:ok), never by sleeping a fixed time.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { allocateLoopbackBlock, type LoopbackBlock } from "../../src/sim/loopback.ts";

const run = promisify(execFile);

/** redis-cli --cluster …: it reports why it refused on stdout, so a failure carries that text, not just "failed". */
async function redisCli(args: string[], timeoutMs: number): Promise<void> {
  try {
    await run("redis-cli", args, { timeout: timeoutMs });
  } catch (err) {
    const e = err as Error & { stdout?: string; stderr?: string };
    const said = `${e.stdout ?? ""}${e.stderr ?? ""}`.trim().split("\n").slice(-15).join("\n");
    throw new Error(`redis-cli ${args.slice(0, 2).join(" ")} failed: ${e.message.split("\n")[0]}\n${said}`);
  }
}

export interface RedisProcess {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly dir: string;
  readonly pid: number | undefined;
  /** A plain connection to this process (one per process, closed at stop()). */
  client(): Redis;
  /** SIGKILL: no shutdown, no last AOF write, connections cut. Resolves when the process is gone. */
  kill(): Promise<void>;
  /** SIGSTOP / SIGCONT: the process stops answering without closing anything (a hung or partitioned node). */
  pause(): void;
  resume(): void;
  readonly alive: boolean;
}

interface Spawned extends RedisProcess {
  exited: Promise<void>;
}

const children = new Set<ChildProcess>();
let exitHookInstalled = false;

function spawnRedis(
  name: string,
  binary: "redis-server" | "redis-sentinel",
  args: string[],
  host: string,
  port: number,
  dir: string,
  clients: Redis[],
): Spawned {
  const child = spawn(binary, args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  children.add(child);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once("exit", () => {
      for (const c of children) c.kill("SIGKILL");
    });
  }
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-2000);
  });
  let alive = true;
  let conn: Redis | undefined;
  const exited = new Promise<void>((resolve) =>
    child.once("exit", () => {
      alive = false;
      children.delete(child);
      resolve();
    }),
  );
  child.once("error", (err) => {
    stderr += String(err);
  });
  return {
    name,
    host,
    port,
    dir,
    pid: child.pid,
    exited,
    get alive() {
      return alive;
    },
    client() {
      if (conn) return conn;
      conn = new Redis({ host, port, maxRetriesPerRequest: 3, connectionName: "test" });
      conn.on("error", () => {});
      clients.push(conn);
      return conn;
    },
    async kill() {
      if (!alive) return;
      child.kill("SIGKILL");
      await exited;
    },
    pause() {
      child.kill("SIGSTOP");
    },
    resume() {
      child.kill("SIGCONT");
    },
    toString: () => `${name} ${host}:${port} (${stderr.trim().slice(-300)})`,
  } as Spawned;
}

/** Poll a condition the servers report until it holds (each check is a real query, not a timer). */
export async function until<T>(
  check: () => Promise<T | undefined | false>,
  what: string,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? ` (${(last as Error).message})` : ""}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const baseArgs = (host: string, port: number, dir: string) => [
  "--port",
  String(port),
  "--bind",
  host,
  "--bind-source-addr",
  host,
  "--dir",
  dir,
  "--save",
  "",
  "--appendonly",
  "yes",
  "--appendfsync",
  "everysec",
  "--protected-mode",
  "no",
  "--daemonize",
  "no",
  "--logfile",
  join(dir, "redis.log"),
  // A replica's first sync starts at once (the default waits 5 s for more replicas to share it).
  "--repl-diskless-sync-delay",
  "0",
];

async function answers(p: RedisProcess): Promise<void> {
  const c = new Redis({ host: p.host, port: p.port, lazyConnect: true, maxRetriesPerRequest: 0 });
  c.on("error", () => {});
  try {
    await until(async () => {
      if (!p.alive) throw new Error(`${p} exited`);
      if (c.status !== "ready") await c.connect().catch(() => {});
      return (await c.ping()) === "PONG";
    }, `${p.name} to answer PING`);
  } finally {
    c.disconnect();
  }
}

function portAndBlock(hosts: number): { block: LoopbackBlock; port: number } {
  // One random port for every process (each on its own address); cluster bus ports are port + 10000.
  return { block: allocateLoopbackBlock(hosts), port: randomInt(20_000, 30_000) };
}

// ---- Sentinel ----

export interface SentinelGroup {
  readonly masterName: string;
  readonly primary: RedisProcess;
  readonly replicas: readonly RedisProcess[];
  readonly sentinels: readonly RedisProcess[];
  /** `redis-sentinel://h1:p,h2:p,h3:p/<masterName>` for connectRedis / REDIS_URL. */
  readonly url: string;
  /** The data nodes (primary first, as started). */
  readonly nodes: readonly RedisProcess[];
  /**
   * Subscribes to +switch-master on every sentinel; resolves once subscribed, with `switched`: the new primary's
   * address on the next one (so the failover is caused only after nothing can miss it).
   */
  watchSwitchMaster(timeoutMs?: number): Promise<{ switched: Promise<{ host: string; port: number }> }>;
  /** The process now serving as primary, as the sentinels say. */
  currentPrimary(): Promise<RedisProcess>;
  stop(): Promise<void>;
}

export async function startSentinelGroup(
  opts: { replicas?: number; sentinels?: number; downAfterMs?: number } = {},
): Promise<SentinelGroup> {
  const nReplicas = opts.replicas ?? 2;
  const nSentinels = opts.sentinels ?? 3;
  const masterName = "lunafleet";
  const root = mkdtempSync(join(tmpdir(), "lf-sentinel-"));
  const { block, port } = portAndBlock(1 + nReplicas + nSentinels);
  const clients: Redis[] = [];
  const procs: Spawned[] = [];
  const dirOf = (name: string) => {
    const d = join(root, name);
    mkdirSync(d, { recursive: true });
    return d;
  };
  try {
    const primaryHost = block.address(0);
    const primary = spawnRedis(
      "primary",
      "redis-server",
      baseArgs(primaryHost, port, dirOf("primary")),
      primaryHost,
      port,
      dirOf("primary"),
      clients,
    );
    procs.push(primary);
    await answers(primary);
    const replicas: Spawned[] = [];
    for (let i = 0; i < nReplicas; i++) {
      const host = block.address(1 + i);
      const dir = dirOf(`replica-${i + 1}`);
      const r = spawnRedis(
        `replica-${i + 1}`,
        "redis-server",
        [
          ...baseArgs(host, port, dir),
          "--replicaof",
          primaryHost,
          String(port),
          "--replica-announce-ip",
          host,
        ],
        host,
        port,
        dir,
        clients,
      );
      procs.push(r);
      replicas.push(r);
      await answers(r);
    }
    const probe = primary.client();
    await until(
      async () => (await probe.info("replication")).match(/^slave\d+:.*state=online/gm)?.length === nReplicas,
      "every replica in sync with the primary (state=online)",
    );
    const sentinels: Spawned[] = [];
    for (let i = 0; i < nSentinels; i++) {
      const host = block.address(1 + nReplicas + i);
      const dir = dirOf(`sentinel-${i + 1}`);
      const conf = join(dir, "sentinel.conf");
      writeFileSync(
        conf,
        [
          `port ${port}`,
          `bind ${host}`,
          `sentinel announce-ip ${host}`,
          "protected-mode no",
          `dir ${dir}`,
          `logfile ${join(dir, "sentinel.log")}`,
          `sentinel monitor ${masterName} ${primaryHost} ${port} 2`,
          `sentinel down-after-milliseconds ${masterName} ${opts.downAfterMs ?? 1000}`,
          `sentinel failover-timeout ${masterName} 10000`,
          `sentinel parallel-syncs ${masterName} 1`,
          "",
        ].join("\n"),
      );
      const s = spawnRedis(`sentinel-${i + 1}`, "redis-sentinel", [conf], host, port, dir, clients);
      procs.push(s);
      sentinels.push(s);
      await answers(s);
    }
    // Every sentinel knows the replicas and the other sentinels (they find each other through the primary).
    for (const s of sentinels) {
      const c = s.client();
      await until(
        async () => {
          const reps = (await c.call("SENTINEL", "REPLICAS", masterName)) as unknown[];
          const peers = (await c.call("SENTINEL", "SENTINELS", masterName)) as unknown[];
          return reps.length === nReplicas && peers.length === nSentinels - 1;
        },
        `${s.name} to see ${nReplicas} replicas and ${nSentinels - 1} other sentinels`,
      );
    }
    const nodes = [primary, ...replicas];
    const group: SentinelGroup = {
      masterName,
      primary,
      replicas,
      sentinels,
      nodes,
      url: `redis-sentinel://${sentinels.map((s) => `${s.host}:${s.port}`).join(",")}/${masterName}`,
      async watchSwitchMaster(timeoutMs = 60_000) {
        // Every sentinel publishes +switch-master; listening on all of them survives one being slow.
        const subs = sentinels.map((s) => {
          const sub = new Redis({ host: s.host, port: s.port, maxRetriesPerRequest: 3 });
          sub.on("error", () => {});
          return sub;
        });
        const close = () => {
          for (const sub of subs) sub.disconnect();
        };
        try {
          // Resolves once every subscription is confirmed: a failover caused after this cannot be missed.
          await Promise.all(subs.map((sub) => sub.subscribe("+switch-master")));
        } catch (err) {
          close();
          throw err;
        }
        const switched = new Promise<{ host: string; port: number }>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error("no +switch-master")), timeoutMs);
          for (const sub of subs)
            sub.on("message", (_channel: string, message: string) => {
              // "<master-name> <old-ip> <old-port> <new-ip> <new-port>"
              const [name, , , host, newPort] = message.split(" ");
              if (name !== masterName || !host) return;
              clearTimeout(timer);
              resolve({ host, port: Number(newPort) });
            });
        }).finally(close);
        // Rejects for whoever awaits it; not an unhandled rejection if the test failed before it could.
        switched.catch(() => {});
        return { switched };
      },
      async currentPrimary() {
        for (const s of sentinels) {
          if (!s.alive) continue;
          const c = s.client();
          const [host, p] = (await c.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", masterName)) as string[];
          const found = nodes.find((n) => n.host === host && n.port === Number(p));
          if (found) return found;
        }
        throw new Error("no sentinel names a primary");
      },
      stop: () => stopAll(procs, clients, root, block),
    };
    return group;
  } catch (err) {
    await stopAll(procs, clients, root, block);
    throw err;
  }
}

// ---- Cluster ----

export interface ClusterGroup {
  readonly primaries: readonly RedisProcess[];
  readonly replicas: readonly RedisProcess[];
  readonly nodes: readonly RedisProcess[];
  /** `redis-cluster://h1:p,h2:p,...` for connectRedis / REDIS_URL. */
  readonly url: string;
  /** Every live node says cluster_state:ok and every slot is served. */
  healthy(timeoutMs?: number): Promise<void>;
  /** The node currently serving a key's slot (CLUSTER NODES of a live node). */
  primaryOf(key: string): Promise<RedisProcess>;
  /** Move `count` slots from one primary to another with redis-cli --cluster reshard (keys move with them). */
  reshard(from: RedisProcess, to: RedisProcess, count: number): Promise<void>;
  /** The live primaries serving slots now, as a live node sees them. */
  currentPrimaries(): Promise<RedisProcess[]>;
  stop(): Promise<void>;
}

export async function startRedisCluster(
  opts: { primaries?: number; replicasPerPrimary?: number; nodeTimeoutMs?: number } = {},
): Promise<ClusterGroup> {
  const nPrimaries = opts.primaries ?? 3;
  const per = opts.replicasPerPrimary ?? 1;
  const total = nPrimaries * (1 + per);
  const root = mkdtempSync(join(tmpdir(), "lf-cluster-"));
  const { block, port } = portAndBlock(total);
  const clients: Redis[] = [];
  const procs: Spawned[] = [];
  try {
    for (let i = 0; i < total; i++) {
      const host = block.address(i);
      const dir = join(root, `node-${i + 1}`);
      mkdirSync(dir, { recursive: true });
      const p = spawnRedis(
        `node-${i + 1}`,
        "redis-server",
        [
          ...baseArgs(host, port, dir),
          "--cluster-enabled",
          "yes",
          "--cluster-config-file",
          join(dir, "nodes.conf"),
          "--cluster-node-timeout",
          String(opts.nodeTimeoutMs ?? 1000),
          "--cluster-announce-ip",
          host,
          // A primary that lost its slots' replicas keeps serving what it has (the test kills primaries on purpose).
          "--cluster-require-full-coverage",
          "no",
        ],
        host,
        port,
        dir,
        clients,
      );
      procs.push(p);
      await answers(p);
    }
    await redisCli(
      [
        "--cluster",
        "create",
        ...procs.map((p) => `${p.host}:${p.port}`),
        "--cluster-replicas",
        String(per),
        "--cluster-yes",
      ],
      60_000,
    );
    // One node's view of the cluster (CLUSTER NODES), by process.
    const viewOf = async (
      p: RedisProcess,
    ): Promise<{ node: RedisProcess; role: string; slots: string[] }[]> =>
      String(await p.client().call("CLUSTER", "NODES"))
        .trim()
        .split("\n")
        .map((line) => {
          const f = line.split(" ");
          const addr = (f[1] ?? "").split("@")[0] ?? "";
          const node = procs.find((q) => `${q.host}:${q.port}` === addr);
          return { node: node as RedisProcess, role: f[2] ?? "", slots: f.slice(8) };
        })
        .filter((n) => n.node);
    const nodeList = async () => {
      const live = procs.find((p) => p.alive);
      if (!live) throw new Error("no live cluster node");
      return viewOf(live);
    };
    const servingPrimaries = (view: { node: RedisProcess; role: string; slots: string[] }[]) =>
      view
        .filter((n) => /master/.test(n.role) && !/fail/.test(n.role) && n.slots.length > 0)
        .map((n) => n.node);
    const group: ClusterGroup = {
      primaries: [],
      replicas: [],
      nodes: procs,
      url: `redis-cluster://${procs.map((p) => `${p.host}:${p.port}`).join(",")}`,
      async healthy(timeoutMs = 60_000) {
        await until(
          async () => {
            for (const p of procs) {
              if (!p.alive) continue;
              const info = String(await p.client().call("CLUSTER", "INFO"));
              if (!/cluster_state:ok/.test(info) || !/cluster_slots_ok:16384/.test(info)) return false;
              // Right after a kill the others still list the dead primary as serving its slots (until they agree
              // it failed and its replica takes over): every slot's owner, as each live node sees it, is alive.
              const text = String(await p.client().call("CLUSTER", "NODES"));
              for (const line of text.trim().split("\n")) {
                const f = line.split(" ");
                if (f.length <= 8 || !/master/.test(f[2] ?? "")) continue;
                const owner = procs.find((q) => `${q.host}:${q.port}` === (f[1] ?? "").split("@")[0]);
                if (!owner?.alive || /fail/.test(f[2] ?? "")) return false;
              }
            }
            return true;
          },
          "every slot served by a live primary, as every live node sees it",
          timeoutMs,
        );
      },
      async primaryOf(key: string) {
        const live = procs.find((p) => p.alive);
        if (!live) throw new Error("no live cluster node");
        const slot = Number(await live.client().call("CLUSTER", "KEYSLOT", key));
        for (const n of await nodeList()) {
          if (!/master/.test(n.role) || /fail/.test(n.role) || !n.node.alive) continue;
          for (const range of n.slots) {
            const [a, b] = range.split("-").map(Number);
            if (a !== undefined && slot >= a && slot <= (b ?? a)) return n.node;
          }
        }
        throw new Error(`no primary serves slot ${slot}`);
      },
      async reshard(from, to, count) {
        const id = async (p: RedisProcess) => String(await p.client().call("CLUSTER", "MYID"));
        await redisCli(
          [
            "--cluster",
            "reshard",
            `${to.host}:${to.port}`,
            "--cluster-from",
            await id(from),
            "--cluster-to",
            await id(to),
            "--cluster-slots",
            String(count),
            "--cluster-yes",
          ],
          120_000,
        );
      },
      async currentPrimaries() {
        return servingPrimaries(await nodeList());
      },
      stop: () => stopAll(procs, clients, root, block),
    };
    await group.healthy();
    // redis-cli --cluster create returns once the slots are assigned; a replica's CLUSTER REPLICATE reaches the
    // other nodes by gossip afterwards, and its first sync runs after that. Until every node agrees on who replicates
    // whom, a node still lists a fresh replica as a master without slots (picked as a reshard target, redis-cli
    // refuses it); until each replica's link is up, the ledger's WAIT is not acknowledged. So: await that state.
    const roles = await until(
      async () => {
        let agreed: string | undefined;
        let roles: { node: RedisProcess; role: string; slots: string[] }[] = [];
        for (const p of procs) {
          const view = await viewOf(p);
          const replicas = view.filter((n) => /slave/.test(n.role) && !/fail/.test(n.role));
          if (servingPrimaries(view).length !== nPrimaries || replicas.length !== total - nPrimaries)
            return false;
          const signature = view
            .map((n) => `${n.node.name}:${/master/.test(n.role) ? "m" : "r"}`)
            .sort()
            .join(",");
          if (agreed !== undefined && signature !== agreed) return false;
          agreed = signature;
          roles = view;
        }
        for (const r of roles.filter((n) => /slave/.test(n.role)))
          if (!/master_link_status:up/.test(await r.node.client().info("replication"))) return false;
        return roles;
      },
      `every node to agree on ${nPrimaries} primaries and ${total - nPrimaries} replicas, each replica's link up`,
      60_000,
    );
    (group.primaries as RedisProcess[]).push(...servingPrimaries(roles));
    (group.replicas as RedisProcess[]).push(...roles.filter((r) => /slave/.test(r.role)).map((r) => r.node));
    return group;
  } catch (err) {
    await stopAll(procs, clients, root, block);
    throw err;
  }
}

async function stopAll(
  procs: Spawned[],
  clients: Redis[],
  root: string,
  block: LoopbackBlock,
): Promise<void> {
  for (const c of clients) c.disconnect();
  for (const p of procs) {
    p.resume();
    await p.kill();
  }
  block.release();
  rmSync(root, { recursive: true, force: true });
}

/** The last lines of a process's log (for a failing test's message). */
export function logTail(p: RedisProcess, lines = 20): string {
  for (const name of ["redis.log", "sentinel.log"]) {
    try {
      return readFileSync(join(p.dir, name), "utf8").trimEnd().split("\n").slice(-lines).join("\n");
    } catch {
      // not this one
    }
  }
  return "";
}
