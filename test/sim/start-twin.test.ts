// The twin launcher over the real network: the demo fleet rebased onto a random loopback block, driven with the ssh2
// Client (interactive lunash shells, sftp) and node's tls (NTLS on the appliance's port).
import { X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { Client, type ClientChannel } from "ssh2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadFleet } from "../../src/config/index.ts";
import { generateSelfSignedCert } from "../../src/sim/certs.ts";
import { postFault, readSimState, startControlServer, writeSimState } from "../../src/sim/control.ts";
import { startTwin, type Twin } from "../../src/sim/twin.ts";

let twin: Twin;

beforeAll(async () => {
  twin = await startTwin(loadFleet("config/demo.yaml"), { rebase: true });
});

afterAll(async () => {
  await twin?.stop();
});

interface Login {
  client: Client;
  hostFingerprint: string;
}

function login(name: string, password?: string): Promise<Login> {
  const cred = twin.credentials(name);
  return new Promise((resolve, reject) => {
    const client = new Client();
    let hostFingerprint = "";
    client
      .on("ready", () => resolve({ client, hostFingerprint }))
      .on("error", reject)
      .connect({
        host: cred.address,
        port: cred.port,
        username: cred.user,
        password: password ?? cred.password?.reveal(),
        readyTimeout: 3000,
        hostHash: "sha256",
        hostVerifier: (hex: string) => {
          hostFingerprint = `SHA256:${Buffer.from(hex, "hex").toString("base64").replace(/=+$/, "")}`;
          return true;
        },
      });
  });
}

/** An interactive shell: everything the appliance wrote, and a way to wait for a pattern at the end of it. */
class Shell {
  out = "";
  closed = false;
  constructor(readonly stream: ClientChannel) {
    stream.on("data", (d: Buffer) => {
      this.out += d.toString("utf8");
    });
    stream.on("close", () => {
      this.closed = true;
    });
  }

  static async open(client: Client): Promise<Shell> {
    const stream = await new Promise<ClientChannel>((res, rej) =>
      client.shell({ term: "vt100", cols: 200 }, (e, s) => (e ? rej(e) : res(s))),
    );
    return new Shell(stream);
  }

  /** Wait until the output since `from` matches; returns that part. */
  async until(re: RegExp, from = 0, ms = 4000): Promise<string> {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      const part = this.out.slice(from);
      if (re.test(part)) return part;
      if (this.closed) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error(`timed out waiting for ${re} in:\n${this.out.slice(from)}`);
  }

  /** Send one line and wait for the answer ending in `re` (default: the lunash prompt). */
  async send(line: string, re = /lunash:>$/): Promise<string> {
    const from = this.out.length;
    this.stream.write(`${line}\r`);
    return this.until(re, from);
  }
}

describe("startTwin (rebase)", () => {
  it("moves every machine to one fresh loopback block and fills the fleet copy with the real endpoints", () => {
    const addresses = twin.fleet.devices.map((d) => d.host);
    expect(new Set(addresses).size).toBe(addresses.length);
    for (const a of addresses) expect(a).toMatch(/^127\.(1\d\d|2[0-4]\d|250)\.\d+\.\d+$/);
    expect(addresses).not.toContain("127.0.1.1");
    const dev = twin.fleet.devices.find((d) => d.name === "hsm-a1");
    const a = twin.appliances.get("hsm-a1");
    expect(dev?.hostKey).toBe(a?.hostKeyFingerprint);
    expect(dev?.port).toBe(a?.sshPort);
    expect(twin.clientHosts.size).toBe(2);
    expect(twin.fleet.clientHosts.find((c) => c.name === "client-a")?.hostKey).toMatch(/^SHA256:/);
  });

  it("presents the host key whose fingerprint the twin reports", async () => {
    const { client, hostFingerprint } = await login("hsm-a2");
    const shell = await Shell.open(client);
    await shell.until(/lunash:>$/);
    client.end();
    expect(hostFingerprint).toBe(twin.appliances.get("hsm-a2")?.hostKeyFingerprint);
    // The session is in the appliance's own session log, and closes when the client leaves.
    const log = twin.appliances.get("hsm-a2")?.state.sessionLog ?? [];
    expect(log.at(-1)?.user).toBe("admin");
    for (let i = 0; i < 100 && log.at(-1)?.closedAt === undefined; i++)
      await new Promise((r) => setTimeout(r, 10));
    expect(log.at(-1)?.closedAt).toBeGreaterThanOrEqual(log.at(-1)?.openedAt ?? Number.POSITIVE_INFINITY);
    expect(twin.sessionLog("hsm-a2")).toContain(log.at(-1));
    const ch = await login("client-a");
    ch.client.end();
    expect(ch.hostFingerprint).toBe(twin.clientHosts.get("client-a")?.hostKeyFingerprint);
  });

  it("refuses a wrong appliance password", async () => {
    await expect(login("hsm-a2", "not-the-password")).rejects.toThrow(/authentication methods failed/);
  });

  it("zeroizes after three wrong HSM SO passwords; the last attempt needs 'proceed'", async () => {
    const { client } = await login("hsm-a3");
    const sh = await Shell.open(client);
    await sh.until(/\[hsm-a3\] lunash:>$/);
    expect(await sh.send("hsm show")).toMatch(/HSM Admin login attempts left\s*:\s*3/);

    // First wrong password: plain prompt, PIN incorrect.
    await sh.send("hsm login", /> $/);
    expect(await sh.send("wrong-one")).toContain("A00000 : LUNA_RET_UM_PIN_INCORRECT");

    // Second: the TWO-attempts caution, then the prompt.
    const second = await sh.send("hsm login", /> $/);
    expect(second).toContain("TWO HSM Admin logins attempts left");
    expect(await sh.send("wrong-two")).toContain("LUNA_RET_UM_PIN_INCORRECT");

    // Third: the LAST warning asks for 'proceed'; 'quit' aborts without spending the attempt.
    const last = await sh.send("hsm login", /> $/);
    expect(last).toContain("This is your LAST available HSM Admin login attempt");
    await sh.send("quit");
    expect(twin.appliances.get("hsm-a3")?.state.zeroized).toBe(false);

    await sh.send("hsm login", /> $/);
    await sh.send("proceed", /> $/);
    const third = await sh.send("wrong-three");
    expect(third).toContain("30000F : LUNA_RET_SO_LOGIN_FAILURE_THRESHOLD");
    expect(await sh.send("hsm show")).toMatch(/HSM IS ZEROIZED !!!!/);
    expect(twin.appliances.get("hsm-a3")?.state.zeroized).toBe(true);
    // The passwords never reach the command log.
    expect(JSON.stringify(twin.appliances.get("hsm-a3")?.state.commandLog)).not.toMatch(
      /wrong-(one|two|three)/,
    );
    client.end();
  });

  it("an unpatched reboot never comes back (no SSH, no NTLS) until a power cycle", async () => {
    const a = twin.appliances.get("hsm-b3");
    if (!a) throw new Error("no hsm-b3");
    const { client } = await login("hsm-b3");
    const sh = await Shell.open(client);
    await sh.until(/lunash:>$/);
    const closed = new Promise((r) => client.on("close", () => r(undefined)));
    sh.stream.write("sysconf appliance reboot\r");
    const out = await sh.until(/Command Result : 0 \(Success\)|proceed/);
    if (/proceed/.test(out) && !/Command Result/.test(out)) sh.stream.write("proceed\r");
    await closed;

    // Wait past the boot time: the unpatched appliance is hung, and every connection attempt fails. (Awaited on the
    // state itself, with no count of polls load could exhaust: the test's timeout is the hang guard.)
    while (a.state.power !== "hung") await new Promise((r) => setTimeout(r, 20));
    expect(a.state.power).toBe("hung");
    await expect(login("hsm-b3")).rejects.toThrow();
    await expect(tlsProbe(a.address, a.ntlsPort)).rejects.toThrow();

    await twin.powerCycle("hsm-b3");
    const back = await login("hsm-b3");
    const sh2 = await Shell.open(back.client);
    expect(await sh2.until(/lunash:>$/)).toContain("[hsm-b3] lunash:>");
    back.client.end();
    expect((await tlsProbe(a.address, a.ntlsPort)).length).toBeGreaterThan(0);
  });

  it("serves server.pem over sftp: the same certificate NTLS presents on its port", async () => {
    const a = twin.appliances.get("hsm-a1");
    if (!a) throw new Error("no hsm-a1");
    const { client } = await login("hsm-a1");
    const pem = await sftpRead(client, "server.pem");
    client.end();
    const presented = await tlsProbe(a.address, a.ntlsPort);
    expect(new X509Certificate(pem).fingerprint256).toBe(presented);
    expect(pem).toBe(a.state.ntls.certPem);
  });

  it("accepts uploads into the scp area over sftp, and refuses to overwrite server.pem", async () => {
    const a = twin.appliances.get("hsm-a1");
    const { client } = await login("hsm-a1");
    await sftpWrite(client, "client-z.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    await expect(sftpWrite(client, "server.pem", "x")).rejects.toThrow(/Permission denied/);
    client.end();
    expect(a?.state.scpFiles.get("client-z.pem")).toContain("BEGIN CERTIFICATE");
  });

  it("fails an untrusted client certificate on NTLS and logs the unknown-ca sequence; a registered one holds", async () => {
    const a = twin.appliances.get("hsm-a2");
    if (!a) throw new Error("no hsm-a2");
    const stranger = await generateSelfSignedCert({ commonName: "stranger", validDays: 30 });
    const before = a.state.syslog.length;
    const port = await tlsWithCert(a.address, a.ntlsPort, stranger);
    expect(port.held).toBe(false);
    for (let i = 0; i < 50 && a.state.syslog.length < before + 5; i++)
      await new Promise((r) => setTimeout(r, 10));
    const lines = a.state.syslog.slice(before);
    const peer = `127.0.0.1/${port.localPort}`;
    expect(lines.some((l) => l.includes(`Incoming connection request... : ${peer}`))).toBe(true);
    expect(lines.some((l) => l.includes("tlsv1 alert unknown ca"))).toBe(true);
    expect(lines.some((l) => l.includes("Error during SSL accept ( RC_SSL_ERROR )"))).toBe(true);
    expect(
      lines.some((l) =>
        l.includes(
          `0xc0000711 : Fail to establish a secure channel with client : ${peer} : RC_SSL_FAILED_HANDSHAKE`,
        ),
      ),
    ).toBe(true);
    expect(
      lines.some((l) => l.includes(`NTLS Client "Unknown host name" Connection instance removed : ${peer}`)),
    ).toBe(true);

    const clientA = twin.clientHosts.get("client-a");
    if (!clientA) throw new Error("no client-a");
    const ok = await tlsWithCert(a.address, a.ntlsPort, {
      certPem: clientA.host.certPem,
      keyPem: clientA.host.keyPem,
    });
    expect(ok.held).toBe(true);
  });

  it("takes faults at run time through the control endpoint (close-ntls, regen-cert, unknown target)", async () => {
    const a = twin.appliances.get("hsm-b1");
    if (!a) throw new Error("no hsm-b1");
    const control = await startControlServer(twin);
    const dir = mkdtempSync(join(tmpdir(), "twin-ctl-"));
    try {
      writeSimState(dir, {
        pid: process.pid,
        url: control.url,
        token: control.token,
        fleetFile: "x",
        startedAt: "",
      });
      expect(readSimState(dir).url).toBe(control.url);
      const before = await tlsProbe(a.address, a.ntlsPort);
      expect(await postFault(dir, "hsm-b1", "regen-cert")).toMatch(/new NTLS certificate/);
      const after = await tlsProbe(a.address, a.ntlsPort);
      expect(after).not.toBe(before);

      expect(await postFault(dir, "hsm-b1", "close-ntls")).toMatch(/nothing listens/);
      await expect(tcpOpen(a.address, a.ntlsPort)).rejects.toMatchObject({ code: "ECONNREFUSED" });
      await postFault(dir, "hsm-b1", "close-ntls", "off");
      await tcpOpen(a.address, a.ntlsPort);

      await expect(postFault(dir, "hsm-zz", "slow", "10")).rejects.toThrow(/unknown twin appliance 'hsm-zz'/);
      expect(await postFault(dir, "hsm-b2", "member-down")).toMatch(/client-b: hsm-b2\/par-tok/);
    } finally {
      await control.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** Connect without a client certificate; resolves with the SHA-256 fingerprint of the presented certificate. */
function tlsProbe(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host, port, rejectUnauthorized: false }, () => {
      const fp = s.getPeerX509Certificate()?.fingerprint256 ?? "";
      s.destroy();
      resolve(fp);
    });
    s.on("error", reject);
    s.setTimeout(2000, () => {
      s.destroy();
      reject(new Error("timeout"));
    });
  });
}

/** Connect with a client certificate; `held` = the server still holds the line 200 ms after the handshake. */
function tlsWithCert(
  host: string,
  port: number,
  cert: { certPem: string; keyPem: string },
): Promise<{ held: boolean; localPort: number }> {
  return new Promise((resolve) => {
    let localPort = 0;
    let settled = false;
    const done = (held: boolean) => {
      if (settled) return;
      settled = true;
      s.destroy();
      resolve({ held, localPort });
    };
    const s = tlsConnect(
      { host, port, cert: cert.certPem, key: cert.keyPem, rejectUnauthorized: false },
      () => {
        setTimeout(() => done(!s.destroyed && s.readyState === "open"), 200);
      },
    );
    s.on("connect", () => {
      localPort = s.localPort ?? 0;
    });
    s.on("error", () => done(false));
    s.on("close", () => done(false));
  });
}

function tcpOpen(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = tcpConnect({ host, port }, () => {
      s.destroy();
      resolve();
    });
    s.on("error", reject);
  });
}

function sftpRead(client: Client, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    client.sftp((err, sftp) => {
      if (err) return reject(err);
      sftp.readFile(path, (e, data) => {
        sftp.end();
        if (e) reject(e);
        else resolve(data.toString("utf8"));
      });
    });
  });
}

function sftpWrite(client: Client, path: string, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    client.sftp((err, sftp) => {
      if (err) return reject(err);
      sftp.writeFile(path, text, (e) => {
        sftp.end();
        if (e) reject(e);
        else resolve();
      });
    });
  });
}
