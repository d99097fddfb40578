// `lunafleet plan` as an operator runs it: a real process, the demo fleet file, nothing started.
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { parseDocument } from "yaml";

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

  // A runbook's own refusal (its validate, at plan as at submit: the daemon's planOp and submitJob admit the same
  // way) is one plain line naming the reason, exit 1, no stack, nothing on stdout.
  it("refusals a runbook makes are one line, exit 1: regen on the fleet, deprovision of a device with no azure.resourceId", async () => {
    const oneLine = (r: { code: number; stdout: string; stderr: string }, said: RegExp) => {
      expect(r.code, r.stderr).toBe(1);
      expect(r.stdout).toBe("");
      expect(r.stderr.trim().split("\n"), r.stderr).toHaveLength(1);
      expect(r.stderr).toMatch(said);
      expect(r.stderr).not.toMatch(/\bat \S+ \(|\.ts:\d+/);
    };
    oneLine(
      await cli("plan", "ntls-cert-sync", "fleet", "--param", "regen=true", "--fleet", "config/demo.yaml"),
      /^lunafleet plan: refused: regen replaces one appliance's certificate .*target a device, not 'fleet'$/m,
    );

    // The demo's appliances are all Azure Dedicated HSMs: one made on-premises (no azure section) for this case.
    const dir = mkdtempSync(join(tmpdir(), "lf-plan-refusal-"));
    try {
      const doc = parseDocument(readFileSync(join(root, "config/demo.yaml"), "utf8"));
      expect(doc.getIn(["devices", 0, "name"])).toBe("hsm-a1");
      doc.deleteIn(["devices", 0, "azure"]);
      const file = join(dir, "on-prem-a1.yaml");
      writeFileSync(file, doc.toString());
      oneLine(
        await cli("plan", "deprovision", "hsm-a1", "--param", "backupsConfirmed=true", "--fleet", file),
        /^lunafleet plan: refused: .*hsm-a1.*azure\.resourceId/m,
      );
      // The same fleet plans other runbooks for hsm-a1: the refusal is deprovision's, not the file's.
      expect((await cli("plan", "tcp-check", "hsm-a1", "--fleet", file)).code).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
