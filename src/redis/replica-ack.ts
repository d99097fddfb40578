// Replica acknowledgement: the writes that must survive a failover wait (WAIT) until a replica has them.
//
// Redis replicates asynchronously: a primary that dies right after answering a write may take that write with it,
// and Sentinel (or Cluster) promotes a replica that never saw it. For most of lunafleet's state that is repaired
// after the fact (a lost evidence record is put back by its writer, a lost lock's holder finds out at its next
// renewal). For a few writes it is not: the guard ledger's record of a login attempt (losing it lets a second failed
// login through), a lock about to be acted under, a step's checkpoint (losing it runs a finished step again), the
// sealed evidence of a finished job. Those call awaitReplicaAck(redis, key) right after the write: it issues WAIT on
// the very connection that wrote (on a Cluster, the one serving the key's slot) and throws ReplicaAckError when
// fewer replicas than required acknowledged within the timeout — the caller then stops before acting (fail closed).
// The guard ledger is strict: the required count, always. The others ask the replicas the primary has right now
// (a shard whose replica was promoted has none until one joins; it then goes on, see awaitReplicaAck).
//
// How many acknowledgements are required (the policy), decided once per client:
//   REDIS_MIN_REPLICA_ACKS=<n>         as set (0 turns WAIT off);
//   Sentinel                           1 (a Sentinel deployment exists to fail over to a replica);
//   Cluster                            1 when the cluster has replicas (CLUSTER NODES), else 0;
//   a single server (or the embedded)  1 when it has replicas connected (INFO replication), else 0 — the embedded
//                                      server has none, and makes its writes durable with appendfsync always.
// REDIS_REPLICA_ACK_TIMEOUT_MS (default 1000): how long WAIT may block.
// WAIT does not make Redis strongly consistent; with Sentinel promoting the replica with the most data, a write a
// replica acknowledged survives the loss of the primary, which is what these callers need.
import { Cluster } from "ioredis";
import type { RedisClient } from "./client.ts";

export interface ReplicaAckPolicy {
  /** Acknowledgements required (0: no WAIT). */
  replicas: number;
  timeoutMs: number;
  /** Why this many (for logs and errors). */
  reason: string;
}

export class ReplicaAckError extends Error {
  override name = "ReplicaAckError";
  /** Transient: a job that stopped on it resumes after its last checkpoint once the replicas answer again. */
  readonly retryable = true;
  constructor(
    readonly what: string,
    readonly acknowledged: number,
    readonly required: number,
    readonly timeoutMs: number,
  ) {
    super(
      `${what}: acknowledged by ${acknowledged} of the ${required} replica(s) required within ${timeoutMs} ms; ` +
        "a failover could lose it, so nothing acts on it",
    );
  }
}

const DEFAULT_TIMEOUT_MS = 1000;
const policies = new WeakMap<RedisClient, Promise<ReplicaAckPolicy>>();

/** Fix the policy of a client (the daemon after reading its configuration; tests). */
export function setReplicaAckPolicy(redis: RedisClient, policy: ReplicaAckPolicy): void {
  policies.set(redis, Promise.resolve(policy));
}

/** The client's policy (decided on first use, see the header). */
export function replicaAckPolicy(
  redis: RedisClient,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ReplicaAckPolicy> {
  let p = policies.get(redis);
  if (!p) {
    p = decidePolicy(redis, env);
    // A failed decision (Redis unreachable) is not cached: the next write asks again.
    p.catch(() => policies.delete(redis));
    policies.set(redis, p);
  }
  return p;
}

async function decidePolicy(redis: RedisClient, env: NodeJS.ProcessEnv): Promise<ReplicaAckPolicy> {
  const timeoutMs =
    positiveInt(env.REDIS_REPLICA_ACK_TIMEOUT_MS, "REDIS_REPLICA_ACK_TIMEOUT_MS") ?? DEFAULT_TIMEOUT_MS;
  const explicit = positiveInt(env.REDIS_MIN_REPLICA_ACKS, "REDIS_MIN_REPLICA_ACKS", true);
  if (explicit !== undefined) return { replicas: explicit, timeoutMs, reason: "REDIS_MIN_REPLICA_ACKS" };
  if (redis instanceof Cluster) {
    const nodes = String(await redis.cluster("NODES"));
    const hasReplicas = nodes
      .split("\n")
      .some((line) => /\b(slave|replica)\b/.test(line.split(" ")[2] ?? ""));
    return hasReplicas
      ? { replicas: 1, timeoutMs, reason: "Redis Cluster with replicas" }
      : { replicas: 0, timeoutMs, reason: "Redis Cluster without replicas" };
  }
  if ((redis.options.sentinels?.length ?? 0) > 0) return { replicas: 1, timeoutMs, reason: "Redis Sentinel" };
  const info = await redis.info("replication");
  const connected = Number(/^connected_slaves:(\d+)/m.exec(info)?.[1] ?? 0);
  return connected > 0
    ? { replicas: 1, timeoutMs, reason: `a server with ${connected} replica(s)` }
    : { replicas: 0, timeoutMs, reason: "a server without replicas" };
}

/**
 * After a write to `key` that must survive a failover: WAIT until replicas have everything this connection wrote.
 * Throws ReplicaAckError (naming `what`) when they did not acknowledge in time. A no-op (no round trip) when the
 * policy requires none.
 *
 * `strict` (the guard ledger): the policy's count, always — a primary that has lost its replicas refuses, because
 * nothing may act on an attempt a failover could lose. Otherwise (locks, checkpoints, evidence): the replicas the
 * primary has right now, up to the policy's count. A primary left without any (its replica was promoted when the
 * old primary died, and none has joined since) has no replica a failover could promote with less than it holds, so
 * its writes go on — instead of every job stopping until an operator adds one.
 */
export async function awaitReplicaAck(
  redis: RedisClient,
  key: string,
  what: string,
  opts: { strict?: boolean } = {},
): Promise<void> {
  const policy = await replicaAckPolicy(redis);
  if (policy.replicas === 0) return;
  let required = policy.replicas;
  if (!opts.strict) {
    // ROLE on the connection serving the key: "master", offset, [replicas it has now].
    const role = await onKeysNode(redis, key, (p) => p.role());
    const connected = Array.isArray(role) && Array.isArray(role[2]) ? role[2].length : 0;
    required = Math.min(required, connected);
    if (required === 0) return;
  }
  const acked = Number(await onKeysNode(redis, key, (p) => p.wait(required, policy.timeoutMs)));
  if (acked < required) throw new ReplicaAckError(what, acked, required, policy.timeoutMs);
}

type Pipeline = ReturnType<RedisClient["pipeline"]>;

/**
 * Run one keyless command on the connection that serves `key`: a pipeline goes to one connection, and with a keyed
 * command first, on a Cluster, to the one serving the key's slot — the connection the write went out on, whose
 * replication offset WAIT waits for. While the slot moves (MOVED, ASK, TRYAGAIN, a closed connection) the keyed
 * command fails and the keyless one may have run on the node the slot left: its answer is not used; the pair is sent
 * again once the client has read the slot table again.
 */
async function onKeysNode(redis: RedisClient, key: string, add: (p: Pipeline) => Pipeline): Promise<unknown> {
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < KEYS_NODE_ATTEMPTS; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, 100 * attempt));
    let replies: [Error | null, unknown][] | null;
    try {
      replies = await add(redis.pipeline().exists(key)).exec();
    } catch (err) {
      lastError = err as Error;
      continue;
    }
    const [routeErr] = replies?.[0] ?? [new Error("no reply")];
    const [err, value] = replies?.[1] ?? [new Error("no reply"), undefined];
    if (!routeErr && !err) return value;
    lastError = routeErr ?? err ?? undefined;
  }
  throw lastError ?? new Error("no reply");
}

const KEYS_NODE_ATTEMPTS = 20;

function positiveInt(text: string | undefined, name: string, zeroOk = false): number | undefined {
  if (text === undefined || text === "") return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < (zeroOk ? 0 : 1))
    throw new Error(`${name}: expected a whole number, got "${text}"`);
  return n;
}
