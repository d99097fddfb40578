// The guard's promise as a property (fast-check): over random interleavings of logins by two in-process workers
// (each with its own Redis connection, SSH connections and LoginGuard) and one worker PROCESS (a child with its own
// everything), wrong and right credentials, timeouts and dropped connections mid-login (twin faults), SIGKILLed
// workers mid-login, Redis restarts, and operators releasing quarantines (after fixing the credential — or, to be
// nasty, without fixing it), no run ever leaves a zeroized HSM, a zeroized partition or a locked-out Crypto Officer.
// (There is no sanctioned zeroize in these runs, so no zeroization is allowed at all.)
// One twin and one Redis serve every run; the twin's state and the ledger are reset between runs.
import { type ChildProcess, fork } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GuardRefused, LoginFailed } from "../../src/guard/errors.ts";
import { LoginGuard } from "../../src/guard/guard.ts";
import { ledgerKeyFor, ledgerRedisKey } from "../../src/guard/ledger.ts";
import { ReleaseRefused, releaseQuarantine } from "../../src/guard/release.ts";
import type { GuardRole } from "../../src/guard/roles.ts";
import {
  GUARD_FLEET_YAML,
  type GuardTwin,
  lockDevice,
  MemoryEvidence,
  resetTwin,
  startGuardTwin,
  WorkerShells,
} from "../helpers/guard.ts";
import { withRedis } from "../helpers/redis.ts";

const NUM_RUNS = Number(process.env.GUARD_PROPERTY_RUNS ?? 500);
/** Short command deadline so a timeout mid-login costs little; the slow fault is longer than it. */
const COMMAND_MS = 700;
const SLOW_MS = 1000;
const CHILD_LOCK_TTL_MS = 700;
/** Caps on the expensive events (each costs a lock TTL, a respawn or a server restart). */
const MAX_KILLS = 10;
const MAX_RESTARTS = 8;
const MAX_TIMEOUTS = 12;

interface Target {
  id: string;
  device: string;
  role: GuardRole;
  partition?: string;
  credential: string;
}
const TARGETS: Target[] = [
  { id: "g1-so", device: "hsm-g1", role: "hsmSo", credential: "hsm-g1:hsmSo" },
  {
    id: "g1-pso",
    device: "hsm-g1",
    role: "partitionSo",
    partition: "par-g1",
    credential: "hsm-g1:par-g1:partitionSo",
  },
  { id: "g1-co-p15=0", device: "hsm-g1", role: "co", partition: "par-g1", credential: "hsm-g1:par-g1:co" },
  { id: "g2-co-p15=1", device: "hsm-g2", role: "co", partition: "par-g2", credential: "hsm-g2:par-g2:co" },
  { id: "g2-so", device: "hsm-g2", role: "hsmSo", credential: "hsm-g2:hsmSo" },
];

/** -1 = the run's focus target: most of a run hammers one credential, so a broken guard would be caught fast. */
function targetArb(): fc.Arbitrary<number> {
  return fc.oneof(
    { weight: 3, arbitrary: fc.constant(-1) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: TARGETS.length - 1 }) },
  );
}
let focus = 0;
const target = (i: number): Target => TARGETS[i < 0 ? focus : i]!;

type Lane = "A" | "B" | "C";
type LoginFault = "none" | "drop" | "timeout" | "kill";
type Action = { kind: "login"; lane: Lane; target: number; fault: LoginFault } | { kind: "restart-redis" };
type Step =
  | { kind: "batch"; actions: Action[] }
  | { kind: "wrong-credential"; target: number }
  | { kind: "release"; target: number; fixFirst: boolean };

const loginArb: fc.Arbitrary<Action> = fc.record({
  kind: fc.constant("login" as const),
  lane: fc.constantFrom<Lane>("A", "B", "C"),
  target: targetArb(),
  fault: fc.oneof(
    { weight: 12, arbitrary: fc.constant<LoginFault>("none") },
    { weight: 2, arbitrary: fc.constant<LoginFault>("drop") },
    { weight: 1, arbitrary: fc.constant<LoginFault>("timeout") },
    { weight: 1, arbitrary: fc.constant<LoginFault>("kill") },
  ),
});
const actionArb: fc.Arbitrary<Action> = fc.oneof(
  { weight: 20, arbitrary: loginArb },
  { weight: 1, arbitrary: fc.constant<Action>({ kind: "restart-redis" }) },
);
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("batch" as const),
      actions: fc.array(actionArb, { minLength: 1, maxLength: 3 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("wrong-credential" as const),
      target: fc.integer({ min: 0, max: TARGETS.length - 1 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("release" as const),
      target: targetArb(),
      fixFirst: fc.boolean(),
    }),
  },
);
const runArb = fc.record({
  focus: fc.integer({ min: 0, max: TARGETS.length - 1 }),
  steps: fc.array(stepArb, { minLength: 1, maxLength: 6 }),
});

const redis = await withRedis();
let g: GuardTwin;
const stats = {
  runs: 0,
  loginsAttempted: 0,
  success: 0,
  refused: 0,
  failed: 0,
  other: 0,
  kills: 0,
  restarts: 0,
  timeouts: 0,
  drops: 0,
  releases: 0,
};

/** An in-process worker: its own Redis connection, SSH connections and guard. */
class InProcessWorker {
  readonly redis: Redis;
  readonly guard: LoginGuard;
  readonly shells: WorkerShells;
  constructor(readonly name: string) {
    this.redis = redis.client();
    this.guard = new LoginGuard(this.redis);
    this.shells = new WorkerShells(g.fleet);
  }
  async login(t: Target, jobId: string, onRecorded: () => void): Promise<string> {
    const locks = await lockDevice(this.redis, g.fleet, t.device, jobId, { ttlMs: 3000, waitMs: 4000 });
    try {
      const lunash = await this.shells.lunash(t.device);
      const session = t.partition ? await this.shells.lunacm("client-g") : lunash;
      const ev = new MemoryEvidence();
      ev.onAppend = (_k, data) => {
        if ((data as { event?: string }).event === "attempt-recorded") onRecorded();
      };
      await this.guard.login({
        session,
        applianceSession: t.partition ? lunash : undefined,
        fleet: g.fleet,
        device: t.device,
        partition: t.partition,
        role: t.role,
        jobId,
        locks,
        evidence: ev,
      });
      await session.run(t.partition ? "role logout" : "hsm logout").catch(() => {});
      return "success";
    } finally {
      await locks.release().catch(() => {});
    }
  }
}

/** The worker process lane, with a warm spare so a SIGKILL does not wait for a new process to start. */
class ChildLane {
  #child: ChildProcess | undefined;
  #spare: Promise<ChildProcess> | undefined;
  #next = 1;
  constructor(private readonly fleetJson: string) {}

  #spawn(): Promise<ChildProcess> {
    const child = fork(join(import.meta.dirname, "fixtures", "guard-worker.ts"), [], {
      execArgv: ["--import", "tsx"],
      env: { ...process.env, REDIS_URL: redis.url, GUARD_FLEET_JSON: this.fleetJson },
      stdio: ["ignore", "ignore", "inherit", "ipc"],
    });
    return new Promise((resolve, reject) => {
      child.once("error", reject);
      child.once("exit", (code) => reject(new Error(`guard worker exited early (${code})`)));
      child.once("message", (m: { ready?: boolean }) => {
        if (m.ready) {
          child.removeAllListeners("exit");
          resolve(child);
        }
      });
    });
  }

  async start(): Promise<void> {
    this.#child = await this.#spawn();
    this.#spare = this.#spawn();
  }

  async login(t: Target, jobId: string, opts: { kill: boolean; onRecorded: () => void }): Promise<string> {
    const child = this.#child;
    if (!child) throw new Error("no child");
    const id = this.#next++;
    const credentials: Record<string, string> = {};
    for (const d of g.fleet.devices) {
      credentials[`${d.name}:hsmSo`] = d.credentials.hsmSo ?? "";
      for (const p of d.partitions)
        for (const r of ["partitionSo", "co"] as const)
          credentials[`${d.name}:${p.label}:${r}`] = p.credentials[r] ?? "";
    }
    return new Promise((resolve) => {
      const onMessage = (m: { id?: number; event?: string; outcome?: string }) => {
        if (m.id !== id) return;
        if (m.event === "attempt-recorded") {
          opts.onRecorded();
          if (opts.kill) {
            // Mid-login: the attempt is on the ledger, the password is about to go out (or already has).
            child.kill("SIGKILL");
            child.off("message", onMessage);
            stats.kills++;
            void this.#replace().then(() => resolve("killed"));
          }
          return;
        }
        if (m.outcome !== undefined) {
          child.off("message", onMessage);
          resolve(m.outcome);
        }
      };
      child.on("message", onMessage);
      child.send({
        id,
        device: t.device,
        role: t.role,
        partition: t.partition,
        clientHost: t.partition ? "client-g" : undefined,
        jobId,
        credentials,
        lockTtlMs: CHILD_LOCK_TTL_MS,
      });
    });
  }

  async #replace(): Promise<void> {
    this.#child = await (this.#spare as Promise<ChildProcess>);
    this.#spare = this.#spawn();
  }

  async stop(): Promise<void> {
    this.#child?.kill("SIGKILL");
    (await this.#spare?.catch(() => undefined))?.kill("SIGKILL");
  }
}

let workers: Record<"A" | "B", InProcessWorker>;
let child: ChildLane;
let admin: Redis;

beforeAll(async () => {
  g = await startGuardTwin(GUARD_FLEET_YAML.replace("commandMs: 5000", `commandMs: ${COMMAND_MS}`));
  const fleetJson = join(redis.dataDir, "guard-fleet.json");
  writeFileSync(fleetJson, JSON.stringify(g.fleet));
  workers = { A: new InProcessWorker("A"), B: new InProcessWorker("B") };
  child = new ChildLane(fleetJson);
  admin = redis.client();
  await child.start();
}, 60_000);

afterAll(async () => {
  await child?.stop();
  await workers?.A.shells.close();
  await workers?.B.shells.close();
  await g?.twin.stop();
});

function twinDamage(): string[] {
  const out: string[] = [];
  for (const [name, a] of g.twin.appliances) {
    if (a.state.zeroized) out.push(`${name}: HSM zeroized`);
    for (const p of a.state.partitions) {
      if (p.zeroized) out.push(`${name}/${p.label}: partition zeroized`);
      if (p.coLockout !== "none") out.push(`${name}/${p.label}: CO locked out (${p.coLockout})`);
    }
  }
  return out;
}

async function resetAll(): Promise<void> {
  resetTwin(g);
  const keys = [...(await admin.keys("lunafleet:guard:*")), ...(await admin.keys("lunafleet:lock:*"))];
  if (keys.length) await admin.del(...keys);
}

let jobSeq = 0;

async function runAction(a: Action): Promise<void> {
  if (a.kind === "restart-redis") {
    if (stats.restarts >= MAX_RESTARTS) return;
    stats.restarts++;
    await redis.restart();
    return;
  }
  const t = target(a.target);
  let fault = a.fault;
  if (fault === "kill" && (a.lane !== "C" || stats.kills >= MAX_KILLS)) fault = "none";
  if (fault === "timeout" && stats.timeouts >= MAX_TIMEOUTS) fault = "none";
  const jobId = `prop-${++jobSeq}`;
  const appliance = g.twin.appliances.get(t.device)!.state;
  const clientFaults = g.twin.clientHosts.get("client-g")!.faults;
  const loginCmd = t.partition ? "role login" : "hsm login";
  // Faults that strike in the middle of this login, set the moment the attempt is on the ledger.
  const onRecorded = () => {
    stats.loginsAttempted++;
    if (fault === "drop") {
      stats.drops++;
      if (t.partition) clientFaults.dropMidCommand = loginCmd;
      else appliance.faults.dropMidCommand = loginCmd;
    }
    if (fault === "timeout") {
      stats.timeouts++;
      if (t.partition) clientFaults.slowReplyMs = SLOW_MS;
      else appliance.faults.slowReplyMs = SLOW_MS;
    }
  };
  let outcome: string;
  try {
    outcome =
      a.lane === "C"
        ? await child.login(t, jobId, { kill: fault === "kill", onRecorded })
        : await workers[a.lane].login(t, jobId, onRecorded);
  } catch (err) {
    outcome =
      err instanceof GuardRefused
        ? "GuardRefused"
        : err instanceof LoginFailed
          ? "LoginFailed"
          : (err as Error).name;
  } finally {
    if (fault === "drop" || fault === "timeout") {
      appliance.faults.dropMidCommand = undefined;
      appliance.faults.slowReplyMs = undefined;
      clientFaults.dropMidCommand = undefined;
      clientFaults.slowReplyMs = undefined;
    }
  }
  if (outcome === "success") stats.success++;
  else if (outcome === "GuardRefused") stats.refused++;
  else if (outcome === "LoginFailed") stats.failed++;
  else stats.other++;
}

async function runStep(s: Step): Promise<void> {
  switch (s.kind) {
    case "batch": {
      // At most one action per lane in a batch (a worker runs one job at a time); lanes run concurrently.
      const seen = new Set<string>();
      const actions = s.actions.filter((a) => {
        const lane = a.kind === "login" ? a.lane : "redis";
        if (seen.has(lane)) return false;
        seen.add(lane);
        return true;
      });
      await Promise.all(actions.map(runAction));
      return;
    }
    case "wrong-credential": {
      const t = target(s.target);
      setCredential(t, `Wrong-${t.id}-${++jobSeq}`);
      return;
    }
    case "release": {
      // The operator works on what is quarantined (the generated target when nothing is).
      const quarantined: Target[] = [];
      for (const x of TARGETS)
        if (
          (await admin.hget(
            ledgerRedisKey(ledgerKeyFor(g.fleet, x.device, x.role, x.partition)),
            "quarantined",
          )) === "1"
        )
          quarantined.push(x);
      const t = quarantined.length ? quarantined[Math.abs(s.target) % quarantined.length]! : target(s.target);
      await release(t, s.fixFirst);
      return;
    }
  }
}

/** An operator releases a quarantine, having fixed the credential first — or not (the device counter must still hold). */
async function release(t: Target, fixFirst: boolean): Promise<void> {
  if (fixFirst) setCredential(t, g.rightCredentials.get(t.credential)!);
  try {
    await releaseQuarantine(admin, redis.dataDir, {
      device: t.device,
      role: t.role,
      partition: t.partition,
      reason: fixFirst ? "credential fixed" : "released without a fix",
      principal: "operator",
    });
    stats.releases++;
  } catch (err) {
    // Not quarantined / attempt in flight, or Redis restarting under the operator: the release did not happen.
    if (!(err instanceof ReleaseRefused) && !/Connection|ECONN|closed|LOADING/i.test((err as Error).message))
      throw err;
  }
}

function setCredential(t: Target, value: string): void {
  const d = g.fleet.devices.find((x) => x.name === t.device)!;
  if (!t.partition) d.credentials.hsmSo = value;
  else {
    const p = d.partitions.find((x) => x.label === t.partition)!;
    if (t.role === "partitionSo") p.credentials.partitionSo = value;
    else p.credentials.co = value;
  }
}

describe("login guard property", () => {
  it(`no interleaving zeroizes an HSM or a partition or locks out a CO (${NUM_RUNS} runs)`, async () => {
    const started = Date.now();
    await fc.assert(
      fc.asyncProperty(runArb, async ({ focus: f, steps }) => {
        focus = f;
        await resetAll();
        stats.runs++;
        for (const s of steps) await runStep(s);
        const damage = twinDamage();
        if (damage.length > 0)
          throw new Error(`damage after ${JSON.stringify({ focus: f, steps })}: ${damage.join("; ")}`);
      }),
      {
        numRuns: NUM_RUNS,
        endOnFailure: true,
        seed: Number(process.env.GUARD_PROPERTY_SEED ?? Date.now() % 2 ** 31),
      },
    );
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    console.log(
      `guard property: ${stats.runs} runs, ${stats.loginsAttempted} logins attempted (recorded on the ledger) in ${secs}s — ` +
        `${stats.success} succeeded, ${stats.failed} failed/unknown, ${stats.refused} refused before sending, ${stats.other} other; ` +
        `${stats.drops} drops, ${stats.timeouts} timeouts, ${stats.kills} worker kills, ${stats.restarts} Redis restarts, ${stats.releases} releases`,
    );
    expect(stats.runs).toBeGreaterThanOrEqual(NUM_RUNS);
    // The runs exercised what they claim to: logins of every kind of outcome, and each kind of fault.
    expect(stats.loginsAttempted).toBeGreaterThan(NUM_RUNS / 2);
    expect(stats.success).toBeGreaterThan(0);
    expect(stats.failed).toBeGreaterThan(0);
    expect(stats.refused).toBeGreaterThan(0);
    expect(stats.kills + stats.restarts + stats.drops + stats.timeouts + stats.releases).toBeGreaterThan(0);
  }, 180_000);
});
