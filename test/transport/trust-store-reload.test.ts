// `lunafleet fleet trust` takes effect on the daemon's next job without a restart: the daemon's trust store (read at
// start) sees a key another process recorded since — and keeps what it had when the file changes under it.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
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

  it("a store corrupted meanwhile stops the lookup with an error, it never becomes 'trust nothing' silently", () => {
    const file = join(dir, "corrupt.json");
    const view = new TrustStore(file);
    writeFileSync(file, "{ not json");
    expect(() => view.get("hsm-x")).toThrow(TrustStoreError);
  });
});
