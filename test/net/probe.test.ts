import net from "node:net";
import tls from "node:tls";
import { afterAll, describe, expect, it } from "vitest";
import { describePem, probeTcp, probeTls } from "../../src/net/probe.ts";
import { generateSelfSignedCert } from "../../src/sim/certs.ts";

const servers: net.Server[] = [];
const sockets = new Set<net.Socket>();
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
});

async function listen(server: net.Server): Promise<number> {
  servers.push(server);
  // Track raw connections so afterAll can drop the ones a peer never closed (close() waits for them).
  server.on("connection", (s: net.Socket) => sockets.add(s));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  return (server.address() as net.AddressInfo).port;
}

describe("probeTcp", () => {
  it("connects and reports latency", async () => {
    const port = await listen(net.createServer((s) => s.end()));
    const r = await probeTcp("127.0.0.1", port, 2000);
    expect(r.connected).toBe(true);
    expect(r.latencyMs).toBeGreaterThanOrEqual(0);
    expect(r.latencyMs).toBeLessThan(2000);
  });

  it("reports a refused connection", async () => {
    const srv = net.createServer();
    const port = await listen(srv);
    await new Promise((r) => srv.close(r));
    servers.splice(servers.indexOf(srv), 1);
    const r = await probeTcp("127.0.0.1", port, 2000);
    expect(r.connected).toBe(false);
    expect(r.error).toMatch(/ECONNREFUSED/);
  });
});

describe("describePem: days and hours left", () => {
  it("keeps whole days truncated toward zero and adds the exact hours", async () => {
    const cert = await generateSelfSignedCert({ commonName: "hsm-days", validDays: 5 });
    const at = (msBefore: number) => new Date(cert.notAfter.getTime() - msBefore);
    const minute = 60_000;
    const justStarted = describePem(cert.certPem, at(5 * 86_400_000 - minute));
    expect(justStarted.daysLeft).toBe(4);
    expect(justStarted.hoursLeft).toBe(119.98);
    expect(describePem(cert.certPem, at(90 * minute)).hoursLeft).toBe(1.5);
    const expired = describePem(cert.certPem, at(-(2 * 86_400_000 + 36 * minute)));
    expect(expired.daysLeft).toBe(-2);
    expect(expired.hoursLeft).toBe(-48.6);
  });
});

/** A TLS server (certificate for 127.0.0.1) that requires a client certificate and trusts only `clientName`'s. */
async function mtlsServer(serverName: string, clientName: string, onSecure: (s: tls.TLSSocket) => void) {
  const server = await generateSelfSignedCert({
    commonName: serverName,
    validDays: 30,
    altNames: ["127.0.0.1"],
  });
  const client = await generateSelfSignedCert({ commonName: clientName, validDays: 30 });
  const options = {
    cert: server.certPem,
    key: server.keyPem,
    requestCert: true,
    rejectUnauthorized: true,
    ca: client.certPem,
  };
  const port = await listen(tls.createServer(options, onSecure));
  return { server, client, port };
}

describe("probeTls", () => {
  it("completes the handshake with a self-signed NTLS-like certificate and reports it without trusting it", async () => {
    const cert = await generateSelfSignedCert({ commonName: "hsm-probe-test", validDays: 5 });
    const port = await listen(tls.createServer({ cert: cert.certPem, key: cert.keyPem }, (s) => s.end()));
    const r = await probeTls("127.0.0.1", port, { timeoutMs: 3000 });
    expect(r).toMatchObject({ connected: true, handshakeOk: true, authorized: false });
    expect(r.authorizationError).toMatch(/SELF_SIGNED/);
    expect(r.cert?.fingerprint256).toBe(cert.fingerprintSha256);
    expect(r.cert?.subject).toContain("CN=hsm-probe-test");
    expect(r.cert?.selfSigned).toBe(true);
    expect(r.cert?.expired).toBe(false);
    // Valid for 5 days from "now" at generation: 4 whole days and some hours are left.
    expect(r.cert?.daysLeft).toBe(4);
    expect(r.cert?.validTo).toBe(cert.notAfter.toISOString());
    // ...and the exact figure: just under 120 hours (whole seconds in the certificate, a few ms spent since).
    expect(r.cert?.hoursLeft).toBeGreaterThan(119.9);
    expect(r.cert?.hoursLeft).toBeLessThanOrEqual(120);
  });

  it("verifies the chain when given the certificate as CA, and presents a client certificate when asked", async () => {
    const { server, client, port } = await mtlsServer("hsm-mtls", "daemon-client", (s) => s.end());
    const r = await probeTls("127.0.0.1", port, {
      timeoutMs: 3000,
      ca: server.certPem,
      clientCert: client.certPem,
      clientKey: client.keyPem,
    });
    expect(r).toMatchObject({ connected: true, handshakeOk: true, authorized: true });
    expect(r.cert?.daysLeft).toBe(29);
  });

  it("keeps one TLS context per client identity and anchors, never one for another's", async () => {
    // Like NTLS: a registered client's line stays open, any other client certificate is refused.
    const { server, client, port } = await mtlsServer("hsm-ntls", "registered-client", () => {});
    const stranger = await generateSelfSignedCert({ commonName: "not-registered", validDays: 30 });
    const as = (who: { certPem: string; keyPem: string }, ca?: string) =>
      probeTls("127.0.0.1", port, {
        timeoutMs: 3000,
        clientCert: who.certPem,
        clientKey: who.keyPem,
        awaitClientCertVerdict: true,
        ...(ca ? { ca } : {}),
      });
    // Each probe after the first of its kind reuses a context (src/net/probe.ts); the answers must not mix.
    for (let round = 0; round < 2; round++) {
      expect(await as(client, server.certPem)).toMatchObject({ handshakeOk: true, authorized: true });
      const refused = await as(stranger, server.certPem);
      expect(refused.handshakeOk).toBe(false);
      expect(refused.error).toMatch(/refused the client certificate/);
      expect(await as(client)).toMatchObject({ handshakeOk: true, authorized: false });
    }
  });

  it("reports an expired certificate with the days since expiry", async () => {
    const cert = await generateSelfSignedCert({ commonName: "hsm-expired", validDays: -3 });
    const port = await listen(tls.createServer({ cert: cert.certPem, key: cert.keyPem }, (s) => s.end()));
    const r = await probeTls("127.0.0.1", port, { timeoutMs: 3000 });
    expect(r.handshakeOk).toBe(true);
    expect(r.cert?.expired).toBe(true);
    expect(r.cert?.daysLeft).toBe(-3);
    expect(r.cert?.hoursLeft).toBeLessThanOrEqual(-72);
    expect(r.cert?.hoursLeft).toBeGreaterThan(-72.1);
    expect(r.authorizationError).toMatch(/EXPIRED/);
  });

  it("times out on a peer that accepts TCP but never speaks TLS", async () => {
    const port = await listen(net.createServer(() => {}));
    // The probe's own timer ends it (its message names the 300 ms); one that never fired would hang until the test's
    // timeout. No wall-clock bound here: load stretches those.
    const r = await probeTls("127.0.0.1", port, { timeoutMs: 300 });
    expect(r.connected).toBe(true);
    expect(r.handshakeOk).toBe(false);
    expect(r.error).toMatch(/did not complete within 300 ms/);
  });

  it("reports a handshake failure from a non-TLS peer", async () => {
    const port = await listen(net.createServer((s) => s.end("SSH-2.0-not-tls\r\n")));
    const r = await probeTls("127.0.0.1", port, { timeoutMs: 3000 });
    expect(r.connected).toBe(true);
    expect(r.handshakeOk).toBe(false);
    expect(r.error).toBeTruthy();
    expect(r.cert).toBeUndefined();
  });
});
