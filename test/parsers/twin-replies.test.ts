// Every command lunafleet sends, sent to the twin over real SSH through the one reply path (the shell driver frames
// the reply, the command's own parser reads it), and the value compared with the twin's state. The twin renders its
// output without the parsers (and they without it), so an agreement here means both read the format reference the
// same way. The last test checks the coverage: every parser met a twin reply, and `hagroup synchronize` both footers.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CommandParser, PARSERS, parsers } from "../../parsers/index.ts";
import { deviceSecret, getDevice, getPartition, partitionSecret } from "../../src/config/model.ts";
import type { Fleet } from "../../src/config/schema.ts";
import { Secret } from "../../src/config/secret.ts";
import { issueLoginToken, type LoginToken } from "../../src/shell/login-token.ts";
import { type Reply, sendCommand } from "../../src/shell/reply.ts";
import type { RunOptions } from "../../src/shell/session.ts";
import { md5ColonFingerprint } from "../../src/sim/certs.ts";
import { startTwin, type Twin } from "../../src/sim/twin.ts";
import { demoFleet } from "../helpers/engine.ts";
import { type FleetShells, fleetShells } from "../helpers/fleet-shells.ts";

let twin: Twin;
let fleet: Fleet;
let ssh: FleetShells;
/** parser slug, or `<slug>:device-error`, for every reply read. */
const covered = new Set<string>();

beforeAll(async () => {
  twin = await startTwin(demoFleet(), { rebase: true });
  fleet = twin.fleet;
  ssh = fleetShells(fleet);
}, 60_000);

afterAll(async () => {
  await ssh?.close();
  await twin?.stop();
});

type Where = { lunash: string } | { lunacm: string } | { host: string };

async function send<T>(
  where: Where,
  command: string,
  parser: CommandParser<T>,
  opts: RunOptions = {},
): Promise<Reply<T>> {
  const session =
    "lunash" in where
      ? await ssh.shells.lunash(where.lunash)
      : "lunacm" in where
        ? await ssh.shells.lunacm(where.lunacm)
        : await ssh.shells.hostShell(where.host);
  const { reply } = await sendCommand(session, command, parser, opts);
  covered.add(reply.ok ? parser.slug : `${parser.slug}:device-error`);
  return reply;
}

async function value<T>(
  where: Where,
  command: string,
  parser: CommandParser<T>,
  opts: RunOptions = {},
): Promise<T> {
  const reply = await send(where, command, parser, opts);
  if (!reply.ok) throw reply.error;
  return reply.value;
}

const appliance = (name: string) => twin.appliances.get(name)!.state;
const clientHost = (name: string) => twin.clientHosts.get(name)!.host;

let attempts = 0;
/** What the login guard issues (this test stands in for it): one use, this target and command. */
function soToken(device: string, secret?: Secret): LoginToken {
  return issueLoginToken({
    target: device,
    command: "hsm login",
    role: "hsmSo",
    secret: secret ?? deviceSecret(fleet, getDevice(fleet, device), "hsmSo")!,
    attemptId: `replies-${++attempts}`,
  });
}
function coToken(host: string, device: string, partition: string): LoginToken {
  const dev = getDevice(fleet, device);
  return issueLoginToken({
    target: host,
    command: "role login",
    role: "co",
    secret: partitionSecret(fleet, dev, getPartition(dev, partition), "co")!,
    attemptId: `replies-${++attempts}`,
  });
}

/** `slot set` to the slot of a member partition (by serial), as the runbooks do. */
async function selectPartition(host: string, device: string, partition: string): Promise<number> {
  const serial = getPartition(getDevice(fleet, device), partition).serial;
  const { slots } = await value({ lunacm: host }, "slot list", parsers.slotList);
  const slot = slots.find((x) => x.serialNumber === serial && !x.haVirtual);
  if (!slot) throw new Error(`${host}: no slot for ${device}/${partition}`);
  const set = await value({ lunacm: host }, `slot set -slot ${slot.slotId}`, parsers.slotSet);
  expect(set.slotId).toBe(slot.slotId);
  return slot.slotId;
}

describe("the twin's lunash replies, read by their parsers", () => {
  const a1 = { lunash: "hsm-a1" } as const;

  it("reads: hsm show, hsm showPolicies, partition list/show, package list, user list, ntls show, syslog tail", async () => {
    const s = appliance("hsm-a1");
    const show = await value(a1, "hsm show", parsers.hsmShow);
    expect(show).toMatchObject({ serial: s.serial, firmware: s.firmware, zeroized: false });
    expect(show.adminLoginAttemptsLeft).toBe(3 - s.soFailures);
    const policies = await value(a1, "hsm showP", parsers.hsmShowPolicies);
    expect(policies.policies.find((p) => p.code === 15)?.numericValue).toBe(s.policies.get(15));
    const list = await value(a1, "par list", parsers.partitionList);
    expect(list.partitions.map((p) => p.serial)).toEqual(s.partitions.map((p) => p.serial));
    const par = await value(a1, "partition show -partition par-pay", parsers.partitionShow);
    expect(par).toMatchObject({ serial: s.partitions[0]!.serial, name: "par-pay" });
    const pkgs = await value(a1, "package list", parsers.packageList);
    expect(pkgs.packages).toEqual([...s.packages.system, ...s.packages.software]);
    const users = await value(a1, "user list", parsers.userList);
    expect(users.users.map((u) => u.name)).toEqual(s.users.map((u) => u.name));
    const ntls = await value(a1, "ntls show", parsers.ntlsShow);
    expect(ntls.port).toBe(s.ntls.port);
    const tail = await value(
      a1,
      "syslog tail -logname messages -entries 200 -search NTLS",
      parsers.syslogTail,
    );
    expect(Array.isArray(tail.lines)).toBe(true);
  });

  it("client list, client show, client fingerprint; an unknown client is the device's C000040A", async () => {
    const s = appliance("hsm-a1");
    const clients = await value(a1, "client list", parsers.clientList);
    expect(clients.clients).toEqual([...s.clients.keys()]);
    const shown = await value(a1, "client show -client client-a", parsers.clientShow);
    expect(shown).toMatchObject({ clientId: "client-a", partitions: s.clients.get("client-a")!.partitions });
    const fp = await value(a1, "client fingerprint -client client-a", parsers.clientFingerprint);
    expect(fp.fingerprint).toBe(md5ColonFingerprint(s.clients.get("client-a")!.certPem));
    const none = await send(a1, "client show -client nobody", parsers.clientShow);
    expect(none.ok).toBe(false);
    if (!none.ok) expect(none.error.code).toBe("C000040A");
  });
});

describe("the twin's lunash change replies, read by their parsers (on the spare hsm-c1)", () => {
  const c1 = { lunash: "hsm-c1" } as const;

  it("hsm login: a wrong password is the device's A00000, the right one logs in after the TWO-left caution", async () => {
    const wrong = await send(c1, "hsm login", parsers.hsmLogin, {
      token: soToken("hsm-c1", new Secret("Not-the-SO-password-9", "literal")),
    });
    expect(wrong.ok).toBe(false);
    if (!wrong.ok) expect(wrong.error.code).toBe("A00000");
    expect(appliance("hsm-c1").soFailures).toBe(1);
    const right = await value(c1, "hsm login", parsers.hsmLogin, { token: soToken("hsm-c1") });
    expect(right).toEqual({ loggedIn: true, warnedAttemptsLeft: 2, proceedConfirmed: false });
    expect(appliance("hsm-c1").soFailures).toBe(0);
  });

  it("client register, assignPartition, delete (answering proceed); sysconf regenCert (answering proceed)", async () => {
    const s = appliance("hsm-c1");
    const pem = s.ntls.certPem; // any certificate will do for a client registration
    await ssh.files.writeApplianceFile(getDevice(fleet, "hsm-c1"), "replies.pem", pem);
    expect(
      await value(c1, "client register -client replies -hostname replies", parsers.clientRegister),
    ).toEqual({
      done: true,
    });
    expect(s.clients.get("replies")?.hostname).toBe("replies");
    expect(
      await value(
        c1,
        "client assignPartition -client replies -partition par-spare",
        parsers.clientAssignPartition,
      ),
    ).toEqual({ done: true });
    expect(s.clients.get("replies")?.partitions).toEqual(["par-spare"]);
    const unknown = await send(
      c1,
      "client assign -client nobody -partition par-spare",
      parsers.clientAssignPartition,
    );
    expect(unknown.ok || unknown.error.code).toBe("C000040A");
    expect(
      await value(c1, "client delete -client replies", parsers.clientDelete, { confirm: "proceed" }),
    ).toEqual({
      done: true,
    });
    expect(s.clients.has("replies")).toBe(false);

    const generation = s.ntls.certGeneration;
    const regen = await value(c1, "sysconf regenCert", parsers.sysconfRegenCert, { confirm: "proceed" });
    expect(regen).toEqual({ regenerated: true, ntlsRestartNeeded: true });
    expect(s.ntls.certGeneration).toBe(generation + 1);
  });
});

describe("the twin's lunacm replies, read by their parsers", () => {
  const b = { lunacm: "client-b" } as const;

  it("slot list, slot set, partition showinfo, role show", async () => {
    const p = appliance("hsm-b1").partitions.find((x) => x.label === "par-tok")!;
    await selectPartition("client-b", "hsm-b1", "par-tok");
    const info = await value(b, "par si", parsers.partitionShowinfo);
    expect(info).toMatchObject({ serial: p.serial, coLoginAttemptsLeft: p.policy20 - p.failures.co });
    expect(JSON.stringify(info)).not.toMatch(/cloning|domain/i);
    const role = await value(b, "role show -name co", parsers.roleShow);
    expect(role.loginAttemptsLeft).toBe(p.policy20 - p.failures.co);
    const bad = await send(b, "slot set -slot 97", parsers.slotSet);
    expect(bad.ok).toBe(false);
  });

  it("role login (the guard's token), role logout; a logout with nobody logged in is the device's error", async () => {
    await selectPartition("client-b", "hsm-b1", "par-tok");
    expect(
      await value(b, "role login -name co", parsers.roleLogin, {
        token: coToken("client-b", "hsm-b1", "par-tok"),
      }),
    ).toEqual({
      loggedIn: true,
    });
    expect(appliance("hsm-b1").partitions[0]!.loggedIn).toBe("co");
    expect(await value(b, "role logout", parsers.roleLogout)).toEqual({ done: true });
    const again = await send(b, "role logout", parsers.roleLogout);
    expect(again.ok).toBe(false);
  });

  it("hagroup listgroups, recover (both outcomes), retry and interval (show and set)", async () => {
    const host = clientHost("client-b");
    const groups = await value(b, "hagroup listgroups", parsers.hagroupListgroups);
    expect(groups.groups.map((g) => g.label)).toEqual(host.haGroups.map((g) => g.label));
    host.setMemberDown("hsm-b2", "par-tok", true);
    expect(await value(b, "hagroup recover -group ha-tokens", parsers.hagroupRecover)).toEqual({
      done: true,
    });
    expect(host.haGroups[0]!.members.every((m) => !m.down)).toBe(true);
    host.setMemberDown("hsm-b2", "par-tok", true);
    host.setMemberRecoverFails("hsm-b2", "par-tok", true);
    const failed = await send(b, "hagroup recover -group ha-tokens", parsers.hagroupRecover);
    expect(failed.ok).toBe(false);
    if (!failed.ok)
      expect(failed.error.warnings).toEqual([
        expect.stringMatching(/^Warning: member \d+ of group ha-tokens could not be recovered/),
      ]);
    host.setMemberRecoverFails("hsm-b2", "par-tok", false);
    host.setMemberDown("hsm-b2", "par-tok", false);

    expect(await value(b, "hagroup retry -show", parsers.hagroupRetry)).toMatchObject({
      count: host.haSettings.retryCount,
    });
    expect(await value(b, "hagroup retry -count 3", parsers.hagroupRetry)).toEqual({
      count: null,
      autoRecovery: null,
    });
    expect(host.haSettings.retryCount).toBe(3);
    expect(await value(b, "hagroup interval -show", parsers.hagroupInterval)).toEqual({
      intervalSeconds: host.haSettings.intervalSeconds,
    });
    expect(await value(b, "hagroup interval -interval 120", parsers.hagroupInterval)).toEqual({
      intervalSeconds: null,
    });
    expect(host.haSettings.intervalSeconds).toBe(120);
  });

  /** CO logins on each member's slot (as the guard makes them), `hagroup synchronize`, logouts. */
  async function synchronize(host: string, group: string, members: [string, string][]) {
    const slots: number[] = [];
    for (const [device, partition] of members) {
      slots.push(await selectPartition(host, device, partition));
      await value({ lunacm: host }, "role login -name co", parsers.roleLogin, {
        token: coToken(host, device, partition),
      });
    }
    const reply = await send(
      { lunacm: host },
      `hagroup synchronize -group ${group}`,
      parsers.hagroupSynchronize,
    );
    for (const slot of slots) {
      await value({ lunacm: host }, `slot set -slot ${slot}`, parsers.slotSet);
      await value({ lunacm: host }, "role logout", parsers.roleLogout);
    }
    return { reply, slots };
  }

  it("hagroup synchronize with a success footer (ha-tokens, one domain)", async () => {
    const tok = (d: string) => appliance(d).partitions.find((p) => p.label === "par-tok")!;
    tok("hsm-b1").objects = 6;
    const { reply } = await synchronize("client-b", "ha-tokens", [
      ["hsm-b1", "par-tok"],
      ["hsm-b2", "par-tok"],
      ["hsm-b3", "par-tok"],
    ]);
    expect(reply).toEqual({ ok: true, value: { cloningConflicts: [], warnings: [], messages: [] } });
    expect(["hsm-b1", "hsm-b2", "hsm-b3"].map((d) => tok(d).objects)).toEqual([6, 6, 6]);
  });

  it("hagroup synchronize with an error footer: lunacm's cloning warning kept on the device's error (ha-payments, hsm-a3 foreign)", async () => {
    // client-a's stale copy of hsm-a1's certificate keeps hsm-a1 out: the live members are hsm-a2 and hsm-a3.
    const { reply, slots } = await synchronize("client-a", "ha-payments", [
      ["hsm-a2", "par-pay"],
      ["hsm-a3", "par-pay"],
    ]);
    expect(reply.ok).toBe(false);
    if (!reply.ok) {
      expect(reply.error.code).toBe("0x30");
      expect(reply.error.warnings).toEqual([
        `Warning: Synchronize may fail.  The members in slot ${slots[0]} and slot ${slots[1]} have conflicting settings for private key cloning.`,
      ]);
    }
  });
});

describe("the twin's client tools (vtl) on a client host's shell, read by their parsers", () => {
  const a = { host: "client-a" } as const;

  it("vtl listServers, vtl verify (hsm-a1's stale certificate named as unreachable), deleteServer and addServer", async () => {
    const host = clientHost("client-a");
    const a2 = getDevice(fleet, "hsm-a2");
    const listed = await value(a, "vtl listServers", parsers.vtlListServers);
    expect(listed.servers.map((x) => x.host)).toContain(a2.host);
    const verify = await value(a, "vtl verify", parsers.vtlVerify);
    expect(verify.unreachable.map((u) => u.server)).toEqual([getDevice(fleet, "hsm-a1").host]);
    expect(verify.slots.map((x) => x.serial)).toContain(getPartition(a2, "par-pay").serial);

    const pem = host.serverCerts.get("hsm-a2")!;
    expect(await value(a, `vtl deleteServer -n ${a2.host}`, parsers.vtlDeleteServer)).toEqual({
      server: a2.host,
    });
    expect(host.serverCerts.has("hsm-a2")).toBe(false);
    await ssh.files.writeHostFile(fleet.clientHosts[0]!, "/tmp/replies-a2.pem", pem);
    expect(
      await value(a, `vtl addServer -n ${a2.host} -c /tmp/replies-a2.pem`, parsers.vtlAddServer),
    ).toEqual({
      server: a2.host,
    });
    expect(host.serverCerts.get("hsm-a2")).toBe(pem);
    const twice = await send(a, `vtl addServer -n ${a2.host} -c /tmp/replies-a2.pem`, parsers.vtlAddServer);
    expect(twice.ok).toBe(false);
    const unknown = await send(a, "vtl deleteServer -n 192.0.2.99", parsers.vtlDeleteServer);
    expect(unknown.ok).toBe(false);
  });
});

describe("coverage", () => {
  it("every parser met a twin reply, and hagroup synchronize both footers", () => {
    const met = new Set([...covered].map((c) => c.replace(/:device-error$/, "")));
    expect(PARSERS.map((p) => p.slug).filter((slug) => !met.has(slug))).toEqual([]);
    expect(covered.has("hagroup-synchronize")).toBe(true);
    expect(covered.has("hagroup-synchronize:device-error")).toBe(true);
  });
});
