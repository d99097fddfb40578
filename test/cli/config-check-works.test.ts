// `lunafleet config check` proves a fleet file can work, through the real CLI: env: secrets set, file: secrets
// readable (never printed), no <…> placeholder left in a production file, --offline skipping the secrets; a YAML syntax
// error is reported by line, column and kind — never the text of a token, so one stray `}` in front of the secrets
// prints none of them (config check and daemon --fleet alike); alias bombs and huge files refused with their limit;
// names, client names and hosts with spaces, control or shell characters or path separators refused.
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { DEMO_FLEET_FILE } from "../../src/cli/demo.ts";

const bin = fileURLToPath(new URL("../../bin/lunafleet.js", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "lf-cfgcheck-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function lunafleet(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; out: string }> {
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith("REDIS_") && !k.startsWith("LUNA_")),
  );
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { env: { ...base, ...env } }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr }),
    );
  });
}

let seq = 0;
const fileWith = (text: string) => {
  const f = join(dir, `fleet-${++seq}.yaml`);
  writeFileSync(f, text);
  return f;
};

const PROD = `version: 1
devices:
  - name: hsm-1
    host: 10.0.0.21
    hostKey: SHA256:Jr8cQ0xX7pE5rTq1mZk2N8vW3yB6uH9oL4dS0fG7aCa
    serial: "700123"
    credentials: { appliance: env:LUNA_CHECK_SSH, hsmSo: file:${dir}/so-secret }
    azure: { resourceId: /subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/rg-a/providers/Microsoft.HardwareSecurityModules/dedicatedHSMs/hsm-1 }
    partitions:
      - { label: par-a, serial: "1700123000001", credentials: { co: env:LUNA_CHECK_CO } }
`;
/** A client host for PROD: its name, host and NTLS client name reach shells and `client register -client`. */
const CLIENT = `clientHosts:
  - name: app-1
    host: 10.0.0.31
    hostKey: SHA256:Jr8cQ0xX7pE5rTq1mZk2N8vW3yB6uH9oL4dS0fG7aCa
    clientName: app-1
    credentials: { ssh: env:LUNA_CHECK_SSH }
    assignments: [{ device: hsm-1, partitions: [par-a] }]
`;
const SSH_VALUE = "Ssh-Value-never-printed-1";
const SO_VALUE = "So-Value-never-printed-2";

describe("config check proves a file can work", () => {
  it("passes when every env: is set and every file: readable, naming how many it resolved", async () => {
    writeFileSync(join(dir, "so-secret"), `${SO_VALUE}\n`);
    const r = await lunafleet(["config", "check", fileWith(PROD)], {
      LUNA_CHECK_SSH: SSH_VALUE,
      LUNA_CHECK_CO: "co",
    });
    expect(r.out).toMatch(/: ok \(1 devices, .*; 3 secret reference\(s\) resolve\)/);
    expect(r.code).toBe(0);
    expect(r.out).not.toContain(SSH_VALUE);
    expect(r.out).not.toContain(SO_VALUE);
  });

  it("an unset env: secret or an unreadable file: fails naming the path, never a value; --offline skips them", async () => {
    const f = fileWith(PROD.replace(`file:${dir}/so-secret`, `file:${dir}/no-such-secret`));
    const r = await lunafleet(["config", "check", f], { LUNA_CHECK_SSH: SSH_VALUE });
    expect(r.code).toBe(1);
    expect(r.out).toMatch(
      new RegExp(
        `${f}:7:\\d+ devices\\[0\\]\\.credentials\\.hsmSo: secret file ${dir}/no-such-secret cannot be read \\(ENOENT\\)`,
      ),
    );
    expect(r.out).toMatch(
      new RegExp(
        `${f}:10:\\d+ devices\\[0\\]\\.partitions\\[0\\]\\.credentials\\.co: environment variable LUNA_CHECK_CO is not set`,
      ),
    );
    expect(r.out).not.toMatch(/LUNA_CHECK_SSH is not set/);
    expect(r.out).not.toContain(SSH_VALUE);
    const offline = await lunafleet(["config", "check", f, "--offline"]);
    expect(offline.code).toBe(0);
    expect(offline.out).toMatch(/secrets not checked \(--offline\)/);
  });

  it("a production file with a <…> placeholder fails at it, offline too", async () => {
    const f = fileWith(
      PROD.replace("resourceGroups/rg-a/", "resourceGroups/<rg>/").replace("10.0.0.21", "10.0.0.21"),
    );
    const r = await lunafleet(["config", "check", f, "--offline"]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(
      new RegExp(`${f}:8:\\d+ devices\\[0\\]\\.azure\\.resourceId: a <…> placeholder is still in the file`),
    );
  });

  it("a YAML syntax error before the secrets: line, column and kind, and not one token of the file", async () => {
    const demo = readFileSync(DEMO_FLEET_FILE, "utf8");
    const broken = demo.replace(
      'credentials: { appliance: "Appliance-A1-pw", hsmSo: "HsmSo-A1-secret" }',
      'credentials: { appliance: "Appliance-A1-pw", hsmSo: "HsmSo-A1-secret" }}',
    );
    expect(broken).not.toBe(demo);
    const f = fileWith(broken);
    const line = broken.split("\n").findIndex((l) => l.includes('"HsmSo-A1-secret" }}')) + 1;
    const check = await lunafleet(["config", "check", f]);
    const daemon = await lunafleet([
      "daemon",
      "--fleet",
      f,
      "--data-dir",
      join(dir, "dd"),
      "--api-port",
      "off",
    ]);
    const secrets = [...demo.matchAll(/"([A-Za-z0-9-]*(?:-pw|-secret))"/g)].map((m) => m[1]!);
    expect(secrets.length).toBeGreaterThan(10);
    for (const r of [check, daemon]) {
      expect(r.code).toBe(1);
      expect(r.out).toMatch(
        new RegExp(`${f}:${line}:\\d+ \\(document\\): YAML syntax error: an unexpected character or token`),
      );
      for (const s of secrets) expect(r.out).not.toContain(s);
      expect(r.out).not.toMatch(/resourceId|subscriptions|Appliance-/);
    }
  });

  it("alias bombs and huge files are refused with their limit", async () => {
    const bomb = ["version: 1", "a: &a [x, x, x, x, x, x, x, x, x, x]"];
    for (let i = 1; i < 9; i++)
      bomb.push(
        `${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10)
          .fill(`*${String.fromCharCode(96 + i)}`)
          .join(", ")}]`,
      );
    const r = await lunafleet(["config", "check", fileWith(`${bomb.join("\n")}\n`)]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/too many aliases \(limit 100\): refused/);
    const huge = await lunafleet([
      "config",
      "check",
      fileWith(`version: 1\n#${"x".repeat(5 * 1024 * 1024)}\n`),
    ]);
    expect(huge.code).toBe(1);
    expect(huge.out).toMatch(/\(file\): \d+ bytes, larger than 4194304: refused/);
  });

  it("the client host the rows below spoil is a good one: the file with it passes", async () => {
    const r = await lunafleet(["config", "check", fileWith(PROD + CLIENT), "--offline"]);
    expect(r.out).toMatch(/: ok \(1 devices, 1 client hosts, /);
    expect(r.code).toBe(0);
  });

  it.each([
    [
      "a device name with a space",
      (y: string) => y.replace("name: hsm-1", 'name: "hsm 1"'),
      /devices\[0\]\.name: must be 1-63/,
    ],
    [
      "a host with a shell character",
      (y: string) => y.replace("host: 10.0.0.21", 'host: "10.0.0.21;reboot"'),
      /devices\[0\]\.host: must be a host name or an IP address/,
    ],
    [
      "a host with a path separator",
      (y: string) => y.replace("host: 10.0.0.21", 'host: "hsm/1"'),
      /devices\[0\]\.host: must be a host name/,
    ],
    [
      "a partition label with a control character",
      (y: string) => y.replace("label: par-a", 'label: "par\\ta"'),
      /devices\[0\]\.partitions\[0\]\.label: must be 1-63/,
    ],
    [
      "an appliance hostname with a space",
      (y: string) => y.replace('serial: "700123"', 'serial: "700123"\n    hostname: "hsm one"'),
      /devices\[0\]\.hostname: must be 1-63/,
    ],
    [
      "a client host name with a shell character",
      (y: string) => y + CLIENT.replace("- name: app-1", '- name: "app-1;reboot"'),
      /clientHosts\[0\]\.name: must be 1-63/,
    ],
    [
      "a client host name with a path separator",
      (y: string) => y + CLIENT.replace("- name: app-1", '- name: "../app-1"'),
      /clientHosts\[0\]\.name: must be 1-63/,
    ],
    [
      "a client host's host with a space",
      (y: string) => y + CLIENT.replace("host: 10.0.0.31", 'host: "10.0.0.31 -oProxyCommand=x"'),
      /clientHosts\[0\]\.host: must be a host name or an IP address/,
    ],
    [
      "an NTLS clientName with a shell character",
      (y: string) => y + CLIENT.replace("clientName: app-1", 'clientName: "app-1$(reboot)"'),
      /clientHosts\[0\]\.clientName: must be 1-63/,
    ],
    [
      "an NTLS clientName with a space and a control character",
      (y: string) => y + CLIENT.replace("clientName: app-1", 'clientName: "app 1\\n"'),
      /clientHosts\[0\]\.clientName: must be 1-63/,
    ],
  ])("%s is refused by config check, naming the path", async (_what, edit, reason) => {
    const f = fileWith(edit(PROD));
    const r = await lunafleet(["config", "check", f, "--offline"]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(reason);
  });
});
