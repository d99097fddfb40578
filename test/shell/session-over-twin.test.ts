// The driver against the digital twin (ssh2 servers speaking lunash and a client host's shell + lunacm): parsed
// reads, a guarded login with real counters, the TWO-attempts notice, and the twin's drop/garble/slow faults.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parsers } from "../../parsers/index.ts";
import { parseFleet } from "../../src/config/load.ts";
import type { Fleet } from "../../src/config/schema.ts";
import { Secret } from "../../src/config/secret.ts";
import { CommandTimeout, ParseFailed } from "../../src/shell/errors.ts";
import { JobShells } from "../../src/shell/job-shells.ts";
import { issueLoginToken } from "../../src/shell/login-token.ts";
import { sendCommand } from "../../src/shell/reply.ts";
import { startTwin, type Twin } from "../../src/sim/twin.ts";
import { ConnectionLost } from "../../src/transport/errors.ts";
import { SshPool } from "../../src/transport/pool.ts";

const YAML = `
version: 1
twin: true
defaults: { timeouts: { connectMs: 5000, authMs: 5000, commandMs: 5000, keepaliveMs: 15000 } }
devices:
  - name: hsm-t1
    host: 127.0.0.1
    port: 2222
    serial: "700301"
    credentials: { appliance: "Appliance-T1-pw", hsmSo: "HsmSo-T1-secret" }
    partitions: [{ label: par-t, serial: "1700301000001", credentials: { co: "CryptoOff-T1-secret" } }]
  - name: hsm-t2
    host: 127.0.0.2
    port: 2222
    serial: "700302"
    credentials: { appliance: "Appliance-T2-pw", hsmSo: "HsmSo-T2-secret" }
    partitions: [{ label: par-t, serial: "1700302000001", credentials: { co: "CryptoOff-T2-secret" } }]
clientHosts:
  - name: client-t
    host: 127.0.0.3
    port: 2222
    clientName: client-t
    credentials: { ssh: "ClientHost-T-pw" }
    assignments: [{ device: hsm-t1, partitions: [par-t] }, { device: hsm-t2, partitions: [par-t] }]
`;

let twin: Twin;
let fleet: Fleet;
let pool: SshPool;
let sessions: JobShells;

beforeAll(async () => {
  const parsed = parseFleet(YAML);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
  twin = await startTwin(parsed.fleet, { rebase: true });
  fleet = twin.fleet;
  pool = new SshPool();
  sessions = JobShells.forFleet(fleet, pool.lease(), { unknownPromptMs: 1000 });
}, 30_000);

afterAll(async () => {
  await sessions?.close();
  await pool?.closeAll();
  await twin?.stop();
});

describe("shell driver against the twin", () => {
  it("hsm show: parsed through parsers/, one connection and one shell for several commands", async () => {
    const sh = await sessions.lunash("hsm-t1");
    expect(sh.prompt).toBe("[hsm-t1] lunash:>");
    const r = await sendCommand(sh, "hsm show", parsers.hsmShow);
    expect(r.reply.ok && r.reply.value.serial).toBe("700301");
    const r2 = await sendCommand(sh, "partition list", parsers.partitionList);
    expect(r2.reply.ok && r2.reply.value.partitions.map((p) => p.serial)).toEqual(["1700301000001"]);
    expect(await sessions.lunash("hsm-t1")).toBe(sh);
    expect(twin.sessionLog("hsm-t1").filter((s) => s.kind === "shell")).toHaveLength(1);
  });

  it("hsm login with a guard token: a wrong password is a typed device error, the TWO-left notice is surfaced", async () => {
    const sh = await sessions.lunash("hsm-t2");
    const wrong = new Secret("Not-the-SO-password-1", "literal");
    const t1 = issueLoginToken({
      target: "hsm-t2",
      command: "hsm login",
      role: "hsmSo",
      secret: wrong,
      attemptId: "w1",
    });
    const bad = await sendCommand(sh, "hsm login", parsers.hsmLogin, { token: t1 });
    expect(bad.reply.ok).toBe(false);
    if (!bad.reply.ok) expect(bad.reply.error.code).toBe("A00000");
    const right = new Secret("HsmSo-T2-secret", "literal");
    const t2 = issueLoginToken({
      target: "hsm-t2",
      command: "hsm login",
      role: "hsmSo",
      secret: right,
      attemptId: "w2",
    });
    const ok = await sendCommand(sh, "hsm login", parsers.hsmLogin, { token: t2 });
    expect(ok.output.notices).toEqual(["two-attempts-left"]);
    expect(ok.reply).toMatchObject({ ok: true, value: { loggedIn: true, warnedAttemptsLeft: 2 } });
    expect(sh.transcript.toText()).not.toContain("HsmSo-T2-secret");
    expect(sh.transcript.toText()).not.toContain("Not-the-SO-password-1");
    await sh.run("hsm logout");
  });

  it("lunacm through the client host's shell: slot list parsed", async () => {
    const cm = await sessions.lunacm("client-t");
    expect(cm.platform.kind).toBe("lunacm");
    expect(cm.prompt).toBe("lunacm:>");
    const r = await sendCommand(cm, "slot list", parsers.slotList);
    expect(r.reply.ok && r.reply.value.slots.map((x) => x.serialNumber)).toContain("1700302000001");
  });

  it("a lunacm shell that saw a garbled reply is not lent again: the next command runs in a fresh, clean shell", async () => {
    const target = "client-t";
    const cm = await sessions.lunacm(target);
    expect((await sendCommand(cm, "slot list", parsers.slotList)).reply.ok).toBe(true);
    await twin.setFault("client-t", "garble", "slot list");
    const g = await sendCommand(cm, "slot list", parsers.slotList).catch((e) => e);
    expect(g).toBeInstanceOf(ParseFailed);
    expect(g.message).toMatch(/client-t 'slot list'/);
    // Fail closed: the stream may be out of step, so this shell is done and says why.
    expect(cm.usable).toBe(false);
    expect(cm.unusableReason).toMatch(/unreadable reply to 'slot list'/);
    const again = await cm.run("partition showinfo").catch((e) => e);
    expect(again).toBeInstanceOf(ConnectionLost);
    expect(again.message).toMatch(/not usable/);
    await twin.setFault("client-t", "garble", "off");
    const fresh = await sessions.lunacm(target);
    expect(fresh).not.toBe(cm);
    const r = await sendCommand(fresh, "slot list", parsers.slotList);
    expect(r.reply.ok && r.reply.value.slots.map((x) => x.serialNumber)).toContain("1700302000001");
  }, 20_000);

  it("twin faults: garbled output → ParseFailed; dropped mid-command → ConnectionLost; slow past the deadline → CommandTimeout", async () => {
    await twin.setFault("hsm-t1", "garble", "hsm showPolicies");
    let sh = await sessions.lunash("hsm-t1");
    const g = await sendCommand(sh, "hsm showPolicies", parsers.hsmShowPolicies).then(
      (r) => r,
      (e) => e,
    );
    // Garbled output either fails the footer check or the parser; never a value.
    expect(g).toBeInstanceOf(ParseFailed);
    await twin.setFault("hsm-t1", "garble", "off");

    await twin.setFault("hsm-t1", "drop", "package list");
    sh = await sessions.lunash("hsm-t1");
    const d = await sh.run("package list").catch((e) => e);
    expect(d).toBeInstanceOf(ConnectionLost);
    expect(d.message).toMatch(/hsm-t1 'package list': connection lost mid-command/);
    await twin.setFault("hsm-t1", "drop", "off");

    await twin.setFault("hsm-t1", "slow", "1500");
    sh = await sessions.lunash("hsm-t1");
    const s = await sh.run("user list", { timeoutMs: 500 }).catch((e) => e);
    expect(s).toBeInstanceOf(CommandTimeout);
    await twin.setFault("hsm-t1", "slow", "off");
    sh = await sessions.lunash("hsm-t1");
    expect((await sendCommand(sh, "user list", parsers.userList)).reply.ok).toBe(true);
  }, 30_000);
});
