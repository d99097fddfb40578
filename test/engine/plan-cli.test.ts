// `lunafleet plan` as an operator runs it: a real process, the demo fleet file, nothing started.
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const run = promisify(execFile);
const root = join(import.meta.dirname, "../..");
const cli = (...args: string[]) =>
  run(process.execPath, [join(root, "bin/lunafleet.js"), ...args], { cwd: root }).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => ({
      code: e.code,
      stdout: e.stdout,
      stderr: e.stderr,
    }),
  );

describe("lunafleet plan", () => {
  it("prints the steps and exact commands of patch-verify for an HA group, and JSON on request", async () => {
    const text = await cli("plan", "patch-verify", "ha-tokens", "--fleet", "config/demo.yaml");
    expect(text.code).toBe(0);
    expect(text.stdout).toContain("Locks devices: hsm-b1, hsm-b2, hsm-b3");
    expect(text.stdout).toContain("lunash hsm-b3> package list");
    expect(text.stdout).toContain("Nothing was sent");
    const json = await cli(
      "plan",
      "tcp-check",
      "--fleet",
      "config/demo.yaml",
      "--param",
      "target=hsm-a2",
      "--json",
    );
    expect(json.code).toBe(0);
    const plan = JSON.parse(json.stdout) as { targets: unknown; steps: { id: string }[] };
    expect(plan.targets).toEqual({ devices: ["hsm-a2"], clientHosts: ["client-a"] });
    expect(plan.steps.map((s) => s.id)).toEqual(["ntls-probe:hsm-a2", "vtl-verify:client-a", "report"]);
  });

  it("exits 1 naming the known runbooks, or the valid targets", async () => {
    const unknown = await cli("plan", "ha-recovr", "--fleet", "config/demo.yaml");
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain(
      "known runbooks: app-crypto-gate, cmk-health, deprovision, ha-recover, ha-sync, mhsm-audit, mhsm-retire, ntls-cert-sync, patch-verify, tcp-check, vault-placement",
    );
    const target = await cli("plan", "tcp-check", "hsm-zz", "--fleet", "config/demo.yaml");
    expect(target.code).toBe(1);
    expect(target.stderr).toContain("unknown target 'hsm-zz'");
  });
});
