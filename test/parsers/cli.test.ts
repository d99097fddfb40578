// `lunafleet parse` as an operator runs it: a real node process on bin/lunafleet.js, file or stdin in, JSON and exit
// code out. The three exit codes are the contract scripts rely on: 0 parsed, 3 device error, 2 unparseable.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "../..");
const BIN = join(ROOT, "bin/lunafleet.js");
const FIXTURES = join(ROOT, "parsers/fixtures");

function run(
  args: string[],
  stdin?: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, "parse", ...args], { cwd: ROOT, stdio: "pipe" });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString("utf8");
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString("utf8");
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin ?? "");
  });
}

const fixture = (p: string) => join(FIXTURES, p);
const expected = (p: string) => JSON.parse(readFileSync(fixture(p), "utf8")) as unknown;

describe("lunafleet parse", () => {
  it("exit 0: parses a file, reading shell and command from the echoed prompt", async () => {
    const r = await run([fixture("hsm-show/luna7-two-attempts-left.txt")]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(expected("hsm-show/luna7-two-attempts-left.json"));
  });

  it("exit 0: parses stdin with --command and --shell when the capture has no echo line", async () => {
    const raw = readFileSync(fixture("client-show/luna785-non-interactive.txt"), "utf8");
    const r = await run(["--command", "client sh", "--shell", "lunash"], raw);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(expected("client-show/luna785-non-interactive.json"));
  });

  it("exit 0: a lunacm capture is recognised by its prompt form", async () => {
    const r = await run([fixture("hagroup-synchronize/cloning-conflict.txt")]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ cloningConflicts: [{ slots: [0, 1] }] });
  });

  it("exit 3: the zeroizing third wrong hsm login is a device error despite 'Command Result : 0 (Success)'", async () => {
    const raw = readFileSync(fixture("error-block/hsm-login-zeroized-30000F.txt"), "utf8");
    const r = await run([], raw);
    expect(r.code).toBe(3);
    expect(JSON.parse(r.stdout)).toEqual({
      deviceError: expected("error-block/hsm-login-zeroized-30000F.json"),
    });
  });

  it("exit 2: a truncated capture is refused with its reason on stderr and nothing on stdout", async () => {
    const r = await run([fixture("hsm-show/truncated.txt")]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("missing FIPS operation mode line");
  });

  it("exit 2: no --command and no echo line", async () => {
    const r = await run([], "ClientID:     app-client-01\n");
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("no --command given");
  });
});
