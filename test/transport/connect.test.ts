// The SSH transport over real loopback SSH: host-key pinning refuses before any credential is offered, separate
// connect and authentication clocks, refused credentials are never retried, and the pool reuses and reconnects.

import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { connectSsh, probeHostKey } from "../../src/transport/connection.ts";
import { AuthFailed, ConnectionLost, ConnectTimeout, HostKeyMismatch } from "../../src/transport/errors.ts";
import { SshPool } from "../../src/transport/pool.ts";
import { TrustStore } from "../../src/transport/trust-store.ts";
import { FakeLunash, PASSWORD, silentListener, targetFor } from "./fake-lunash.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function fake(opts: ConstructorParameters<typeof FakeLunash>[0] = {}): Promise<FakeLunash> {
  const s = await new FakeLunash(opts).start();
  cleanups.push(() => s.stop());
  return s;
}

describe("host-key pinning", () => {
  it("refuses a different key before any authentication attempt", async () => {
    const s = await fake();
    const wrong = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    const err = await connectSsh(targetFor(s, { hostKey: wrong })).catch((e) => e);
    expect(err).toBeInstanceOf(HostKeyMismatch);
    expect(err.retryable).toBe(false);
    expect(err.message).toContain("hsm-fake");
    expect(err.message).toContain(wrong);
    expect(err.message).toContain(s.fingerprint);
    expect(err.expected).toBe(wrong);
    expect(err.received).toBe(s.fingerprint);
    expect(s.auths).toEqual([]); // the server never saw an auth request, let alone a password
  });

  it("refuses when no key is pinned anywhere (no trust on first use)", async () => {
    const s = await fake();
    const err = await connectSsh(targetFor(s)).catch((e) => e);
    expect(err).toBeInstanceOf(HostKeyMismatch);
    expect(err.message).toMatch(/no pinned host key/);
    expect(err.message).toContain("lunafleet fleet trust hsm-fake");
    expect(s.auths).toEqual([]);
  });

  it("accepts the pinned key from the fleet file, and from the trust store when the file has none", async () => {
    const s = await fake();
    const c1 = await connectSsh(targetFor(s, { hostKey: s.fingerprint }));
    expect(c1.fingerprint).toBe(s.fingerprint);
    c1.close();
    const store = new TrustStore(join(mkdtempSync(join(tmpdir(), "lf-trust-")), "known_hosts.json"));
    store.set("hsm-fake", { fingerprint: s.fingerprint, host: s.host, port: s.port });
    const c2 = await connectSsh(targetFor(s), { trustStore: new TrustStore(store.file) });
    expect(c2.alive).toBe(true);
    c2.close();
    // A trust entry for another address proves nothing about this one.
    const moved = new TrustStore(join(mkdtempSync(join(tmpdir(), "lf-trust-")), "k.json"));
    moved.set("hsm-fake", { fingerprint: s.fingerprint, host: "127.9.9.9", port: s.port });
    await expect(connectSsh(targetFor(s), { trustStore: moved })).rejects.toBeInstanceOf(HostKeyMismatch);
    // Exactly one password per successful connection; explicit authHandler: no 'none' probe.
    expect(s.auths.map((a) => a.method)).toEqual(["password", "password"]);
  });

  it("probeHostKey reads the key without authenticating", async () => {
    const s = await fake();
    expect(await probeHostKey(targetFor(s))).toBe(s.fingerprint);
    expect(s.auths).toEqual([]);
  });
});

describe("timeouts and failures", () => {
  it("connect timeout: a TCP listener that never speaks", async () => {
    const l = await silentListener();
    cleanups.push(() => l.close());
    // The connect clock runs on fake timers (the socket is real): the timeout is shown to fire when the test's clock
    // reaches connectMs, not before and not later, instead of bounding wall time, which load stretches.
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    try {
      let settled = false;
      const pending = connectSsh(targetFor({ host: "127.0.0.1", port: l.port }, { hostKey: "SHA256:x" }))
        .catch((e) => e)
        .finally(() => {
          settled = true;
        });
      await vi.advanceTimersByTimeAsync(1499);
      expect(settled).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      expect(settled).toBe(true);
      const err = await pending;
      expect(err).toBeInstanceOf(ConnectTimeout);
      expect(err.retryable).toBe(true);
      expect(err.message).toMatch(/hsm-fake: no SSH handshake with 127\.0\.0\.1:\d+ within 1500 ms/);
    } finally {
      vi.useRealTimers();
    }
  });

  it("authentication timeout: the server never answers the password", async () => {
    const s = await fake({ authHang: true });
    const err = await connectSsh(targetFor(s, { hostKey: s.fingerprint })).catch((e) => e);
    expect(err).toBeInstanceOf(AuthFailed);
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/authentication as 'admin' did not finish within 1500 ms/);
    expect(s.auths).toHaveLength(1);
  });

  it("refused credentials: AuthFailed, never retried by the pool, password not in the error", async () => {
    const s = await fake({ password: "Something-else-9" });
    const pool = new SshPool({ backoff: { attempts: 3, initialDelayMs: 10 } });
    cleanups.push(() => pool.closeAll());
    const err = await pool.connection(targetFor(s, { hostKey: s.fingerprint })).catch((e) => e);
    expect(err).toBeInstanceOf(AuthFailed);
    expect(err.message).not.toContain(PASSWORD);
    expect(s.auths).toHaveLength(1);
  });

  it("the pool retries a refused TCP connect with backoff, then reports ConnectionLost", async () => {
    const l = await silentListener();
    const port = l.port;
    await l.close(); // nothing listens there now
    const events: string[] = [];
    const pool = new SshPool({
      backoff: { attempts: 3, initialDelayMs: 20 },
      onEvent: (e) => events.push(e.type),
    });
    cleanups.push(() => pool.closeAll());
    const err = await pool
      .connection(targetFor({ host: "127.0.0.1", port }, { hostKey: "SHA256:x" }))
      .catch((e) => e);
    expect(err).toBeInstanceOf(ConnectionLost);
    expect(err.message).toMatch(/ECONNREFUSED/);
    expect(events).toEqual(["retry", "retry"]);
  });
});

describe("pool reuse and reconnect", () => {
  it("reuses one connection across callers and reconnects (new generation) after a drop", async () => {
    const s = await fake();
    const pool = new SshPool();
    cleanups.push(() => pool.closeAll());
    const t = targetFor(s, { hostKey: s.fingerprint });
    const [a, b] = await Promise.all([pool.connection(t), pool.connection(t)]);
    expect(a).toBe(b);
    expect(await pool.connection(t)).toBe(a);
    expect(s.auths).toHaveLength(1);
    const closed = new Promise<string>((r) => a.onClose(r));
    s.dropAll();
    expect(await closed).toMatch(/connection/);
    expect(a.alive).toBe(false);
    const c = await pool.connection(t);
    expect(c).not.toBe(a);
    expect(c.generation).toBeGreaterThan(a.generation);
    expect(c.alive).toBe(true);
    expect(s.auths).toHaveLength(2);
  });
});
