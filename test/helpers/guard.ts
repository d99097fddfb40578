// Shared setup of the guard tests: a small twin fleet (two appliances, one with HSM policy 15 = 1 and a lowered
// partition policy 20; one client host with both partitions), real SSH sessions, a real Redis, and helpers to take
// the device lock and to reset the twin between runs.

import { parseFleet } from "../../src/config/load.ts";
import { deviceLockResource, getDevice } from "../../src/config/model.ts";
import type { Fleet } from "../../src/config/schema.ts";
import { acquireDeviceLocks, type DeviceLockSet } from "../../src/coord/locks.ts";
import type { RedisClient } from "../../src/redis/client.ts";
import { JobShells } from "../../src/shell/job-shells.ts";
import type { ShellSession } from "../../src/shell/session.ts";
import type { PartitionState } from "../../src/sim/state.ts";
import { startTwin, type Twin } from "../../src/sim/twin.ts";
import { SshPool } from "../../src/transport/pool.ts";

export const GUARD_FLEET_YAML = `
version: 1
twin: true
defaults: { timeouts: { connectMs: 5000, authMs: 5000, commandMs: 5000, keepaliveMs: 15000 } }
approvals: { required: 2, expiresMinutes: 60 }
devices:
  - name: hsm-g1
    host: 127.0.0.1
    port: 2222
    serial: "700501"
    credentials: { appliance: "Appliance-G1-pw", hsmSo: "HsmSo-G1-secret" }
    partitions:
      - { label: par-g1, serial: "1700501000001", credentials: { partitionSo: "ParSo-G1-secret", co: "CryptoOff-G1-secret" }, sim: { policy20: 4 } }
  - name: hsm-g2
    host: 127.0.0.2
    port: 2222
    serial: "700502"
    credentials: { appliance: "Appliance-G2-pw", hsmSo: "HsmSo-G2-secret" }
    partitions:
      - { label: par-g2, serial: "1700502000001", credentials: { partitionSo: "ParSo-G2-secret", co: "CryptoOff-G2-secret" }, sim: { policy20: 3 } }
    sim: { policy15: 1 }
clientHosts:
  - name: client-g
    host: 127.0.0.3
    port: 2222
    clientName: client-g
    credentials: { ssh: "ClientHost-G-pw" }
    assignments: [{ device: hsm-g1, partitions: [par-g1] }, { device: hsm-g2, partitions: [par-g2] }]
`;

export interface GuardTwin {
  twin: Twin;
  fleet: Fleet;
  /** The right credentials as the fleet file had them (to "fix" a credential). */
  rightCredentials: Map<string, string>;
  snapshot: Map<string, { label: string; partitions: PartitionState[] }>;
}

export async function startGuardTwin(yaml = GUARD_FLEET_YAML): Promise<GuardTwin> {
  const parsed = parseFleet(yaml);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
  const twin = await startTwin(parsed.fleet, { rebase: true });
  const rightCredentials = new Map<string, string>();
  for (const d of twin.fleet.devices) {
    rightCredentials.set(`${d.name}:hsmSo`, d.credentials.hsmSo ?? "");
    for (const p of d.partitions)
      for (const r of ["partitionSo", "co"] as const)
        rightCredentials.set(`${d.name}:${p.label}:${r}`, p.credentials[r] ?? "");
  }
  const snapshot = new Map<string, { label: string; partitions: PartitionState[] }>();
  for (const [name, a] of twin.appliances)
    snapshot.set(name, { label: a.state.label, partitions: structuredClone(a.state.partitions) });
  return { twin, fleet: twin.fleet, rightCredentials, snapshot };
}

/** Put every appliance back to its first state (counters, lockouts, zeroization, logins) and the right credentials. */
export function resetTwin(g: GuardTwin): void {
  for (const [name, a] of g.twin.appliances) {
    const s = a.state;
    s.soFailures = 0;
    s.soLoggedIn = false;
    s.zeroized = false;
    s.faults.dropMidCommand = undefined;
    s.faults.slowReplyMs = undefined;
    s.faults.garbleCommand = undefined;
    const snap = g.snapshot.get(name)?.partitions ?? [];
    // A zeroize emptied the list: put copies back (lunacm on the client host sees them only after a restart).
    if (s.partitions.length === 0) s.partitions.push(...structuredClone(snap));
    s.label = g.snapshot.get(name)?.label ?? s.label;
    // In place: client-host twins hold references to these objects.
    for (const p of s.partitions) {
      const orig = snap.find((o) => o.label === p.label);
      if (!orig) continue;
      p.failures = { ...orig.failures };
      p.coLockout = orig.coLockout;
      p.zeroized = orig.zeroized;
      p.passwords = { ...orig.passwords };
      p.objects = orig.objects;
      p.loggedIn = undefined;
    }
  }
  for (const c of g.twin.clientHosts.values()) {
    c.faults.dropMidCommand = undefined;
    c.faults.slowReplyMs = undefined;
    c.faults.garbleCommand = undefined;
  }
  setCredentials(g.fleet, g.rightCredentials);
}

/** Before each guard test: the twin back to its first state, no guard ledger in Redis, empty appliance command logs. */
export async function resetGuardTest(g: GuardTwin, r: RedisClient): Promise<void> {
  resetTwin(g);
  const keys = await r.keys("lunafleet:guard:*");
  if (keys.length) await r.del(...keys);
  for (const a of g.twin.appliances.values()) a.state.commandLog.length = 0;
}

export function setCredentials(fleet: Fleet, creds: Map<string, string>): void {
  for (const d of fleet.devices) {
    const so = creds.get(`${d.name}:hsmSo`);
    if (so !== undefined) d.credentials.hsmSo = so;
    for (const p of d.partitions)
      for (const r of ["partitionSo", "co"] as const) {
        const v = creds.get(`${d.name}:${p.label}:${r}`);
        if (v !== undefined) p.credentials[r] = v;
      }
  }
}

/** A worker's own SSH connections and shells. */
export class WorkerShells {
  readonly pool = new SshPool();
  readonly shells: JobShells;
  constructor(
    readonly fleet: Fleet,
    opts: { unknownPromptMs?: number } = {},
  ) {
    this.shells = JobShells.forFleet(fleet, this.pool.lease(), {
      unknownPromptMs: opts.unknownPromptMs ?? 1000,
    });
  }
  lunash(device: string): Promise<ShellSession> {
    return this.shells.lunash(device);
  }
  lunacm(host: string): Promise<ShellSession> {
    return this.shells.lunacm(host);
  }
  async close(): Promise<void> {
    await this.shells.close();
    await this.pool.closeAll();
  }
}

export function lockDevice(
  redis: RedisClient,
  fleet: Fleet,
  device: string,
  owner: string,
  opts: { ttlMs?: number; waitMs?: number } = {},
): Promise<DeviceLockSet> {
  // The device lock is the appliance's (its identity), as the worker takes it.
  return acquireDeviceLocks(redis, [deviceLockResource(getDevice(fleet, device))], {
    owner,
    ttlMs: opts.ttlMs ?? 5000,
    waitMs: opts.waitMs ?? 2000,
  });
}

/** An evidence sink that keeps records in memory (for tests that do not examine the hash chain). */
export class MemoryEvidence {
  readonly records: { kind: string; data: unknown; actor?: string | undefined }[] = [];
  onAppend?: (kind: string, data: unknown) => void | Promise<void>;
  async append(kind: string, data: unknown, actor?: string): Promise<void> {
    this.records.push({ kind, data, actor });
    await this.onAppend?.(kind, data);
  }
  events(): string[] {
    return this.records.map((r) => String((r.data as { event?: unknown }).event));
  }
}
