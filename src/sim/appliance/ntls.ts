// The appliance's NTLS listener (TCP 1792): mutual TLS the way a Luna appliance does it. The server presents its
// current server.pem; a client must present a certificate the appliance has registered (`client register`), or
// the handshake fails and the appliance's syslog gets the NTLS "unknown ca" sequence. A client with no certificate
// at all completes the handshake (a probe reading the presented certificate, as the daemon's cert check does) and
// is then closed: NTLS serves nobody it cannot identify.
//
// The TLS context is built per connection from the appliance's state at that moment, so `sysconf regenCert` and
// `client register` take effect for the next connection without restarting anything (a real appliance needs
// `service restart ntls`; the twin is kinder here, and says so).

import { X509Certificate } from "node:crypto";
import type { Server as NetServer, Socket } from "node:net";
import { createSecureContext, type SecureContext, TLSSocket } from "node:tls";
import type { ApplianceState } from "../state.ts";
import { listenExclusive } from "../tcp-listen.ts";
import { syslogLine } from "./power.ts";

/** NTLS runs as one process on the appliance; its pid appears in every syslog line it writes. */
const NTLS_PID = 8508;

/** The five lines a Luna appliance logs when a client's certificate is not trusted (reference §11). */
function ntlsHandshakeFailureLines(peer: string): string[] {
  return [
    `info : 0 : Incoming connection request... : ${peer}`,
    "Error message from SSLAccept is : error:14094418:SSL routines:ssl3_read_bytes:tlsv1 alert unknown ca",
    "Error during SSL accept ( RC_SSL_ERROR )",
    `info : 0xc0000711 : Fail to establish a secure channel with client : ${peer} : RC_SSL_FAILED_HANDSHAKE`,
    `info : 0 : NTLS Client "Unknown host name" Connection instance removed : ${peer}`,
  ];
}

export interface NtlsOptions {
  address: string;
  /** 0 = ephemeral. */
  port: number;
  state: ApplianceState;
}

export class NtlsListener {
  #opts: NtlsOptions;
  #tcp: NetServer | undefined;
  #sockets = new Set<Socket>();
  #port: number;
  #context: { key: string; ctx: SecureContext } | undefined;

  constructor(opts: NtlsOptions) {
    this.#opts = opts;
    this.#port = opts.port;
  }

  get address(): string {
    return this.#opts.address;
  }

  get port(): number {
    return this.#port;
  }

  get listening(): boolean {
    return this.#tcp !== undefined;
  }

  async start(): Promise<void> {
    if (this.#tcp) return;
    const { tcp, port } = await listenExclusive(this.#opts.address, this.#port, (socket) =>
      this.#onSocket(socket),
    );
    this.#port = port;
    this.#tcp = tcp;
  }

  /** Nothing listening afterwards (connection refused), and every open NTLS connection dropped. */
  async stop(): Promise<void> {
    const tcp = this.#tcp;
    this.#tcp = undefined;
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
    if (tcp) await new Promise<void>((resolve) => tcp.close(() => resolve()));
  }

  /** The TLS context for the appliance's current certificate and registered clients (cached until they change). */
  #secureContext(): SecureContext {
    const { state } = this.#opts;
    const trusted = [...state.clients.values()].map((c) => c.certPem);
    const key = [state.ntls.certPem, ...trusted].join("");
    if (this.#context?.key === key) return this.#context.ctx;
    const ctx = createSecureContext({
      cert: state.ntls.certPem,
      key: state.ntls.keyPem,
      // Client certificates are self-signed (`vtl createcert`): each registered one is its own trust anchor. The
      // server's own certificate stands in when no client is registered, so `ca` is never empty (an empty list
      // would fall back to the public root store).
      ca: trusted.length > 0 ? trusted : [state.ntls.certPem],
    });
    this.#context = { key, ctx };
    return ctx;
  }

  #onSocket(socket: Socket): void {
    const { state } = this.#opts;
    if (state.power !== "on" || !state.ntls.listening) {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    socket.on("error", () => {});
    this.#sockets.add(socket);
    socket.once("close", () => this.#sockets.delete(socket));
    const peer = `${socket.remoteAddress}/${socket.remotePort}`;
    const tls = new TLSSocket(socket, {
      isServer: true,
      secureContext: this.#secureContext(),
      requestCert: true,
      // Verification is ours (below): OpenSSL would refuse a certificate-less probe outright.
      rejectUnauthorized: false,
    });
    tls.on("error", () => socket.destroy());
    tls.once("secure", () => {
      const cert = tls.getPeerX509Certificate();
      if (!cert) {
        // A probe: it has read our certificate; NTLS serves nobody it cannot identify.
        tls.end();
        return;
      }
      if (!this.#isRegistered(cert)) {
        this.#logFailure(peer);
        // The appliance answers an unknown client with a fatal alert; dropping the line is what the peer sees.
        tls.destroy();
        return;
      }
      // A registered client. The twin speaks no NTLS protocol beyond the handshake: it holds the line until the
      // client leaves (what the daemon's tcp-check and the client's `vtl verify` probe need).
      tls.on("data", () => {});
      tls.on("end", () => tls.end());
    });
  }

  #isRegistered(cert: X509Certificate): boolean {
    const fp = cert.fingerprint256;
    for (const client of this.#opts.state.clients.values()) {
      try {
        if (new X509Certificate(client.certPem).fingerprint256 === fp) return true;
      } catch {
        // A registered client whose stored PEM does not parse trusts nobody.
      }
    }
    return false;
  }

  #logFailure(peer: string): void {
    const { state } = this.#opts;
    const at = new Date();
    for (const line of ntlsHandshakeFailureLines(peer))
      state.syslog.push(syslogLine(state, `NTLS[${NTLS_PID}]: ${line}`, at));
  }
}
