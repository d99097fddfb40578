// ntls-cert-sync repair interrupted at each of its commands, over the real twin (demo fleet rebased, real Redis):
// a dropped connection or garbled output on one command of the repair stops the job with RepairInterrupted naming
// device, client and command, the recorded state and the state now; the pair is then as before, fully repaired, or
// half-repaired as the error says; and the same job resumed (same job id, same checkpoint store, fault cleared)
// finishes the repair with exactly the partitions the client had and a working TLS handshake as the client.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getRunbook } from "../../runbooks/index.ts";
import type { RepairSnapshot } from "../../runbooks/lib/ntls-repair.ts";
import { RedisCheckpointStore } from "../../src/engine/checkpoints.ts";
import type { DeviceShell, ShellPort } from "../../src/engine/ports.ts";
import { runJob } from "../../src/engine/runner.ts";
import { probeTls } from "../../src/net/probe.ts";
import { generateSelfSignedCert } from "../../src/sim/certs.ts";
import { startTwin, type Twin } from "../../src/sim/twin.ts";
import { demoFleet, JobEvidence } from "../helpers/engine.ts";
import { type FleetShells, fleetShells } from "../helpers/fleet-shells.ts";
import { withRedis } from "../helpers/redis.ts";

const redis = await withRedis();
const DEVICE = "hsm-a1";
const HOST = "client-a";
/** client-a holds two partitions on hsm-a1 here, so a half-done assignment is visible. */
const PARTITIONS = ["par-pay", "par-extra"];

let twin: Twin;
let ssh: FleetShells;
let otherClientCert: string;
let seq = 0;

beforeAll(async () => {
  const fleet = demoFleet();
  const a1 = fleet.devices.find((d) => d.name === DEVICE)!;
  const pay = a1.partitions.find((p) => p.label === "par-pay")!;
  a1.partitions.push({ ...structuredClone(pay), label: "par-extra", serial: "1700101000002" });
  fleet.clientHosts.find((h) => h.name === HOST)!.assignments.find((a) => a.device === DEVICE)!.partitions = [
    ...PARTITIONS,
  ];
  twin = await startTwin(fleet, { rebase: true });
  ssh = fleetShells(twin.fleet);
  otherClientCert = (await generateSelfSignedCert({ commonName: HOST, validDays: 365 })).certPem;
});

afterAll(async () => {
  await ssh?.close();
  await twin?.stop();
  await redis.stop();
});

const appliance = () => twin.appliances.get(DEVICE)!.state;
const client = () => twin.clientHosts.get(HOST)!.host;
const samePem = (a: string | undefined, b: string | undefined) =>
  a !== undefined && b !== undefined && a.replace(/\s/g, "") === b.replace(/\s/g, "");

interface Before {
  serverName: string;
  stalePem: string;
  regCertPem: string;
  hostname: string;
  partitions: string[];
}

/**
 * Break both halves of the pair: hsm-a1 gets a new server certificate (client-a still trusts the old one) and holds
 * a different certificate for client-a (whose registration keeps both partitions). Earlier cases' leftovers are reset.
 */
async function breakPair(): Promise<Before> {
  for (const target of [DEVICE, HOST])
    for (const fault of ["drop", "garble"] as const) await twin.setFault(target, fault, "off");
  const host = client();
  const serverName = twin.fleet.devices.find((d) => d.name === DEVICE)!.host!;
  const stalePem = appliance().ntls.certPem;
  // Trusting the appliance's current certificate under its address (a half-done earlier case is put back first).
  if (!listedServers().includes(serverName)) {
    const staged = "/tmp/test-server.pem";
    expect(host.writeFile(staged, stalePem).ok).toBe(true);
    expect(onClientHost(`vtl addServer -n ${serverName} -c ${staged}`)).toContain("successfully added");
  }
  host.serverCerts.set(DEVICE, stalePem);
  await twin.setFault(DEVICE, "regen-cert");
  const reg = appliance().clients.get(HOST);
  const hostname = reg?.hostname ?? twin.fleet.clientHosts.find((h) => h.name === HOST)!.host!;
  appliance().clients.set(HOST, {
    name: HOST,
    hostname,
    certPem: otherClientCert,
    partitions: [...PARTITIONS],
  });
  return { serverName, stalePem, regCertPem: otherClientCert, hostname, partitions: [...PARTITIONS] };
}

type SideState = "as-before" | "repaired" | "half-repaired" | "other";

/** Run a command on the twin client host in-process (test set-up and state checks: no carrier fault applies). */
function onClientHost(command: string): string {
  const out: string[] = [];
  const io = { write: (t: string) => out.push(t), close: () => {}, destroy: () => {} };
  client().exec(command, io, { user: "root", session: 0 });
  return out.join("");
}

/** What `vtl listServers` on the twin client host says now. */
function listedServers(): string[] {
  return [...onClientHost("vtl listServers").matchAll(/^Server: (\S+)/gm)].map((m) => m[1]!);
}

function clientSide(before: Before): SideState {
  const host = client();
  const pem = host.serverCerts.get(DEVICE);
  const listed = listedServers().includes(before.serverName);
  if (pem === undefined && !listed) return "half-repaired";
  if (pem === undefined || !listed) return "other";
  if (samePem(pem, appliance().ntls.certPem)) return "repaired";
  if (samePem(pem, before.stalePem)) return "as-before";
  return "other";
}

function applianceSide(before: Before): SideState {
  const reg = appliance().clients.get(HOST);
  if (!reg) return "half-repaired";
  if (samePem(reg.certPem, client().certPem))
    return JSON.stringify(reg.partitions) === JSON.stringify(before.partitions) &&
      reg.hostname === before.hostname
      ? "repaired"
      : "half-repaired";
  if (
    samePem(reg.certPem, before.regCertPem) &&
    JSON.stringify(reg.partitions) === JSON.stringify(before.partitions)
  )
    return "as-before";
  return "other";
}

/** The job's shells, but after the first command starting with `after` a twin fault is set (a fault on a read). */
function arming(trigger: { after: string; target: string; fault: "drop" | "garble"; command: string }) {
  let armed = false;
  const wrap = (shell: DeviceShell): DeviceShell => ({
    target: shell.target,
    platform: shell.platform,
    abandon: (reason) => shell.abandon(reason),
    get usable() {
      return shell.usable;
    },
    async run(command, opts) {
      const reply = await shell.run(command, opts);
      if (!armed && command.startsWith(trigger.after)) {
        armed = true;
        await twin.setFault(trigger.target, trigger.fault, trigger.command);
      }
      return reply;
    },
  });
  const wrapped: ShellPort = {
    lunash: async (d) => wrap(await ssh.shells.lunash(d)),
    lunacm: async (h) => wrap(await ssh.shells.lunacm(h)),
    hostShell: async (h) => wrap(await ssh.shells.hostShell(h)),
  };
  return wrapped;
}

async function run(jobId: string, shells: ShellPort = ssh.shells) {
  return runJob({
    runbook: getRunbook("ntls-cert-sync"),
    params: { target: DEVICE, repair: true },
    jobId,
    fleet: twin.fleet,
    shells,
    files: ssh.files,
    evidence: new JobEvidence(redis, jobId),
    checkpoints: new RedisCheckpointStore(redis.client()),
  });
}

async function handshakeAsClient() {
  const a = twin.appliances.get(DEVICE)!;
  const c = client();
  return probeTls(a.address, a.ntlsPort, { timeoutMs: 3000, clientCert: c.certPem, clientKey: c.keyPem });
}

interface Case {
  name: string;
  side: "client" | "appliance";
  fault: "drop" | "garble";
  /** The command the fault is on (a prefix, as the twin matches it). */
  command: string;
  /** Set the fault only after this command was answered (the fault is on a re-read inside the repair). */
  after?: string;
  /** The state of the repaired half after the fault (the other half is then untouched or already repaired). */
  expect: SideState;
}

const CASES: Case[] = [
  {
    name: "drop on 'vtl deleteServer'",
    side: "client",
    fault: "drop",
    command: "vtl deleteServer",
    expect: "half-repaired",
  },
  {
    name: "garble on 'vtl deleteServer'",
    side: "client",
    fault: "garble",
    command: "vtl deleteServer",
    expect: "half-repaired",
  },
  {
    name: "drop on 'vtl addServer'",
    side: "client",
    fault: "drop",
    command: "vtl addServer",
    expect: "repaired",
  },
  {
    name: "garble on 'vtl addServer'",
    side: "client",
    fault: "garble",
    command: "vtl addServer",
    expect: "repaired",
  },
  {
    name: "drop on 'vtl listServers' (the re-read after 'vtl addServer')",
    side: "client",
    fault: "drop",
    command: "vtl listServers",
    after: "vtl addServer",
    expect: "repaired",
  },
  {
    name: "drop on 'client delete'",
    side: "appliance",
    fault: "drop",
    command: "client delete",
    expect: "half-repaired",
  },
  {
    name: "garble on 'client delete'",
    side: "appliance",
    fault: "garble",
    command: "client delete",
    expect: "as-before",
  },
  {
    name: "drop on 'client register'",
    side: "appliance",
    fault: "drop",
    command: "client register",
    expect: "half-repaired",
  },
  {
    name: "garble on 'client register'",
    side: "appliance",
    fault: "garble",
    command: "client register",
    expect: "half-repaired",
  },
  {
    name: "drop on 'client assignPartition'",
    side: "appliance",
    fault: "drop",
    command: "client assignPartition",
    expect: "half-repaired",
  },
  {
    name: "garble on 'client assignPartition'",
    side: "appliance",
    fault: "garble",
    command: "client assignPartition",
    expect: "half-repaired",
  },
  {
    name: "drop on 'client show' (the re-read after 'client register')",
    side: "appliance",
    fault: "drop",
    command: "client show",
    after: "client register",
    expect: "half-repaired",
  },
];

describe("ntls-cert-sync repair interrupted at each command, then resumed", () => {
  it.each(CASES)("$name: that half is $expect as the error says, and resuming finishes it", async (c) => {
    const before = await breakPair();
    const jobId = `ntls-fault-${process.pid}-${++seq}`;
    const target = c.side === "client" ? HOST : DEVICE;
    const sessions = c.after
      ? arming({ after: c.after, target, fault: c.fault, command: c.command })
      : ssh.shells;
    if (!c.after) await twin.setFault(target, c.fault, c.command);
    let failed: Awaited<ReturnType<typeof run>>;
    try {
      failed = await run(jobId, sessions);
    } finally {
      await twin.setFault(target, c.fault, "off");
    }

    // The job stopped with a clear error: device, client, the command, the recorded state and the state now.
    expect(failed.status).toBe("failed");
    const error = failed.error!;
    expect(error.type).toBe("RepairInterrupted");
    expect(error.device).toBe(DEVICE);
    expect(error.host).toBe(HOST);
    expect(error.command!.startsWith(c.command)).toBe(true);
    expect(error.message).toContain(
      `${DEVICE} / ${HOST}: the ${c.side}-side repair was interrupted at '${c.command}`,
    );
    expect(error.message).toContain("Before the repair (checkpointed):");
    expect(error.message).toContain(
      c.after ? "the re-read that checks them failed" : `'${error.command}' may or may not have taken effect`,
    );
    expect(error.message).toContain(`Resuming job ${jobId}`);
    if (c.side === "appliance")
      expect(error.message).toContain(
        `${DEVICE} had '${HOST}' registered (hostname ${before.hostname}, certificate`,
      );
    if (c.side === "appliance") expect(error.message).toContain("partitions [par-pay, par-extra])");
    else expect(error.message).toContain(`${HOST} listed ${DEVICE} as '${before.serverName}'`);

    // The state before the first change was checkpointed before the change step ran.
    const snapshot = failed.steps.find((s) => s.id === "repair-snapshot")!;
    expect(snapshot.status).toBe("done");
    const snap = (snapshot.result as unknown as RepairSnapshot).pairs.find(
      (p) => p.device === DEVICE && p.host === HOST,
    )!;
    expect(snap.appliance!.partitions).toEqual(PARTITIONS);
    expect(snap.appliance!.registered).toBe(true);
    expect(snap.client!.serverName).toBe(before.serverName);

    // The pair now: the interrupted half is as expected, and the error says so (unless its re-read failed too).
    const side = c.side === "client" ? clientSide(before) : applianceSide(before);
    expect(side).toBe(c.expect);
    const claim = /Now: (as before the repair|repaired|half-repaired|unknown)/.exec(error.message)?.[1];
    expect(claim).toBeDefined();
    if (claim !== "unknown") expect(claim === "as before the repair" ? "as-before" : claim).toBe(side);
    // Never worse than half of one side: a client-side interruption leaves the appliance untouched, an
    // appliance-side one comes after the client side was repaired.
    if (c.side === "client") expect(applianceSide(before)).toBe("as-before");
    else expect(clientSide(before)).toBe("repaired");

    // Resume: the same job id and checkpoints, the fault cleared. It re-reads and finishes from the snapshot.
    const resumed = await run(jobId);
    expect(resumed.error).toBeUndefined();
    expect(resumed.status).toBe("succeeded");
    expect(resumed.steps.find((s) => s.id === "repair-snapshot")!.status).toBe("resumed");
    expect(clientSide(before)).toBe("repaired");
    expect(applianceSide(before)).toBe("repaired");
    expect(appliance().clients.get(HOST)!.partitions).toEqual(PARTITIONS);
    expect((await handshakeAsClient()).handshakeOk).toBe(true);
    const verified = (
      resumed.steps.find((s) => s.id === "verify")!.result as {
        verified: {
          device: string;
          host: string;
          handshakeOk: boolean;
          vtlVerify: { seesPartitions: boolean };
        }[];
      }
    ).verified;
    expect(verified.find((v) => v.device === DEVICE && v.host === HOST)).toMatchObject({
      handshakeOk: true,
      vtlVerify: { seesPartitions: true },
    });
  });
});
