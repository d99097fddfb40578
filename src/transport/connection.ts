// One authenticated SSH connection (ssh2) to a device or client host.
//
// Order of events is the safety argument: TCP connect -> key exchange -> host key checked against the pin ->
// only then does the authHandler hand ssh2 a credential. A missing or different pin makes the verifier refuse
// the key, ssh2 drops the connection, and no credential was ever revealed.
// Three separate clocks: connect (TCP + key exchange), authentication (handshake -> ready), and per command
// (in the shell driver). Nagle is off (setNoDelay) and the auth method is explicit (no 'none' probe): see
// shared/reference/ssh-performance.md.
import { Socket } from "node:net";
import {
  type AuthHandlerMiddleware,
  Client,
  type ClientChannel,
  type PseudoTtyOptions,
  type SFTPWrapper,
} from "ssh2";
import { BaseShellChannel, type ShellChannel } from "./channel.ts";
import {
  AuthFailed,
  ConnectionLost,
  ConnectTimeout,
  type DeviceOpError,
  HostKeyMismatch,
  SftpStatus,
} from "./errors.ts";
import { fingerprintsEqual, sshFingerprint } from "./fingerprint.ts";
import type { SshTarget } from "./target.ts";
import type { TrustStore } from "./trust-store.ts";

/** Keepalive: ssh2 pings every keepaliveMs; this many unanswered pings declare the connection dead. */
const KEEPALIVE_COUNT_MAX = 3;

/** A wide, tall pty so the device never wraps a line (wrapping would break echo stripping and parsing). */
const PTY: PseudoTtyOptions = { term: "vt100", cols: 512, rows: 200, width: 0, height: 0 };

let nextGeneration = 1;

export interface ConnectOptions {
  trustStore?: TrustStore | undefined;
  /** Probe only: record the key, never authenticate (for `lunafleet fleet trust`). */
  probe?: (fingerprint: string) => void;
}

export class SshConnection {
  #alive = true;
  #closeReason: string | undefined;
  readonly #closeListeners: ((reason: string) => void)[] = [];
  /** Increases with every new connection in this process: a shell knows whether it outlived its connection. */
  readonly generation = nextGeneration++;

  constructor(
    readonly target: SshTarget,
    readonly fingerprint: string,
    private readonly client: Client,
    private readonly sock: Socket,
  ) {
    const onGone = (reason: string) => {
      if (!this.#alive) return;
      this.#alive = false;
      this.#closeReason = reason;
      for (const l of this.#closeListeners.splice(0)) l(reason);
    };
    client.on("error", (err) => onGone(`connection error: ${err.message}`));
    client.on("close", () => onGone("connection closed"));
    client.on("end", () => onGone("connection ended by peer"));
  }

  get alive(): boolean {
    return this.#alive;
  }

  get closeReason(): string | undefined {
    return this.#closeReason;
  }

  onClose(listener: (reason: string) => void): void {
    if (!this.#alive) queueMicrotask(() => listener(this.#closeReason ?? "closed"));
    else this.#closeListeners.push(listener);
  }

  /** Open an interactive shell (pty, echo off where the server honours it). */
  openShell(): Promise<ShellChannel> {
    if (!this.#alive)
      return Promise.reject(
        new ConnectionLost({ target: this.target.name, cause: this.#closeReason ?? "connection closed" }),
      );
    return new Promise((resolve, reject) => {
      this.client.shell({ ...PTY, modes: { ECHO: 0 } }, (err, stream) => {
        if (err) {
          reject(
            new ConnectionLost({ target: this.target.name, cause: `cannot open shell: ${err.message}` }),
          );
          return;
        }
        resolve(new SshShellChannel(this.target.name, stream));
      });
    });
  }

  /**
   * Run one command on an exec channel (no pty) and collect its output and exit status. For fixed, engine-built
   * commands only (file reads/writes on a client host); interactive work goes through openShell and the policy.
   */
  exec(command: string, timeoutMs: number): Promise<{ output: string; exitCode: number | null }> {
    if (!this.#alive)
      return Promise.reject(
        new ConnectionLost({ target: this.target.name, cause: this.#closeReason ?? "connection closed" }),
      );
    return new Promise((resolve, reject) => {
      const lost = (cause: string) => new ConnectionLost({ target: this.target.name, cause });
      this.client.exec(command, (err, stream) => {
        if (err) {
          reject(lost(`cannot open exec channel: ${err.message}`));
          return;
        }
        let output = "";
        let exitCode: number | null = null;
        const timer = setTimeout(() => {
          stream.close();
          reject(lost(`exec did not finish within ${timeoutMs} ms`));
        }, timeoutMs);
        stream.setEncoding("utf8");
        stream.on("data", (chunk: string) => {
          output += chunk;
        });
        stream.stderr.on("data", (chunk: Buffer | string) => {
          output += chunk.toString();
        });
        stream.on("exit", (code: number | null) => {
          exitCode = code;
        });
        stream.on("close", () => {
          clearTimeout(timer);
          // A channel that closed without an exit status was cut (connection dropped), not finished.
          if (exitCode === null) reject(lost("exec channel closed without an exit status"));
          else resolve({ output, exitCode });
        });
      });
    });
  }

  /** Read or write one file over the sftp subsystem (an appliance's scp area: `server.pem`, client certificates). */
  async sftpReadFile(path: string, timeoutMs: number): Promise<Buffer> {
    return this.#withSftp(`sftp get ${path}`, timeoutMs, (sftp, done) =>
      sftp.readFile(path, (err, data) => done(err, data)),
    );
  }

  async sftpWriteFile(path: string, data: string, timeoutMs: number): Promise<void> {
    await this.#withSftp<void>(`sftp put ${path}`, timeoutMs, (sftp, done) =>
      sftp.writeFile(path, data, (err) => done(err)),
    );
  }

  #withSftp<T>(
    command: string,
    timeoutMs: number,
    use: (sftp: SFTPWrapper, done: (err: Error | null | undefined, value?: T) => void) => void,
  ): Promise<T> {
    if (!this.#alive)
      return Promise.reject(
        new ConnectionLost({ target: this.target.name, cause: this.#closeReason ?? "connection closed" }),
      );
    return new Promise((resolve, reject) => {
      const lost = (cause: string) => new ConnectionLost({ target: this.target.name, cause });
      this.client.sftp((err, sftp) => {
        if (err) {
          reject(lost(`cannot open sftp: ${err.message}`));
          return;
        }
        let settled = false;
        const timer = setTimeout(
          () => finish(new Error(`sftp did not finish within ${timeoutMs} ms`)),
          timeoutMs,
        );
        const finish = (e: Error | null | undefined, value?: T) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          sftp.end();
          if (!e) resolve(value as T);
          // A status from the server (no such file, permission denied) is the device's answer, not a lost line.
          else if ("code" in e && typeof e.code === "number")
            reject(new SftpStatus({ target: this.target.name, command }, String(e.code), e.message));
          else reject(lost(`${command}: ${e.message}`));
        };
        sftp.on("close", () => finish(new Error("sftp channel closed")));
        use(sftp, finish);
      });
    });
  }

  close(): void {
    this.client.end();
    // end() is polite; make sure the socket really goes even if the peer never answers.
    setTimeout(() => this.sock.destroy(), 1000).unref();
  }

  /** Drop immediately (after a fault or a timeout): no goodbye to a peer that is misbehaving. */
  destroy(): void {
    this.client.destroy();
    this.sock.destroy();
  }
}

class SshShellChannel extends BaseShellChannel {
  constructor(
    target: string,
    private readonly stream: ClientChannel,
  ) {
    super(target);
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => this.emitData(chunk));
    stream.stderr.on("data", (chunk: Buffer | string) => this.emitData(chunk.toString()));
    stream.on("close", () => this.markClosed("shell channel closed"));
    stream.on("error", (err: Error) => this.markClosed(`shell channel error: ${err.message}`));
  }

  write(data: string): void {
    if (!this.closed) this.stream.write(data);
  }

  close(): void {
    if (this.closed) return;
    this.stream.close();
    this.markClosed("closed by lunafleet");
  }
}

/** The pinned fingerprint for a target: the fleet file first, else the trust store (same host and port). */
function expectedHostKey(target: SshTarget, trustStore?: TrustStore): string | undefined {
  return target.hostKey ?? trustStore?.get(target.name, target.host, target.port)?.fingerprint;
}

/**
 * Connect and authenticate. Rejects with HostKeyMismatch, ConnectTimeout, AuthFailed or ConnectionLost.
 * `retryable` on the rejection is true only when no credential was offered yet.
 */
export function connectSsh(target: SshTarget, opts: ConnectOptions = {}): Promise<SshConnection> {
  const { connectMs, authMs, keepaliveMs } = target.timeouts;
  const expected = opts.probe ? undefined : expectedHostKey(target, opts.trustStore);

  return new Promise((resolve, reject) => {
    const client = new Client();
    const sock = new Socket();
    sock.setNoDelay(true);
    let phase: "connect" | "auth" | "done" = "connect";
    let received: string | undefined;
    let hostKeyError: DeviceOpError | undefined;
    let authOffered = false;
    let timer: NodeJS.Timeout | undefined;

    const fail = (err: DeviceOpError) => {
      if (phase === "done") return;
      phase = "done";
      clearTimeout(timer);
      client.removeAllListeners("ready");
      client.destroy();
      sock.destroy();
      reject(err);
    };

    timer = setTimeout(
      () =>
        fail(
          new ConnectTimeout({
            target: target.name,
            cause: `no SSH handshake with ${target.host}:${target.port} within ${connectMs} ms`,
          }),
        ),
      connectMs,
    );

    const hostVerifier = (key: Buffer): boolean => {
      received = sshFingerprint(key);
      if (opts.probe) {
        opts.probe(received);
        hostKeyError = new HostKeyMismatch(target.name, undefined, received);
        return false; // a probe never authenticates
      }
      if (expected !== undefined && fingerprintsEqual(expected, received)) return true;
      hostKeyError = new HostKeyMismatch(target.name, expected, received);
      return false;
    };

    const authHandler: AuthHandlerMiddleware = (_methodsLeft, _partial, next) => {
      // Belt and braces: ssh2 asks for credentials only after the verifier accepted, but refuse anyway if not.
      if (received === undefined || hostKeyError !== undefined || authOffered) {
        next(false as never);
        return;
      }
      authOffered = true;
      let creds: ReturnType<SshTarget["credentials"]>;
      try {
        creds = target.credentials();
      } catch (err) {
        fail(new AuthFailed({ target: target.name, cause: (err as Error).message }));
        return;
      }
      if (creds.privateKey)
        next({ type: "publickey", username: target.user, key: creds.privateKey.reveal() });
      else if (creds.password)
        next({ type: "password", username: target.user, password: creds.password.reveal() });
      else next(false as never);
    };

    client.on("handshake", () => {
      if (phase !== "connect") return;
      phase = "auth";
      clearTimeout(timer);
      timer = setTimeout(
        () =>
          fail(
            new AuthFailed({
              target: target.name,
              cause: `authentication as '${target.user}' did not finish within ${authMs} ms (outcome unknown)`,
            }),
          ),
        authMs,
      );
    });

    client.on("ready", () => {
      if (phase === "done") return;
      phase = "done";
      clearTimeout(timer);
      resolve(new SshConnection(target, received ?? "", client, sock));
    });

    client.on("error", (err: Error & { level?: string; code?: string }) => {
      if (phase === "done") return;
      if (hostKeyError) return fail(hostKeyError);
      if (err.level === "client-authentication")
        return fail(
          new AuthFailed({
            target: target.name,
            cause: `the device refused the credentials for '${target.user}'`,
          }),
        );
      const cause = err.code ? `${err.code} ${err.message}` : err.message;
      if (phase === "connect")
        return fail(
          new ConnectionLost({
            target: target.name,
            cause: `cannot connect to ${target.host}:${target.port}: ${cause}`,
          }),
        );
      // Lost during authentication: whether the credential was judged is unknown, so never retry blindly.
      return fail(
        new ConnectionLost({
          target: target.name,
          cause: `connection lost during authentication: ${cause}`,
          retryable: !authOffered,
        }),
      );
    });

    client.on("close", () => {
      if (phase === "done") return;
      if (hostKeyError) return fail(hostKeyError);
      fail(
        new ConnectionLost({
          target: target.name,
          cause: `connection closed by ${target.host}:${target.port} before it was ready`,
          retryable: !authOffered,
        }),
      );
    });

    sock.connect({ host: target.host, port: target.port });
    client.connect({
      sock,
      username: target.user,
      readyTimeout: 0, // our own connect/auth clocks above
      keepaliveInterval: keepaliveMs,
      keepaliveCountMax: KEEPALIVE_COUNT_MAX,
      hostVerifier,
      authHandler,
    });
  });
}

/** Connect far enough to read the host key, then drop; never authenticates. */
export async function probeHostKey(target: SshTarget): Promise<string> {
  let seen: string | undefined;
  try {
    await connectSsh(target, { probe: (fp) => (seen = fp) });
  } catch (err) {
    if (seen !== undefined) return seen;
    throw err;
  }
  throw new Error(`probe of ${target.name} unexpectedly authenticated`);
}
