// The baseline: what a shell script would do. One OpenSSH `ssh` process per device under `xargs -P`, default
// algorithms and settings, password through an askpass script (the twin's appliances take passwords), host keys
// not checked (a script "that just works"; lunafleet pins them). Client CPU is the children's CPU as bash `times`
// reports it after xargs finished (ssh, askpass and xargs itself).
import { spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deviceSecret, type Fleet } from "../src/config/index.ts";

export interface OpenSshFigures {
  devices: number;
  /** Devices whose output carried the success footer. */
  ok: number;
  exitCode: number;
  wallMs: number;
  /** CPU of every child process (ssh, askpass, xargs), ms. */
  cpuMs: number;
  stderrTail: string;
}

const FOOTER = "Command Result : 0 (Success)";

function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** `times` prints "XmY.ZZZs XmY.ZZZs" for the shell, then for its children. */
function parseTimes(out: string): number {
  const lines = out.trim().split("\n");
  const children = lines[lines.length - 1] ?? "";
  let total = 0;
  for (const m of children.matchAll(/(\d+)m([\d.]+)s/g)) total += Number(m[1]) * 60_000 + Number(m[2]) * 1000;
  return total;
}

export async function openSshSweep(fleet: Fleet, concurrency: number): Promise<OpenSshFigures> {
  const dir = mkdtempSync(join(tmpdir(), "lunafleet-bench-ssh-"));
  try {
    // askpass gets the prompt ("admin@127.a.b.c's password: ") as $1 and prints that device's password.
    const cases = fleet.devices.map((d) => {
      const pw = deviceSecret(fleet, d, "appliance");
      if (!pw) throw new Error(`${d.name}: no appliance password`);
      return `  *${shQuote(`@${d.host}'s`)}*) printf '%s\\n' ${shQuote(pw.reveal())} ;;`;
    });
    const askpass = join(dir, "askpass.sh");
    writeFileSync(askpass, `#!/bin/sh\ncase "$1" in\n${cases.join("\n")}\n  *) exit 1 ;;\nesac\n`, {
      mode: 0o700,
    });
    chmodSync(askpass, 0o700);
    // One line per device: xargs -L 1 appends it to the ssh command line (port, user@host, the remote command).
    const targets = join(dir, "targets");
    writeFileSync(targets, fleet.devices.map((d) => `${d.port} ${d.user}@${d.host} hsm show\n`).join(""));
    const out = join(dir, "out");
    const err = join(dir, "err");
    const script = [
      `xargs -a "$1" -P "$2" -L 1 ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null`,
      ` -o BatchMode=no -p > "$3" 2> "$4" < /dev/null; rc=$?; times; exit $rc`,
    ].join("");
    const t0 = performance.now();
    const { code, stdout } = await new Promise<{ code: number; stdout: string }>((resolve, reject) => {
      const child = spawn("bash", ["-c", script, "bash", targets, String(concurrency), out, err], {
        env: { ...process.env, SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: "force", DISPLAY: "" },
        stdio: ["ignore", "pipe", "inherit"],
      });
      let stdout = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.on("error", reject);
      child.on("close", (c) => resolve({ code: c ?? -1, stdout }));
    });
    const wallMs = performance.now() - t0;
    const output = readFileSync(out, "utf8");
    const ok = output.split(FOOTER).length - 1;
    // Host-key warnings are expected noise; keep the rest (auth failures, refused connections) for the report.
    const stderrTail = readFileSync(err, "utf8")
      .split("\n")
      .filter((l) => l.trim() !== "" && !l.startsWith("Warning: Permanently added"))
      .slice(-3)
      .join(" | ");
    return {
      devices: fleet.devices.length,
      ok,
      exitCode: code,
      wallMs,
      cpuMs: parseTimes(stdout),
      stderrTail,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
