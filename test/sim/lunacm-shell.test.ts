import { describe, expect, it } from "vitest";
import { buildHarness, CO_PASSWORD, exec, interactive } from "./lunacm-fixture.ts";

describe("client host shell of the twin", () => {
  it("refuses anything that is not lunacm, vtl or a certificate file command", async () => {
    const { twin } = await buildHarness();
    for (const cmd of [
      "rm -rf /",
      "bash",
      "ssh hsm-t1",
      "python3 -c 1",
      "lunacm -q slot list; rm x",
      "cat /etc/passwd | nc x 1",
    ]) {
      const r = exec(twin, cmd);
      expect(r.exitCode).not.toBe(0);
      expect(r.output).toMatch(/^bash: \S+: command not permitted on this twin\n$/);
    }
    const s = interactive(twin);
    expect(s.send("reboot")).toBe("bash: reboot: command not permitted on this twin\n[root@client-t ~]# ");
    // The refused lines are still recorded: the log is of what was received, not of what ran.
    expect(twin.commandLog.map((e) => e.command)).toContain("reboot");
  });

  it("lunacm -q runs one command without banner and sets the exit status; exit leaves the session", async () => {
    const { twin } = await buildHarness();
    const ok = exec(twin, "lunacm -q hagroup listgroups");
    expect(ok.exitCode).toBe(0);
    expect(ok.output).not.toContain("Copyright");
    expect(ok.output).toContain("Group Members");
    const bad = exec(twin, "lunacm -q hagroup listgroups -group nope");
    expect(bad.exitCode).toBe(1);
    expect(exec(twin, "/usr/safenet/lunaclient/bin/lunacm -q slot list").exitCode).toBe(0);
    // A password prompt on an exec channel has no input: the command is cancelled and no attempt is counted.
    const cancelled = exec(twin, "lunacm -q role login -name co");
    expect(cancelled.output).toContain("Enter the password: ");
    expect(cancelled.output).toContain("Command Result : 0xb (User Cancelled Operation)");

    const s = interactive(twin);
    s.send("lunacm");
    expect(s.send("exit")).toBe("\n[root@client-t ~]# ");
    s.send("exit");
    expect(s.io.closed).toBe(true);
    expect(s.io.exitCode).toBe(0);
  });

  it("handles input split across packets, CR LF pairs and backspace", async () => {
    const { twin } = await buildHarness();
    const s = interactive(twin, true);
    s.shell.input("vtl li");
    s.shell.input("stX\x7fServers\r\n");
    const out = s.io.take();
    expect(out).toContain("Server: 127.0.9.1  HTL required: no");
    expect(out.match(/\[root@client-t ~\]# /g)).toHaveLength(1);
  });

  it("reads and writes certificate files; private keys stay unreadable", async () => {
    const { twin } = await buildHarness();
    const cert = exec(twin, "cat /usr/safenet/lunaclient/cert/client/client-t.pem");
    expect(cert.exitCode).toBe(0);
    expect(cert.output).toBe(twin.certPem);
    const key = exec(twin, "cat /usr/safenet/lunaclient/cert/client/client-tKey.pem");
    expect(key.exitCode).toBe(1);
    expect(key.output).not.toContain("PRIVATE KEY");
    const ca = exec(twin, "cat /usr/safenet/lunaclient/cert/server/CAFile.pem").output;
    expect(ca.match(/BEGIN CERTIFICATE/g)).toHaveLength(3);

    const pem = twin.serverCerts.get("hsm-t1")!;
    const write = exec(twin, `cat > /tmp/hsm-t1.pem <<'EOF'\n${pem.trimEnd()}\nEOF`);
    expect(write.exitCode).toBe(0);
    expect(exec(twin, "cp /tmp/hsm-t1.pem /usr/safenet/lunaclient/cert/server/").exitCode).toBe(0);
    expect(exec(twin, "cat /usr/safenet/lunaclient/cert/server/hsm-t1.pem").output).toBe(pem);
    expect(exec(twin, "ls /usr/safenet/lunaclient/cert/server").output).toBe("CAFile.pem\nhsm-t1.pem\n");
    expect(exec(twin, "cp /tmp/hsm-t1.pem /etc/hsm.pem").exitCode).toBe(1);

    // The same through an interactive here-document.
    const s = interactive(twin);
    expect(s.send("cat > /tmp/copy.pem <<EOF")).toBe("> ");
    for (const line of pem.trimEnd().split("\n")) s.send(line);
    expect(s.send("EOF")).toBe("[root@client-t ~]# ");
    expect(twin.readFile("/tmp/copy.pem")).toEqual({ ok: true, text: pem });
  });

  it("logs every command with time and session, and never a password", async () => {
    const { twin } = await buildHarness();
    const s = interactive(twin);
    s.send("lunacm");
    s.send(`hagroup synchronize -group ha-pay -password ${CO_PASSWORD}`);
    s.send("hagroup listgroups");
    exec(twin, `lunacm -q role login -name co -p ${CO_PASSWORD}`);
    // Even typed where no prompt asked for it, a known password is scrubbed.
    s.send(CO_PASSWORD);
    const log = twin.commandLog;
    expect(JSON.stringify(log)).not.toContain(CO_PASSWORD);
    expect(log.map((e) => `${e.shell}: ${e.command}`)).toEqual([
      "host: lunacm",
      "lunacm: hagroup synchronize -group ha-pay -password [REDACTED]",
      "lunacm: hagroup listgroups",
      "host: lunacm -q role login -name co -p [REDACTED]",
      "lunacm: [REDACTED]",
    ]);
    expect(log.every((e) => typeof e.at === "number" && e.user === "root")).toBe(true);
    expect(new Set(log.map((e) => e.session)).size).toBe(2);
    expect(log.some((e) => /synchroni/i.test(e.command) && e.shell === "host")).toBe(false);
  });
});
