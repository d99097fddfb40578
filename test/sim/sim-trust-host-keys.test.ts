// `lunafleet sim --trust-host-keys`: the twin started the way the CLI starts it (startSim, rebased, temp state and data
// dirs) records every machine's host key in the data dir's trust store under its name, address and port; a fleet
// that pins no host key then reaches the twin through that store alone (connectSsh, a lunash shell, and a daemon
// whose worker reads the data dir's store). Without the flag nothing is recorded, a hint is printed, and the same
// connection is refused as an unpinned host key. The flag is refused for a non-twin fleet.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, describe, expect, it } from "vitest";
import { parsers } from "../../parsers/index.ts";
import { type RunningSim, SimStartRefused, startSim } from "../../src/cli/commands/sim.ts";
import { DEMO_FLEET_FILE } from "../../src/cli/demo.ts";
import type { Fleet } from "../../src/config/schema.ts";
import { startDaemon } from "../../src/daemon/daemon.ts";
import { submitJob } from "../../src/queue/jobs.ts";
import { JobShells } from "../../src/shell/job-shells.ts";
import { sendCommand } from "../../src/shell/reply.ts";
import { recordTwinHostKeys } from "../../src/sim/trust-host-keys.ts";
import { connectSsh } from "../../src/transport/connection.ts";
import { HostKeyMismatch } from "../../src/transport/errors.ts";
import { SshPool } from "../../src/transport/pool.ts";
import { deviceTarget } from "../../src/transport/target.ts";
import { TrustStore } from "../../src/transport/trust-store.ts";

const root = mkdtempSync(join(tmpdir(), "lf-simtrust-"));
const running: RunningSim[] = [];

afterAll(async () => {
  for (const sim of running) await sim.stop();
  rmSync(root, { recursive: true, force: true });
});

async function sim(name: string, trustHostKeys: boolean) {
  const dir = join(root, name);
  const printed: string[] = [];
  const s = await startSim({
    fleet: DEMO_FLEET_FILE,
    rebase: true,
    hostKeyDir: join(dir, "hostkeys"),
    stateDir: join(dir, "state"),
    dataDir: join(dir, "data"),
    trustHostKeys,
    print: (l) => printed.push(l),
  });
  running.push(s);
  return { sim: s, printed, dataDir: join(dir, "data") };
}

/** The twin's addresses without any pinned host key: what a daemon's fleet looks like when only the store trusts. */
function unpinned(fleet: Fleet): Fleet {
  const copy = structuredClone(fleet);
  for (const d of copy.devices) delete d.hostKey;
  for (const c of copy.clientHosts) delete c.hostKey;
  return copy;
}

describe("lunafleet sim --trust-host-keys", () => {
  it("records every twin machine in the data dir's trust store; an unpinned fleet connects through it", async () => {
    const { sim: s, printed, dataDir } = await sim("with-flag", true);
    const storeFile = join(dataDir, "known_hosts.json");
    expect(s.trustStoreFile).toBe(storeFile);
    const stored = JSON.parse(readFileSync(storeFile, "utf8")) as Record<
      string,
      { fingerprint: string; host: string; port: number }
    >;
    // Every appliance and client host, keyed as the trust store matches a fleet target: name, address, SSH port.
    const machines = [...s.twin.appliances.values(), ...s.twin.clientHosts.values()];
    expect(Object.keys(stored).sort()).toEqual(machines.map((m) => m.name).sort());
    for (const m of machines)
      expect(stored[m.name]).toMatchObject({
        fingerprint: m.hostKeyFingerprint,
        host: m.address,
        port: m.sshPort,
      });
    // What it recorded was printed, one line per machine with its fingerprint.
    const banner = printed.join("\n");
    expect(banner).toContain(`trusted ${machines.length} twin host key(s) in ${storeFile}`);
    for (const m of machines) expect(banner).toContain(m.hostKeyFingerprint);
    expect(banner).not.toMatch(/pins none/);

    const fleet = unpinned(s.twin.fleet);
    const store = new TrustStore(storeFile);
    const a1 = fleet.devices.find((d) => d.name === "hsm-a1")!;
    expect(deviceTarget(fleet, a1).hostKey).toBeUndefined();
    const conn = await connectSsh(deviceTarget(fleet, a1), { trustStore: store });
    conn.close();

    // A lunash shell on a device and a lunacm shell on a client host, through a pool that knows only the store.
    const pool = new SshPool({ trustStore: store });
    const shells = JobShells.forFleet(fleet, pool.lease());
    try {
      const lunash = await shells.lunash("hsm-b2");
      const show = await sendCommand(lunash, "hsm show", parsers.hsmShow);
      expect(show.reply.ok && show.reply.value.serial).toBe("700202");
      const lunacm = await shells.lunacm(fleet.clientHosts[0]!.name);
      expect((await sendCommand(lunacm, "slot list", parsers.slotList)).reply.ok).toBe(true);
    } finally {
      await shells.close();
      await pool.closeAll();
    }

    // Recording again finds every key already trusted and leaves the file alone; a stale key is replaced, and said so.
    const before = readFileSync(storeFile, "utf8");
    expect(recordTwinHostKeys(s.twin, new TrustStore(storeFile)).every((t) => t.before === "same")).toBe(
      true,
    );
    expect(readFileSync(storeFile, "utf8")).toBe(before);
    const stale = "SHA256:Jr8cQ0xX7pE5rTq1mZk2N8vW3yB6uH9oL4dS0fG7aCa";
    const a1Twin = s.twin.appliances.get("hsm-a1")!;
    new TrustStore(storeFile).set("hsm-a1", {
      fingerprint: stale,
      host: a1Twin.address,
      port: a1Twin.sshPort,
    });
    const again = recordTwinHostKeys(s.twin, new TrustStore(storeFile));
    expect(again.find((t) => t.name === "hsm-a1")!.before).toEqual({ replaced: stale });
    expect(new TrustStore(storeFile).get("hsm-a1")!.fingerprint).toBe(a1Twin.hostKeyFingerprint);
  });

  it("a daemon whose fleet pins no host key runs a job on the twin through the data dir's store", async () => {
    const { sim: s, dataDir } = await sim("daemon", true);
    const fleet = unpinned(s.twin.fleet);
    const daemon = await startDaemon({ fleet, dataDir, httpPort: null, schedules: false, concurrency: 2 });
    try {
      const { jobId } = await submitJob(daemon.queue, { fleet, runbook: "patch-verify", target: "hsm-a1" });
      // Until the job ends, with no wall-clock deadline of its own (load could beat one): the test's timeout is
      // the hang guard.
      let state = "";
      for (;;) {
        state = (await (await daemon.queue.getJob(jobId))?.getState()) ?? "missing";
        if (state === "completed" || state === "failed" || state === "missing") break;
        await sleep(25);
      }
      const job = await daemon.queue.getJob(jobId);
      expect(state, job?.failedReason).toBe("completed");
    } finally {
      await daemon.stop();
    }
  });

  it("without the flag: nothing recorded, a one-line hint, and the unpinned fleet is refused", async () => {
    const { sim: s, printed, dataDir } = await sim("without-flag", false);
    expect(s.trusted).toEqual([]);
    expect(existsSync(join(dataDir, "known_hosts.json"))).toBe(false);
    const hints = printed.filter((l) => l.includes("--trust-host-keys"));
    expect(hints).toHaveLength(1);
    expect(hints[0]).toMatch(/pins none.*lunafleet fleet trust/);

    const fleet = unpinned(s.twin.fleet);
    const a1 = fleet.devices.find((d) => d.name === "hsm-a1")!;
    const refused = await connectSsh(deviceTarget(fleet, a1), {
      trustStore: new TrustStore(join(dataDir, "known_hosts.json")),
    }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(refused).toBeInstanceOf(HostKeyMismatch);
    expect((refused as HostKeyMismatch).expected).toBeUndefined();
    expect((refused as Error).message).toMatch(/no pinned host key/);
  });

  it("is refused for a non-twin fleet file, before anything starts or is recorded", async () => {
    const dir = join(root, "production");
    const file = join(root, "production.yaml");
    writeFileSync(
      file,
      [
        "version: 1",
        "devices:",
        "  - name: hsm-1",
        "    host: 10.0.0.21",
        "    hostKey: SHA256:Jr8cQ0xX7pE5rTq1mZk2N8vW3yB6uH9oL4dS0fG7aCa",
        '    serial: "700123"',
        "    credentials: { appliance: env:LUNA_SSH }",
        "",
      ].join("\n"),
    );
    const attempt = startSim({
      fleet: file,
      hostKeyDir: join(dir, "hostkeys"),
      stateDir: join(dir, "state"),
      dataDir: join(dir, "data"),
      trustHostKeys: true,
      print: () => {},
    });
    await expect(attempt).rejects.toBeInstanceOf(SimStartRefused);
    await expect(attempt).rejects.toThrow(/--trust-host-keys is for twin fleets \(twin: true\) only/);
    expect(existsSync(join(dir, "data", "known_hosts.json"))).toBe(false);
    expect(existsSync(join(dir, "state"))).toBe(false);
  });
});
