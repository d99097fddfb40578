// `lunafleet fleet trust`: shows the fingerprint, refuses to record without a terminal unless --yes, records with
// --yes, and the recorded key then lets the transport connect.
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectSsh } from "../../src/transport/connection.ts";
import { TrustStore } from "../../src/transport/trust-store.ts";
import { FakeLunash, PASSWORD, targetFor } from "./fake-lunash.ts";

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, "../..");
let server: FakeLunash;
let dir: string;
let fleetFile: string;

beforeAll(async () => {
  server = await new FakeLunash().start();
  dir = mkdtempSync(join(tmpdir(), "lf-fleet-trust-"));
  fleetFile = join(dir, "fleet.yaml");
  writeFileSync(
    fleetFile,
    [
      "version: 1",
      "twin: true",
      "devices:",
      `  - { name: hsm-fake, host: ${server.host}, port: ${server.port}, serial: "700999", credentials: { appliance: "${PASSWORD}" } }`,
      "",
    ].join("\n"),
  );
});
afterAll(() => server.stop());

async function trust(...extra: string[]) {
  try {
    const r = await run(
      process.execPath,
      ["--import", "tsx", "src/cli/main.ts", "fleet", "trust", "hsm-fake", "--fleet", fleetFile, ...extra],
      {
        cwd: repo,
        env: { ...process.env, LUNAFLEET_DATA_DIR: join(dir, "data"), CI: "1" },
      },
    );
    return { code: 0, out: r.stdout, err: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, out: x.stdout, err: x.stderr };
  }
}

describe("lunafleet fleet trust", () => {
  it("refuses without --yes when there is no terminal, records with --yes, then connects", async () => {
    const store = join(dir, "data", "known_hosts.json");
    const refused = await trust();
    expect(refused.code).toBe(1);
    expect(refused.out).toContain(server.fingerprint);
    expect(refused.err).toMatch(/not recorded: no terminal/);
    expect(existsSync(store)).toBe(false);

    const ok = await trust("--yes");
    expect(ok.code).toBe(0);
    expect(ok.out).toContain(`trusted, recorded in ${store}`);
    expect(JSON.parse(readFileSync(store, "utf8"))["hsm-fake"].fingerprint).toBe(server.fingerprint);

    const again = await trust();
    expect(again.code).toBe(0);
    expect(again.out).toMatch(/already trusted/);

    const conn = await connectSsh(targetFor(server), { trustStore: new TrustStore(store) });
    expect(conn.fingerprint).toBe(server.fingerprint);
    conn.close();
    // Probing never authenticated: the only auth the server saw is the final connect.
    expect(server.auths).toHaveLength(1);
  }, 30_000);
});
