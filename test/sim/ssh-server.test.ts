// The generic twin SSH server over real SSH (ssh2 Client): auth, host key fingerprint, shell and exec channels,
// abrupt drops, the session log, and carrier faults. A tiny echo ShellHost stands in for the interpreters.

import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client, utils as ssh2utils } from "ssh2";
import { afterEach, describe, expect, it } from "vitest";
import { allocateLoopbackBlock } from "../../src/sim/loopback.ts";
import type { ShellHost, ShellIO } from "../../src/sim/shell-session.ts";
import {
  type CarrierFaults,
  generateEd25519KeyPair,
  generateHostKey,
  loadOrCreateHostKey,
  type SshUser,
  TwinSshServer,
} from "../../src/sim/ssh-server.ts";

/** Echoes each line as `> line`, prompt `echo>`; `bye` closes, `boom` destroys the connection. */
class EchoHost implements ShellHost {
  execs: string[] = [];
  openShell(io: ShellIO, ctx: { user: string; session: number; pty: boolean }) {
    let buf = "";
    return {
      start: () => io.write(`hello ${ctx.user} #${ctx.session}\necho>`),
      input: (data: string) => {
        buf += data;
        for (;;) {
          const m = /[\r\n]/.exec(buf);
          if (!m) return;
          const line = buf.slice(0, m.index);
          buf = buf.slice(m.index + 1).replace(/^\n/, "");
          if (line === "bye") return io.close(0);
          if (line === "boom") return io.destroy();
          io.write(`> ${line}\nCommand Result : 0 (Success)\necho>`);
        }
      },
      end: () => {},
    };
  }
  exec(command: string, io: ShellIO) {
    this.execs.push(command);
    io.write(`ran ${command}\n`);
    io.close(command === "fail" ? 3 : 0);
  }
}

const users = new Map<string, SshUser>([["admin", { password: "Right-Pass-1" }]]);
let servers: TwinSshServer[] = [];
let blocks: { release(): void }[] = [];

async function startServer(faults?: CarrierFaults, up?: () => boolean): Promise<TwinSshServer> {
  const block = allocateLoopbackBlock(1);
  blocks.push(block);
  const srv = new TwinSshServer({
    name: "t",
    address: block.address(0),
    port: 0,
    hostKey: generateHostKey(),
    users: (n) => users.get(n),
    host: new EchoHost(),
    faults: () => faults,
    isUp: up,
  });
  await srv.start();
  servers.push(srv);
  return srv;
}

afterEach(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  for (const b of blocks) b.release();
  servers = [];
  blocks = [];
});

function connect(srv: TwinSshServer, password = "Right-Pass-1"): Promise<{ client: Client; hostFp: string }> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    let hostFp = "";
    client
      .on("ready", () => resolve({ client, hostFp }))
      .on("error", reject)
      .connect({
        host: srv.address,
        port: srv.port,
        username: "admin",
        password,
        readyTimeout: 5000,
        hostHash: "sha256",
        hostVerifier: (hash: string) => {
          hostFp = `SHA256:${Buffer.from(hash, "hex").toString("base64").replace(/=+$/, "")}`;
          return true;
        },
      });
  });
}

function execOut(client: Client, cmd: string): Promise<{ out: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    client.exec(cmd, (err, stream) => {
      if (err) return reject(err);
      let out = "";
      let code: number | null = null;
      stream.on("data", (d: Buffer) => (out += d.toString()));
      stream.on("exit", (c: number) => (code = c));
      stream.on("close", () => resolve({ out, code }));
    });
  });
}

/** An interactive shell channel (no pty): what came back since the last line sent, up to a pattern. */
async function openShell(client: Client) {
  const stream = await new Promise<import("ssh2").ClientChannel>((res, rej) =>
    client.shell(false, (e, s) => (e ? rej(e) : res(s))),
  );
  let out = "";
  stream.on("data", (d: Buffer) => {
    out += d.toString("utf8");
  });
  const until = async (re: RegExp, from = 0, ms = 3000): Promise<string> => {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      const part = out.slice(from);
      if (re.test(part)) return part;
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error(`timed out waiting for ${re} in ${JSON.stringify(out.slice(from))}`);
  };
  return {
    until,
    send(line: string): Promise<string> {
      const from = out.length;
      stream.write(`${line}\n`);
      // The echo prompt has no ':>', so a garbled reply garbles it too ('rpub>').
      return until(/(echo|rpub)>$/, from);
    },
  };
}

describe("TwinSshServer", () => {
  it("reports the host key fingerprint the client sees, as ssh-keygen prints it", async () => {
    const srv = await startServer();
    const { client, hostFp } = await connect(srv);
    client.end();
    expect(hostFp).toBe(srv.hostKeyFingerprint);
    expect(srv.hostKeyFingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  });

  it("matches ssh-keygen -lf for a key kept in a host-key dir, and reloads the same key", () => {
    const dir = mkdtempSync(join(tmpdir(), "twin-hk-"));
    try {
      const a = loadOrCreateHostKey("hsm-x", dir);
      const b = loadOrCreateHostKey("hsm-x", dir);
      expect(b.fingerprint).toBe(a.fingerprint);
      const pubFile = join(dir, "pub");
      const pub = execFileSync("ssh-keygen", ["-y", "-f", join(dir, "hsm-x.ed25519")]).toString();
      writeFileSync(pubFile, pub);
      const printed = execFileSync("ssh-keygen", ["-lf", pubFile]).toString();
      expect(printed.split(" ")[1]).toBe(a.fingerprint);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses a wrong password without detail", async () => {
    const srv = await startServer();
    await expect(connect(srv, "wrong-pass")).rejects.toThrow(/All configured authentication methods failed/);
  });

  it("runs exec with its exit code and logs the session", async () => {
    const srv = await startServer();
    const { client } = await connect(srv);
    expect(await execOut(client, "hsm show")).toEqual({ out: "ran hsm show\n", code: 0 });
    expect((await execOut(client, "fail")).code).toBe(3);
    client.end();
    for (let i = 0; i < 100 && srv.sessions.some((s) => s.closedAt === undefined); i++)
      await new Promise((r) => setTimeout(r, 10));
    expect(srv.sessions.map((s) => [s.kind, s.user])).toEqual([
      ["exec", "admin"],
      ["exec", "admin"],
    ]);
    expect(srv.sessions[0]?.closedAt).toBeGreaterThanOrEqual(srv.sessions[0]?.openedAt ?? Infinity);
  });

  it("carries an interactive shell with CRLF on a pty, and destroy() drops the TCP connection", async () => {
    const srv = await startServer();
    const { client } = await connect(srv);
    const stream = await new Promise<import("ssh2").ClientChannel>((res, rej) =>
      client.shell({ term: "vt100" }, (e, s) => (e ? rej(e) : res(s))),
    );
    let out = "";
    stream.on("data", (d: Buffer) => (out += d.toString()));
    const until = async (re: RegExp) => {
      for (let i = 0; i < 200 && !re.test(out); i++) await new Promise((r) => setTimeout(r, 10));
      expect(out).toMatch(re);
    };
    await until(/echo>$/);
    stream.write("abc\r");
    await until(/> abc\r\nCommand Result : 0 \(Success\)\r\necho>$/);
    const closed = new Promise((r) => client.on("close", () => r(undefined)));
    stream.write("boom\r");
    await closed;
    expect(srv.connectionCount).toBe(0);
  });

  it("drops connections while the machine is down, before the SSH banner", async () => {
    let up = false;
    const srv = await startServer(undefined, () => up);
    await expect(connect(srv)).rejects.toThrow();
    up = true;
    const { client } = await connect(srv);
    client.end();
  });

  it("applies carrier faults: garble the named command, drop in the middle of another", async () => {
    const faults: CarrierFaults = { garbleCommand: "hsm show", dropMidCommand: "partition list" };
    const srv = await startServer(faults);
    const { client } = await connect(srv);
    const g = await execOut(client, "hsm show");
    expect(g.out).not.toContain("ran hsm show");
    expect(g.out).toBe("ena ufz fubj\n");
    const closed = new Promise((r) => client.on("close", () => r(undefined)));
    const d = execOut(client, "partition list");
    await closed;
    expect((await d).out.length).toBeLessThan("ran partition list\n".length);
  });

  it("a garble fault cleared after a garbled reply no longer garbles the same session's next reply", async () => {
    const faults: CarrierFaults = { garbleCommand: "hsm show" };
    const srv = await startServer(faults);
    const { client } = await connect(srv);
    const shell = await openShell(client);
    await shell.until(/echo>$/);
    expect(await shell.send("hsm show")).toBe("> ufz fubj\nPbzznaq Erfhyg : 5 (Fhpprff)\nrpub>");
    // Another command while the fault is still set: not garbled.
    expect(await shell.send("partition list")).toBe("> partition list\nCommand Result : 0 (Success)\necho>");
    expect(await shell.send("hsm show")).toContain("ufz fubj");
    // Cleared: the very same session answers in clear at once.
    faults.garbleCommand = undefined;
    expect(await shell.send("hsm show")).toBe("> hsm show\nCommand Result : 0 (Success)\necho>");
    expect(await shell.send("partition list")).toBe("> partition list\nCommand Result : 0 (Success)\necho>");
    client.end();
  });

  it("delays output under the slow fault", async () => {
    const srv = await startServer({ slowReplyMs: 150 });
    const { client } = await connect(srv);
    const t0 = Date.now();
    await execOut(client, "x");
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    client.end();
  });

  it("reports EADDRINUSE when the address is taken", async () => {
    const block = allocateLoopbackBlock(1);
    blocks.push(block);
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, block.address(0), () => r()));
    const port = (blocker.address() as { port: number }).port;
    const srv = new TwinSshServer({
      name: "t",
      address: block.address(0),
      port,
      hostKey: generateHostKey(),
      users: () => undefined,
      host: new EchoHost(),
    });
    await expect(srv.start()).rejects.toMatchObject({ code: "EADDRINUSE" });
    blocker.close();
  });
});

describe("generated keys", () => {
  it("every ed25519 pair parses (ssh2's generator alone writes a malformed one about once in 250)", () => {
    for (let i = 0; i < 1500; i++) {
      const pair = generateEd25519KeyPair();
      expect(ssh2utils.parseKey(pair.private)).not.toBeInstanceOf(Error);
      expect(ssh2utils.parseKey(pair.public)).not.toBeInstanceOf(Error);
    }
  });
});

describe("publickey auth", () => {
  it("accepts a listed key and refuses another", async () => {
    const mine = generateEd25519KeyPair();
    const other = generateEd25519KeyPair();
    const block = allocateLoopbackBlock(1);
    blocks.push(block);
    const srv = new TwinSshServer({
      name: "pk",
      address: block.address(0),
      port: 0,
      hostKey: generateHostKey(),
      users: (n) => (n === "admin" ? { publicKeys: [mine.public] } : undefined),
      host: new EchoHost(),
    });
    await srv.start();
    servers.push(srv);
    const tryKey = (privateKey: string) =>
      new Promise<void>((resolve, reject) => {
        const c = new Client();
        c.on("ready", () => {
          c.end();
          resolve();
        })
          .on("error", reject)
          .connect({ host: srv.address, port: srv.port, username: "admin", privateKey, readyTimeout: 5000 });
      });
    await tryKey(mine.private);
    await expect(tryKey(other.private)).rejects.toThrow(/authentication methods failed/);
  });
});

describe("generateHostKey", () => {
  it("never returns a malformed key (ssh2's generator sometimes writes one)", () => {
    const fps = new Set<string>();
    for (let i = 0; i < 800; i++) fps.add(generateHostKey().fingerprint);
    expect(fps.size).toBe(800);
  });
});
