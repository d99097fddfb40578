// `lunafleet fleet trust` takes effect on the daemon's next job without a restart: the daemon's trust store (read at
// start) sees a key another process recorded since — and keeps what it had when the file changes under it.
import { mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { TrustStore, TrustStoreError } from "../../src/transport/trust-store.ts";

const dir = mkdtempSync(join(tmpdir(), "lf-trust-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const FP = (c: string) => `SHA256:${c.repeat(43)}`;

describe("trust store seen by a running daemon", () => {
  it("a key recorded by `fleet trust` (another process) is used at the next lookup, without a restart", () => {
    const file = join(dir, "known_hosts.json");
    const daemonView = new TrustStore(file); // the daemon's, read at its start: empty
    expect(daemonView.get("hsm-x", "10.0.0.9", 22)).toBeUndefined();
    const cli = new TrustStore(file); // `lunafleet fleet trust hsm-x --yes`
    cli.set("hsm-x", { fingerprint: FP("A"), host: "10.0.0.9", port: 22 });
    expect(daemonView.get("hsm-x", "10.0.0.9", 22)?.fingerprint).toBe(FP("A"));
    // The daemon records one of its own afterwards: the CLI's entry is kept, not overwritten by a stale copy.
    daemonView.set("hsm-y", { fingerprint: FP("B"), host: "10.0.0.10", port: 22 });
    const reread = new TrustStore(file);
    expect(reread.get("hsm-x")?.fingerprint).toBe(FP("A"));
    expect(reread.get("hsm-y")?.fingerprint).toBe(FP("B"));
  });

  it("a key recorded within the same timestamp tick is still seen (the file was replaced, same size, same mtime)", () => {
    const file = join(dir, "same-tick.json");
    // One timestamp tick, in whole seconds as a coarse filesystem clock gives it: set, not waited for.
    const tick = new Date("2026-01-01T00:00:00.000Z");
    const trust = (fingerprint: string) => {
      new TrustStore(file).set("hsm-x", {
        fingerprint,
        host: "10.0.0.9",
        port: 22,
        trustedAt: tick.toISOString(),
      });
      utimesSync(file, tick, tick);
      return statSync(file);
    };
    const before = trust(FP("A"));
    const daemonView = new TrustStore(file);
    expect(daemonView.get("hsm-x")?.fingerprint).toBe(FP("A"));
    // The operator re-trusts hsm-x after a key rotation, within the same tick: the replacing file has the same size
    // and the same mtime as the one the daemon read.
    const after = trust(FP("B"));
    expect(after.size).toBe(before.size);
    expect(after.mtimeMs).toBe(before.mtimeMs);
    expect(daemonView.get("hsm-x", "10.0.0.9", 22)?.fingerprint).toBe(FP("B"));
  });

  it("a store corrupted meanwhile stops the lookup with an error, it never becomes 'trust nothing' silently", () => {
    const file = join(dir, "corrupt.json");
    const view = new TrustStore(file);
    writeFileSync(file, "{ not json");
    expect(() => view.get("hsm-x")).toThrow(TrustStoreError);
  });
});
