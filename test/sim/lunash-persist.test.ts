// The appliance state file (counters survive between sshd connections), the stdio entry point, and the twin's
// certificates as node's crypto and tls see them.
import { execFile } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import pty from "node-pty";
import { describe, expect, it } from "vitest";
import { registerClient } from "../../src/sim/appliance/factory.ts";
import {
  deserializeApplianceState,
  saveApplianceState,
  serializeApplianceState,
  settlePower,
} from "../../src/sim/appliance/stdio-main.ts";
import { generateSelfSignedCert, md5ColonFingerprint } from "../../src/sim/certs.ts";
import { attemptHsmSoLogin } from "../../src/sim/state.ts";
import { demoAppliance } from "./lunash-harness.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

function runStdio(
  args: string[],
  opts: { command?: string; input?: string },
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const env = { ...process.env };
    delete env.SSH_ORIGINAL_COMMAND;
    if (opts.command !== undefined) env.SSH_ORIGINAL_COMMAND = opts.command;
    const child = execFile(
      process.execPath,
      ["--import", "tsx", join(ROOT, "src/sim/appliance/stdio-main.ts"), ...args],
      { env, cwd: ROOT, timeout: 20_000 },
      (err, stdout, stderr) => {
        const code = err && typeof err.code === "number" ? err.code : err ? 1 : 0;
        resolve({ code, stdout, stderr });
      },
    );
    child.stdin?.end(opts.input ?? "");
  });
}

describe("appliance state serialization", () => {
  it("round-trips counters, zeroization, partitions, clients, policies and the certificate", async () => {
    const state = await demoAppliance("hsm-a1");
    registerClient(state, {
      name: "client-a",
      hostname: "127.0.2.1",
      certPem: state.ntls.certPem,
      partitions: ["par-pay"],
    });
    attemptHsmSoLogin(state, "wrong-password-1");
    state.partitions[0]!.failures.co = 4;
    state.faults.garbleCommand = "hsm show";
    const { state: back, savedAt } = deserializeApplianceState(serializeApplianceState(state, 1234));
    expect(savedAt).toBe(1234);
    expect(back.soFailures).toBe(1);
    expect(back.partitions).toEqual(state.partitions);
    expect(back.clients.get("client-a")).toEqual(state.clients.get("client-a"));
    expect([...back.policies]).toEqual([...state.policies]);
    expect(back.ntls).toEqual(state.ntls);
    expect(back.faults).toEqual({ garbleCommand: "hsm show" });
    expect(back.hsmSoPassword).toBe(state.hsmSoPassword);

    attemptHsmSoLogin(back, "wrong-password-2");
    attemptHsmSoLogin(back, "wrong-password-3");
    const zeroized = deserializeApplianceState(serializeApplianceState(back)).state;
    expect(zeroized.zeroized).toBe(true);
    expect(zeroized.partitions).toEqual([]);
  });

  it("refuses a damaged state file instead of half-reading it", async () => {
    const text = serializeApplianceState(await demoAppliance());
    expect(() => deserializeApplianceState(text.replace('"soFailures": 0', '"soFailures": 7'))).toThrow(
      /invalid at soFailures/,
    );
    expect(() => deserializeApplianceState("{")).toThrow(/not JSON/);
  });

  it("settles a saved reboot: patched comes back after the boot time, unpatched is hung", async () => {
    const patched = await demoAppliance("hsm-b1");
    patched.power = "rebooting";
    settlePower(patched, 1000, 1500, 1000);
    expect(patched.power).toBe("rebooting");
    settlePower(patched, 1000, 2500, 1000);
    expect(patched.power).toBe("on");
    const unpatched = await demoAppliance("hsm-b3");
    unpatched.power = "rebooting";
    settlePower(unpatched, 1000, 99_000, 1000);
    expect(unpatched.power).toBe("hung");
  });

  it("stdio-main keeps the SO counter across connections and runs interactive sessions", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lunash-stdio-"));
    const stateFile = join(dir, "hsm-a1.json");
    const args = ["--fleet", join(ROOT, "config/demo.yaml"), "--device", "hsm-a1", "--state", stateFile];

    const first = await runStdio(args, { command: "hsm login -password Not-The-Password" });
    expect(first.stderr).toBe("");
    expect(first.stdout).toContain("A00000 : LUNA_RET_UM_PIN_INCORRECT");
    expect(first.code).toBe(1);
    expect((statSync(stateFile).mode & 0o777).toString(8)).toBe("600");

    const show = await runStdio(args, { command: "hsm show" });
    expect(show.code).toBe(0);
    expect(show.stdout).toContain("   HSM Admin login attempts left:      2 before HSM zeroization!");
    expect(show.stdout).not.toContain("lunash:>");

    // Interactive over a pipe (no pty): banner, prompt, echo, and the TWO caution from the persisted counter.
    const session = await runStdio(args, { input: "hsm login\nHsmSo-A1-secret\nexit\n" });
    expect(session.stdout).toContain("Luna Network HSM Command Line Shell v7.2.0-220.");
    expect(session.stdout).toContain("[hsm-a1] lunash:>hsm login\n");
    expect(session.stdout).toContain("Caution:  You have only TWO HSM Admin logins attempts left");
    expect(session.stdout).toContain("'hsm login' successful.");
    expect(session.stdout).not.toContain("HsmSo-A1-secret");
    expect(session.code).toBe(0);

    const saved = JSON.parse(readFileSync(stateFile, "utf8")) as {
      soFailures: number;
      commandLog: { command: string }[];
    };
    expect(saved.soFailures).toBe(0);
    expect(saved.commandLog.map((c) => c.command)).toEqual([
      "hsm login -password ********",
      "hsm show",
      "hsm login",
      "exit",
    ]);
    expect(readFileSync(stateFile, "utf8")).not.toContain("Not-The-Password");

    // In exec mode a confirmation reads its answer from stdin (`echo proceed | ssh hsm 'hsm zeroize'`).
    const zeroize = await runStdio(args, { command: "hsm zeroize", input: "proceed\n" });
    expect(zeroize.stdout).toContain("'hsm zeroize' successful.");
    expect(zeroize.code).toBe(0);
    const afterZeroize = await runStdio(args, { command: "hsm sh" });
    expect(afterZeroize.stdout).toContain("HSM IS ZEROIZED !!!!");

    // A hung appliance (saved by a reboot without the patch) does not answer at all.
    const hung = deserializeApplianceState(readFileSync(stateFile, "utf8")).state;
    hung.power = "hung";
    saveApplianceState(stateFile, hung);
    const dead = await runStdio(args, { command: "hsm show" });
    expect(dead.stdout).toBe("");
    expect(dead.code).toBe(255);
  });
});

describe("stdio-main on a terminal", () => {
  it("echoes once (the password as *) and ends lines with a single CRLF", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lunash-pty-"));
    const env = { ...process.env } as Record<string, string>;
    delete env.SSH_ORIGINAL_COMMAND;
    const term = pty.spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        join(ROOT, "src/sim/appliance/stdio-main.ts"),
        ...["--fleet", join(ROOT, "config/demo.yaml"), "--device", "hsm-a2", "--state", join(dir, "s.json")],
      ],
      { cwd: ROOT, env, cols: 120, rows: 40 },
    );
    let out = "";
    term.onData((d) => {
      out += d;
    });
    const exited = new Promise<number>((resolve) => term.onExit((e) => resolve(e.exitCode)));
    // Until the output ends with `suffix`, or the process has exited (then the assertion says what it printed):
    // no wall-clock deadline of its own, which load could beat; the test's timeout is the hang guard.
    let ended = false;
    void exited.then(() => {
      ended = true;
    });
    const until = async (suffix: string) => {
      while (!out.endsWith(suffix)) {
        if (ended)
          throw new Error(`the appliance exited without ${JSON.stringify(suffix)}: ${JSON.stringify(out)}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    await until("lunash:>");
    term.write("hsm login\r");
    await until("  > ");
    term.write("Wrong-Password-9\r");
    await until("lunash:>");
    term.write("exit\r");
    expect(await exited).toBe(0);
    expect(out).toContain(
      "[hsm-a2] lunash:>hsm login\r\n\r\n  Please enter the HSM Administrators' password:\r\n",
    );
    expect(out).toContain("  > ****************\r\n");
    expect(out).not.toContain("Wrong-Password-9");
    expect(out).not.toContain("\r\r\n");
    expect(out).toContain("Error:  'hsm login' failed. (A00000 : LUNA_RET_UM_PIN_INCORRECT)\r\n");
  });
});

describe("twin certificates", () => {
  it("are real X.509 that node's tls accepts while valid and refuses once expired", async () => {
    const valid = await generateSelfSignedCert({ commonName: "hsm-x", validDays: 30 });
    const expired = await generateSelfSignedCert({ commonName: "hsm-x", validDays: -2 });
    const v = new X509Certificate(valid.certPem);
    expect(v.subject).toBe("CN=hsm-x");
    expect(v.fingerprint256).toBe(valid.fingerprintSha256);
    expect(valid.notAfter.getTime() - Date.now()).toBeGreaterThan(29.9 * 86_400_000);
    expect(expired.notAfter.getTime()).toBeLessThan(Date.now() - 86_400_000);
    expect(md5ColonFingerprint(valid.certPem)).not.toBe(md5ColonFingerprint(expired.certPem));

    const handshake = (cert: { certPem: string; keyPem: string }) =>
      new Promise<string>((resolve) => {
        const server = tls.createServer({ cert: cert.certPem, key: cert.keyPem }, (s) => s.end("ok"));
        server.listen(0, "127.0.0.1", () => {
          const { port } = server.address() as { port: number };
          const sock = tls.connect({ host: "127.0.0.1", port, ca: cert.certPem, servername: "hsm-x" });
          sock.on("data", () => {
            sock.destroy();
            server.close();
            resolve("ok");
          });
          sock.on("error", (err: NodeJS.ErrnoException) => {
            server.close();
            resolve(err.code ?? err.message);
          });
        });
      });
    expect(await handshake(valid)).toBe("ok");
    expect(await handshake(expired)).toBe("CERT_HAS_EXPIRED");
  });
});
