// `lunafleet config check` must reject every kind of broken fleet file with a path-qualified reason, and never
// print a secret. Each case below is one kind of mistake an operator makes; the expected path and reason are what
// the operator needs to find and fix it.
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { formatIssue, parseFleet } from "../../src/config/index.ts";

const repo = join(import.meta.dirname, "../..");
const PASSWORD = "Sup3r-Secret-Pa55word";

// A valid production fleet, as YAML text; each case edits it.
const good = `version: 1
devices:
  - name: hsm-1
    host: 10.0.0.21
    hostKey: SHA256:Jr8cQ0xX7pE5rTq1mZk2N8vW3yB6uH9oL4dS0fG7aCa
    serial: "700123"
    credentials: { appliance: env:LUNA_SSH, hsmSo: file:/run/secrets/so }
    partitions:
      - { label: par-a, serial: "1700123000001", credentials: { co: env:LUNA_CO } }
  - name: hsm-2
    host: 10.0.0.22
    hostKey: SHA256:Jr8cQ0xX7pE5rTq1mZk2N8vW3yB6uH9oL4dS0fG7aCb
    serial: "700124"
    credentials: { appliance: env:LUNA_SSH }
    partitions:
      - { label: par-a, serial: "1700124000001" }
clientHosts:
  - { name: app-1, host: 10.0.1.5, hostKey: "SHA256:Jr8cQ0xX7pE5rTq1mZk2N8vW3yB6uH9oL4dS0fG7aCc", credentials: { ssh: env:APP_SSH } }
haGroups:
  - label: ha-a
    clientHost: app-1
    members: [{ device: hsm-1, partition: par-a }, { device: hsm-2, partition: par-a }]
maintenanceWindows:
  - { name: weekly, cron: "0 2 * * 0", durationMinutes: 120 }
`;

interface BrokenCase {
  kind: string;
  edit: (yaml: string) => string;
  path: string;
  reason: RegExp;
}

const cases: BrokenCase[] = [
  {
    kind: "YAML syntax error",
    edit: (y) => y.replace('serial: "700123"', "serial: [700123"),
    path: "(document)",
    reason: /YAML syntax/,
  },
  {
    kind: "wrong version",
    edit: (y) => y.replace("version: 1", "version: 2"),
    path: "version",
    reason: /expected 1/i,
  },
  {
    kind: "port out of range",
    edit: (y) => y.replace("host: 10.0.0.21", "host: 10.0.0.21\n    port: 70000"),
    path: "devices[0].port",
    reason: /65535/,
  },
  {
    kind: "serial not numeric",
    edit: (y) => y.replace('serial: "700124"', 'serial: "SN-700124"'),
    path: "devices[1].serial",
    reason: /decimal serial/,
  },
  {
    kind: "missing host key on a real device",
    edit: (y) => y.replace(/\n {4}hostKey: SHA256:\S+aCb/, ""),
    path: "devices[1].hostKey",
    reason: /pinned host key/,
  },
  {
    kind: "malformed host key",
    edit: (y) => y.replace("SHA256:Jr8cQ0xX7pE5rTq1mZk2N8vW3yB6uH9oL4dS0fG7aCa", "MD5:aa:bb"),
    path: "devices[0].hostKey",
    reason: /SHA256 fingerprint/,
  },
  {
    kind: "literal secret in a production file",
    edit: (y) => y.replace("hsmSo: file:/run/secrets/so", `hsmSo: "${PASSWORD}"`),
    path: "devices[0].credentials.hsmSo",
    reason: /literal secrets are refused/,
  },
  {
    kind: "relative file reference",
    edit: (y) => y.replace("file:/run/secrets/so", "file:secrets/so"),
    path: "devices[0].credentials.hsmSo",
    reason: /absolute path/,
  },
  {
    kind: "unknown key (typo)",
    edit: (y) =>
      y.replace(
        "credentials: { appliance: env:LUNA_SSH }",
        "credentials: { appliance: env:LUNA_SSH }\n    pasword: x",
      ),
    path: "devices[1]",
    reason: /unknown key\(s\): pasword/,
  },
  {
    kind: "duplicate device name",
    edit: (y) => y.replace("name: hsm-2", "name: hsm-1"),
    path: "devices[1].name",
    reason: /duplicate device name/,
  },
  {
    kind: "HA member on unknown device",
    edit: (y) => y.replace("{ device: hsm-2, partition: par-a }", "{ device: hsm-9, partition: par-a }"),
    path: "haGroups[0].members[1].device",
    reason: /unknown device 'hsm-9'/,
  },
  {
    kind: "HA member on unknown partition",
    edit: (y) => y.replace("{ device: hsm-2, partition: par-a }", "{ device: hsm-2, partition: par-z }"),
    path: "haGroups[0].members[1].partition",
    reason: /has no partition 'par-z'/,
  },
  {
    kind: "HA group on unknown client host",
    edit: (y) => y.replace("clientHost: app-1", "clientHost: app-9"),
    path: "haGroups[0].clientHost",
    reason: /unknown client host/,
  },
  {
    kind: "invalid cron",
    edit: (y) => y.replace('cron: "0 2 * * 0"', 'cron: "every sunday"'),
    path: "maintenanceWindows[0].cron",
    reason: /invalid cron/,
  },
  {
    kind: "sim block in a production file",
    edit: (y) =>
      y.replace(
        "credentials: { appliance: env:LUNA_SSH }\n",
        "credentials: { appliance: env:LUNA_SSH }\n    sim: { rebootPatch: false }\n",
      ),
    path: "devices[1].sim",
    reason: /only in a twin fleet/,
  },
  {
    kind: "no appliance credential",
    edit: (y) => y.replace("credentials: { appliance: env:LUNA_SSH }\n", "credentials: {}\n"),
    path: "devices[1].credentials",
    reason: /needs credentials.appliance/,
  },
  {
    kind: "same address twice",
    edit: (y) => y.replace("host: 10.0.0.22", "host: 10.0.0.21"),
    path: "devices[1].host",
    reason: /already used by devices\[0\]/,
  },
  {
    kind: "HA group with one member",
    edit: (y) => y.replace(", { device: hsm-2, partition: par-a }]", "]"),
    path: "haGroups[0].members",
    reason: /two members/,
  },
];

describe("fleet file validation", () => {
  it("accepts the valid baseline and the demo fleet", () => {
    const base = parseFleet(good);
    expect(base.ok ? [] : base.issues).toEqual([]);
    const out = execFileSync(
      process.execPath,
      [join(repo, "bin/lunafleet.js"), "config", "check", join(repo, "config/demo.yaml")],
      {
        encoding: "utf8",
      },
    );
    expect(out).toMatch(/ok \(7 devices, 2 client hosts, 2 HA groups/);
  });

  it(`rejects ${cases.length} kinds of broken fleet files`, () => {
    expect(cases.length).toBeGreaterThanOrEqual(10);
    for (const c of cases) {
      const text = c.edit(good);
      expect(text, `case "${c.kind}" must change the file`).not.toBe(good);
      const result = parseFleet(text);
      expect(result.ok, `case "${c.kind}" must be rejected`).toBe(false);
      if (result.ok) continue;
      const match = result.issues.find((i) => i.path === c.path && c.reason.test(i.message));
      expect(match, `case "${c.kind}": issues were ${JSON.stringify(result.issues)}`).toBeDefined();
      if (c.path !== "(document)")
        expect(match?.line, `case "${c.kind}" points at a line`).toBeGreaterThan(0);
      for (const issue of result.issues) expect(formatIssue("f.yaml", issue)).not.toContain(PASSWORD);
    }
  });

  it("reports every error of a file at once, not only the first", () => {
    const text = cases.slice(2, 6).reduce((y, c) => c.edit(y), good);
    const result = parseFleet(text);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(new Set(result.issues.map((i) => i.path)).size).toBeGreaterThanOrEqual(4);
  });

  it("config check exits 1, prints file:line path: reason, and never the secret", () => {
    const dir = mkdtempSync(join(tmpdir(), "lunafleet-config-"));
    const file = join(dir, "fleet.yaml");
    writeFileSync(
      file,
      good.replace("hsmSo: file:/run/secrets/so", `hsmSo: "${PASSWORD}"`).replace("version: 1", "version: 3"),
    );
    let status = 0;
    let stderr = "";
    let stdout = "";
    try {
      stdout = execFileSync(process.execPath, [join(repo, "bin/lunafleet.js"), "config", "check", file], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
      });
    } catch (err) {
      const e = err as { status: number; stderr: string; stdout: string };
      status = e.status;
      stderr = e.stderr;
      stdout = e.stdout;
    }
    expect(status).toBe(1);
    expect(stderr).toMatch(new RegExp(`${file}:1:\\d+ version: `));
    expect(stderr).toMatch(
      new RegExp(`${file}:\\d+:\\d+ devices\\[0\\]\\.credentials\\.hsmSo: literal secrets are refused`),
    );
    expect(stderr + stdout).not.toContain(PASSWORD);
  });
});
