// The real OpenSSH lane: our own sshd (config, host key and client key pair in a temp dir, public-key auth only)
// whose ForceCommand runs the twin's lunash interpreter on stdio. The driver runs `hsm show` through it and the
// parser reads the result; the pinned-key check is made against sshd's real host key.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parsers } from "../../parsers/index.ts";
import { loadFleet } from "../../src/config/load.ts";
import { getDevice } from "../../src/config/model.ts";
import { JobShells } from "../../src/shell/job-shells.ts";
import { sendCommand } from "../../src/shell/reply.ts";
import { connectSsh } from "../../src/transport/connection.ts";
import { HostKeyMismatch } from "../../src/transport/errors.ts";
import { SshPool } from "../../src/transport/pool.ts";
import { deviceTarget } from "../../src/transport/target.ts";

const SSHD = "/usr/sbin/sshd";
const repo = resolve(import.meta.dirname, "../..");

let dir: string;
let sshd: ChildProcess | undefined;
let sshdLog = "";
let port = 0;
let hostFingerprint = "";
let fleetFile = "";

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once("error", rej);
    s.listen({ host: "127.0.0.1", port: 0 }, () => {
      const a = s.address();
      const p = a && typeof a === "object" ? a.port : 0;
      s.close(() => res(p));
    });
  });
}

async function waitForListening(p: ChildProcess): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (/Server listening on 127\.0\.0\.1 port/.test(sshdLog)) return;
    if (p.exitCode !== null) throw new Error(`sshd exited (${p.exitCode}): ${sshdLog}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`sshd did not start listening: ${sshdLog}`);
}

beforeAll(async () => {
  // Skip nothing silently: scripts/bootstrap installs openssh-server; without it this lane fails loudly.
  if (!existsSync(SSHD))
    throw new Error(`${SSHD} is missing: run scripts/bootstrap (installs openssh-server)`);
  dir = mkdtempSync(join(tmpdir(), "lf-sshd-"));
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, "host_ed25519")]);
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, "client_ed25519")]);
  writeFileSync(join(dir, "authorized_keys"), readFileSync(join(dir, "client_ed25519.pub")));
  hostFingerprint = execFileSync("ssh-keygen", ["-lf", join(dir, "host_ed25519.pub")], {
    encoding: "utf8",
  }).split(" ")[1] as string;
  // sshd as root needs its privilege-separation directory.
  if (process.getuid?.() === 0) mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });

  const user = execFileSync("id", ["-un"], { encoding: "utf8" }).trim();
  for (let attempt = 0; attempt < 5; attempt++) {
    port = await freePort();
    fleetFile = join(dir, "fleet.yaml");
    writeFileSync(
      fleetFile,
      [
        "version: 1",
        "twin: true",
        "defaults: { timeouts: { connectMs: 8000, authMs: 8000, commandMs: 15000, keepaliveMs: 15000 } }",
        "devices:",
        `  - name: hsm-sshd`,
        `    host: 127.0.0.1`,
        `    port: ${port}`,
        `    user: ${user}`,
        `    serial: "700777"`,
        `    credentials: { privateKey: "file:${join(dir, "client_ed25519")}", hsmSo: "HsmSo-sshd-secret" }`,
        `    partitions: [{ label: par-a, serial: "1700777000001" }]`,
        "",
      ].join("\n"),
    );
    const forceCommand = `cd ${repo} && exec ${process.execPath} --import tsx ${join(repo, "src/sim/appliance/stdio-main.ts")} --fleet ${fleetFile} --device hsm-sshd --state ${join(dir, "state.json")}`;
    writeFileSync(
      join(dir, "sshd_config"),
      [
        `Port ${port}`,
        "ListenAddress 127.0.0.1",
        `HostKey ${join(dir, "host_ed25519")}`,
        `PidFile ${join(dir, "sshd.pid")}`,
        `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes",
        "PermitRootLogin prohibit-password",
        "UsePAM no",
        "StrictModes no",
        "LogLevel VERBOSE",
        `ForceCommand ${forceCommand}`,
        "",
      ].join("\n"),
    );
    sshdLog = "";
    const p = spawn(SSHD, ["-D", "-e", "-f", join(dir, "sshd_config")], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    p.stderr?.on("data", (d: Buffer) => (sshdLog += d.toString()));
    try {
      await waitForListening(p);
      sshd = p;
      return;
    } catch (err) {
      p.kill();
      if (!/Address already in use/.test(sshdLog)) throw err;
    }
  }
  throw new Error(`could not start sshd: ${sshdLog}`);
}, 30_000);

afterAll(() => {
  sshd?.kill();
});

describe("real OpenSSH sshd with the lunash interpreter as ForceCommand", () => {
  it("refuses sshd's host key when the pin differs, before authenticating", async () => {
    const fleet = loadFleet(fleetFile);
    const target = {
      ...deviceTarget(fleet, getDevice(fleet, "hsm-sshd")),
      hostKey: "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    };
    const before = sshdLog.length;
    const err = await connectSsh(target).catch((e) => e);
    expect(err).toBeInstanceOf(HostKeyMismatch);
    expect(err.received).toBe(hostFingerprint);
    // sshd logs the end of this connection before authentication ([preauth]): everything it had to say about it is
    // in the log by then — awaited, not slept on (no deadline of its own: the test's timeout is the hang guard).
    while (
      !/(Connection closed by|Disconnected from|Connection reset by) .*\[preauth\]/.test(
        sshdLog.slice(before),
      )
    )
      await new Promise((r) => setTimeout(r, 10));
    const log = sshdLog.slice(before);
    expect(log).not.toMatch(/Accepted|Failed publickey|Postponed/);
  });

  it("runs `hsm show` through sshd with the pinned key and parses it", async () => {
    const fleet = loadFleet(fleetFile);
    const target = { ...deviceTarget(fleet, getDevice(fleet, "hsm-sshd")), hostKey: hostFingerprint };
    const pool = new SshPool();
    const sessions = new JobShells({
      lease: pool.lease(),
      targets: { device: () => target, clientHost: () => target },
    });
    try {
      const sh = await sessions.lunash(target.name);
      expect(sh.prompt).toMatch(/^\[[^\]]+\] lunash:>$/);
      const r = await sendCommand(sh, "hsm show", parsers.hsmShow);
      expect(r.reply.ok && r.reply.value.serial).toBe("700777");
      const again = await sh.run("hsm sh");
      expect(again.canonical).toBe("hsm show");
      expect(sshdLog).toMatch(/Accepted publickey/);
      expect((sshdLog.match(/Accepted publickey/g) ?? []).length).toBe(1); // one login for both commands
    } finally {
      await sessions.close();
      await pool.closeAll();
    }
  }, 30_000);
});
