// One fleet per Redis. Every daemon on a Redis registers the fleet it runs (file, digest) and keeps a heartbeat; a
// daemon whose fleet digest differs from the one the running daemons run refuses to start, naming both files and
// digests — otherwise its schedules and approval policy would silently replace theirs. `--replace-fleet` overrides,
// and is recorded as evidence (who, from which fleet to which); the daemons still running the old fleet see the
// replacement at their next heartbeat and stop taking jobs (their worker pauses), saying why.
//
// Key: lunafleet:daemons  hash daemonId -> JSON DaemonEntry (heartbeatAt on the Redis server's clock). An entry whose
// heartbeat is older than ALIVE_MS is a daemon that died (SIGKILL leaves it behind): it no longer counts.
import { hostname } from "node:os";
import { EvidenceLog } from "../evidence/log.ts";
import { type EvidenceSigner, sealFinal } from "../evidence/signing.ts";
import type { RedisClient } from "../redis/client.ts";

const DAEMONS_KEY = "lunafleet:daemons";
const HEARTBEAT_MS = 5_000;
const ALIVE_MS = 20_000;

export interface DaemonEntry {
  daemonId: string;
  digest: string;
  /** The fleet file as its daemon was given it (or "(in-process fleet)"). */
  fleetFile: string;
  host: string;
  pid: number;
  startedAt: number;
  heartbeatAt: number;
  /** Set when this daemon replaced another fleet (--replace-fleet). */
  replacedAt?: number;
}

export class FleetConflict extends Error {
  override name = "FleetConflict";
}

export interface FleetClaimOptions {
  daemonId: string;
  digest: string;
  fleetFile: string;
  /** --replace-fleet: start anyway, replacing the fleet the running daemons run (recorded as evidence). */
  replace?: boolean;
  /** Who replaces (the OS account of the daemon), for the evidence. */
  by: string;
  dataDir: string;
  /** Called once if another daemon replaces this one's fleet later: stop taking jobs. */
  onReplaced?: (by: DaemonEntry) => void;
  heartbeatMs?: number;
  /** Seals the replacement's evidence (the daemon's key). */
  signer?: EvidenceSigner | undefined;
}

export interface FleetClaim {
  /** The evidence id of the replacement, when this daemon replaced another fleet. */
  replacementEvidence?: string;
  release(): Promise<void>;
}

async function serverNowMs(redis: RedisClient): Promise<number> {
  const [s, us] = (await redis.time()) as [string | number, string | number];
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
}

/** The daemons whose heartbeat is recent, by the Redis server's clock. */
export async function liveDaemons(redis: RedisClient): Promise<DaemonEntry[]> {
  const now = await serverNowMs(redis);
  const all = await redis.hgetall(DAEMONS_KEY);
  const out: DaemonEntry[] = [];
  for (const [id, raw] of Object.entries(all)) {
    try {
      const e = JSON.parse(raw) as DaemonEntry;
      if (now - e.heartbeatAt <= ALIVE_MS) out.push(e);
      else await redis.hdel(DAEMONS_KEY, id);
    } catch {
      await redis.hdel(DAEMONS_KEY, id);
    }
  }
  return out;
}

export async function claimFleet(redis: RedisClient, opts: FleetClaimOptions): Promise<FleetClaim> {
  const others = (await liveDaemons(redis)).filter((d) => d.daemonId !== opts.daemonId);
  const conflicting = others.filter((d) => d.digest !== opts.digest);
  let replacementEvidence: string | undefined;
  const now = await serverNowMs(redis);
  if (conflicting.length > 0) {
    const theirs = [...new Map(conflicting.map((d) => [`${d.fleetFile} ${d.digest}`, d])).values()]
      .map((d) => `${d.fleetFile} (digest ${d.digest}; daemon ${d.daemonId} on ${d.host}, pid ${d.pid})`)
      .join(", ");
    if (!opts.replace)
      throw new FleetConflict(
        `refused: the daemons on this Redis run fleet ${theirs}; this daemon's fleet is ${opts.fleetFile} (digest ${opts.digest}). One fleet per Redis: start it with the same fleet file, stop them first, or pass --replace-fleet to replace their fleet (recorded as evidence)`,
      );
    replacementEvidence = `fleet-replace-${now}`;
    const evidence = await EvidenceLog.open(redis, opts.dataDir, replacementEvidence);
    await evidence.append(
      "note",
      {
        event: "fleet-replaced",
        from: conflicting.map((d) => ({
          fleetFile: d.fleetFile,
          digest: d.digest,
          daemonId: d.daemonId,
          host: d.host,
          pid: d.pid,
        })),
        to: { fleetFile: opts.fleetFile, digest: opts.digest, daemonId: opts.daemonId, host: hostname() },
      },
      opts.by,
    );
    // A one-record log, done at once: sealed final so `evidence verify --all` holds it to its end.
    await sealFinal(evidence, opts.signer, redis, "replaced");
  }
  const entry: DaemonEntry = {
    daemonId: opts.daemonId,
    digest: opts.digest,
    fleetFile: opts.fleetFile,
    host: hostname(),
    pid: process.pid,
    startedAt: now,
    heartbeatAt: now,
    ...(replacementEvidence ? { replacedAt: now } : {}),
  };
  await redis.hset(DAEMONS_KEY, opts.daemonId, JSON.stringify(entry));

  let replaced = false;
  const beat = async () => {
    entry.heartbeatAt = await serverNowMs(redis);
    await redis.hset(DAEMONS_KEY, opts.daemonId, JSON.stringify(entry));
    if (replaced) return;
    const newer = (await liveDaemons(redis)).find(
      (d) => d.digest !== entry.digest && (d.replacedAt ?? 0) > entry.startedAt,
    );
    if (newer) {
      replaced = true;
      opts.onReplaced?.(newer);
    }
  };
  const timer = setInterval(() => {
    beat().catch(() => {});
  }, opts.heartbeatMs ?? HEARTBEAT_MS);
  timer.unref();
  return {
    ...(replacementEvidence ? { replacementEvidence } : {}),
    async release() {
      clearInterval(timer);
      await redis.hdel(DAEMONS_KEY, opts.daemonId).catch(() => {});
    },
  };
}
