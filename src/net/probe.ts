// Daemon-side reachability probes: a TCP connect and a TLS handshake to an appliance's NTLS port. Luna NTLS server
// certificates are self-signed, so the chain is reported (authorized / authorizationError), never required; the
// caller decides what the certificate means by comparing fingerprints and expiry.
import { X509Certificate } from "node:crypto";
import net from "node:net";
import tls from "node:tls";

export interface TcpProbeResult {
  connected: boolean;
  /** Time to an established TCP connection (ms), when connected. */
  latencyMs?: number;
  error?: string;
}

export interface TlsProbeOptions {
  timeoutMs: number;
  /** Client certificate and key (PEM) for servers that require one, as NTLS does for registered clients. */
  clientCert?: string;
  clientKey?: string;
  /**
   * With a client certificate: wait briefly after the handshake for the server's verdict on it (TLS 1.3 completes
   * on the client before the server has judged the certificate); a server that then drops the line refused it.
   * For servers that hold an accepted client's line open, as NTLS does.
   */
  awaitClientCertVerdict?: boolean;
  /** Trust anchors (PEM) to evaluate the chain against; the handshake proceeds either way. */
  ca?: string;
  /** SNI name; never sent for IP addresses. */
  servername?: string;
}

export interface PresentedCertificate {
  subject: string;
  issuer: string;
  /** SHA-256 over the DER, colon-separated upper-case hex (as `openssl x509 -fingerprint -sha256` prints it). */
  fingerprint256: string;
  serialNumber: string;
  validFrom: string;
  validTo: string;
  /** Whole days until validTo, truncated toward zero (negative = days since it expired). */
  daysLeft: number;
  /**
   * Hours until validTo, exact to the hundredth (negative once expired): a 5-day certificate probed a minute after
   * it was made shows 119.98 here while `daysLeft` already says 4.
   */
  hoursLeft: number;
  expired: boolean;
  selfSigned: boolean;
}

export interface TlsProbeResult {
  connected: boolean;
  /** Time to an established TCP connection (ms). */
  latencyMs?: number;
  handshakeOk: boolean;
  /** Time from start to a completed handshake (ms). */
  handshakeMs?: number;
  protocol?: string;
  /** Whether the chain verified against `ca` (or the system store); expected false for self-signed NTLS. */
  authorized?: boolean;
  authorizationError?: string;
  cert?: PresentedCertificate;
  error?: string;
  /** The probe's own end of the connection, as the appliance logs it (`<address>/<port>` in NTLS syslog lines). */
  localAddress?: string;
  localPort?: number;
}

const DAY_MS = 86_400_000;

/**
 * One TLS context per set of client credentials and trust anchors, reused by every probe that uses the same: building
 * a context (the default trust store, the cipher list) cost more than the handshake itself on a 1,000-device sweep
 * (npm run bench, issue 15). A context carries configuration only; each connection has its own session.
 */
const contexts = new Map<string, tls.SecureContext>();
const MAX_CONTEXTS = 64;

function secureContextFor(opts: TlsProbeOptions): tls.SecureContext {
  const key = `${opts.clientCert ?? ""}\0${opts.clientKey ?? ""}\0${opts.ca ?? ""}`;
  let context = contexts.get(key);
  if (!context) {
    context = tls.createSecureContext({
      ...(opts.clientCert ? { cert: opts.clientCert } : {}),
      ...(opts.clientKey ? { key: opts.clientKey } : {}),
      ...(opts.ca ? { ca: opts.ca } : {}),
    });
    // A fleet has a handful of client identities; a bound keeps a process that probes with many from growing.
    if (contexts.size >= MAX_CONTEXTS) contexts.delete(contexts.keys().next().value as string);
    contexts.set(key, context);
  }
  return context;
}

export function probeTcp(host: string, port: number, timeoutMs: number): Promise<TcpProbeResult> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = net.connect({ host, port });
    const done = (r: TcpProbeResult) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(r);
    };
    const timer = setTimeout(
      () => done({ connected: false, error: `no TCP connection to ${host}:${port} within ${timeoutMs} ms` }),
      timeoutMs,
    );
    socket.once("connect", () => done({ connected: true, latencyMs: round(performance.now() - started) }));
    socket.once("error", (err: NodeJS.ErrnoException) =>
      done({ connected: false, error: `${err.code ?? "error"}: ${err.message}` }),
    );
  });
}

export function probeTls(host: string, port: number, opts: TlsProbeOptions): Promise<TlsProbeResult> {
  return new Promise((resolve) => {
    const started = performance.now();
    let latencyMs: number | undefined;
    const socket = tls.connect({
      host,
      port,
      // Self-signed NTLS certificates: evaluate the chain, report it, do not refuse the handshake over it.
      rejectUnauthorized: false,
      ...(opts.servername && net.isIP(opts.servername) === 0 ? { servername: opts.servername } : {}),
      secureContext: secureContextFor(opts),
    });
    let settled = false;
    const done = (r: Omit<TlsProbeResult, "connected" | "latencyMs">) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({
        connected: latencyMs !== undefined,
        ...(latencyMs !== undefined ? { latencyMs } : {}),
        ...(local.port !== undefined ? { localAddress: local.address, localPort: local.port } : {}),
        ...r,
      });
    };
    const timer = setTimeout(
      () =>
        done({
          handshakeOk: false,
          error:
            latencyMs === undefined
              ? `no TCP connection to ${host}:${port} within ${opts.timeoutMs} ms`
              : `TLS handshake with ${host}:${port} did not complete within ${opts.timeoutMs} ms`,
        }),
      opts.timeoutMs,
    );
    const local: { address?: string; port?: number } = {};
    socket.once("connect", () => {
      latencyMs = round(performance.now() - started);
      local.address = socket.localAddress;
      local.port = socket.localPort;
    });
    socket.once("secureConnect", () => {
      const peer = socket.getPeerX509Certificate();
      const authError = socket.authorizationError;
      const handshakeMs = round(performance.now() - started);
      // Read when called: with a client certificate that is after the server had time to refuse it.
      const accepted = () =>
        done({
          handshakeOk: true,
          handshakeMs,
          protocol: socket.getProtocol() ?? undefined,
          authorized: socket.authorized,
          ...(authError ? { authorizationError: String(authError) } : {}),
          ...(peer ? { cert: describeCertificate(peer) } : { error: "server presented no certificate" }),
        });
      if (opts.clientCert && opts.awaitClientCertVerdict) {
        // TLS 1.3: the client finishes before the server has judged the client certificate. A server that refuses
        // it ends the connection right after (alert or close); one that accepts it keeps the line open.
        const refused = (why: string) =>
          done({
            handshakeOk: false,
            handshakeMs,
            ...(peer ? { cert: describeCertificate(peer) } : {}),
            error: `the server refused the client certificate after the handshake (${why})`,
          });
        socket.once("error", (err: NodeJS.ErrnoException) =>
          refused(`${err.code ?? "error"}: ${err.message}`),
        );
        socket.once("close", () => refused("connection closed"));
        socket.once("end", () => refused("connection ended"));
        setTimeout(accepted, Math.min(CLIENT_CERT_SETTLE_MS, opts.timeoutMs)).unref();
        socket.resume();
        return;
      }
      accepted();
    });
    socket.once("error", (err: NodeJS.ErrnoException) =>
      done({ handshakeOk: false, error: `${err.code ?? "error"}: ${err.message}` }),
    );
  });
}

/** How long a handshake presenting a client certificate waits for the server's verdict on it. */
const CLIENT_CERT_SETTLE_MS = 300;

/** The facts an operator needs from a certificate; `now` is injectable so tests are exact. */
function describeCertificate(cert: X509Certificate, now: Date = new Date()): PresentedCertificate {
  const validTo = new Date(cert.validTo);
  const selfSigned = cert.subject === cert.issuer && safeVerify(cert);
  return {
    subject: oneLine(cert.subject),
    issuer: oneLine(cert.issuer),
    fingerprint256: cert.fingerprint256,
    serialNumber: cert.serialNumber,
    validFrom: new Date(cert.validFrom).toISOString(),
    validTo: validTo.toISOString(),
    // Whole days, truncated toward zero: 4.9 days left is "4", expired 3.2 days ago is "-3".
    daysLeft: Math.trunc((validTo.getTime() - now.getTime()) / DAY_MS) || 0,
    hoursLeft: Math.trunc((validTo.getTime() - now.getTime()) / (DAY_MS / 24 / 100)) / 100 || 0,
    expired: validTo.getTime() <= now.getTime(),
    selfSigned,
  };
}

/** Parse a PEM certificate and describe it (for comparing a presented certificate with a stored copy). */
export function describePem(pem: string, now?: Date): PresentedCertificate {
  return describeCertificate(new X509Certificate(pem), now);
}

function safeVerify(cert: X509Certificate): boolean {
  try {
    return cert.verify(cert.publicKey);
  } catch {
    return false;
  }
}

/** Node prints distinguished names one attribute per line; one line reads better in results and plans. */
function oneLine(dn: string): string {
  return dn.split("\n").filter(Boolean).join(", ");
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
