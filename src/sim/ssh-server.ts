// Over 400 lines: one ssh2 server lifecycle (listener, authentication, channels, abrupt teardown) whose parts share
//  each connection's state.
// A generic SSH server for the twin: one ssh2 protocol engine over our own TCP listener, hosting a ShellHost.
// We own the listener (not ssh2's) so we can refuse a connection before the SSH banner (a powered-off appliance),
// turn Nagle off on every socket, and tear a TCP connection down abruptly (the `drop` fault, a reboot).
// Nothing here runs on a timer of its own: a thousand of these must idle in one process for free.
import { createHash, createPrivateKey, sign as cryptoSign, timingSafeEqual } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import type { Server as NetServer, Socket } from "node:net";
import { join } from "node:path";
import { StringDecoder } from "node:string_decoder";
import type { AuthContext, Connection, ParsedKey, ServerChannel, SFTPWrapper } from "ssh2";
import ssh2 from "ssh2";
import type { InteractiveShell, ShellHost, ShellIO } from "./shell-session.ts";
import { listenExclusive } from "./tcp-listen.ts";

const { Server: Ssh2Server, utils } = ssh2;

// ---------------------------------------------------------------------------------------------------------------
// Host keys

export interface HostKey {
  /** OpenSSH-format private key (what ssh2 `utils.generateKeyPairSync` returns). */
  privateKey: string;
  /** `SHA256:<base64>` as `ssh-keygen -lf` prints it. */
  fingerprint: string;
}

/** OpenSSH fingerprint of a public key blob: SHA-256, base64 without padding. */
export function sshFingerprint(publicSsh: Buffer): string {
  return `SHA256:${createHash("sha256").update(publicSsh).digest("base64").replace(/=+$/, "")}`;
}

function parseOne(key: string | Buffer): ParsedKey {
  const parsed = utils.parseKey(key);
  if (parsed instanceof Error) throw new Error(`cannot parse SSH key: ${parsed.message}`);
  const one = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!one) throw new Error("cannot parse SSH key: empty key file");
  return one;
}

function hostKeyFromPrivate(privateKey: string): HostKey {
  return { privateKey, fingerprint: sshFingerprint(parseOne(privateKey).getPublicSSH()) };
}

/**
 * An ed25519 key pair in OpenSSH format. ssh2's generator writes a malformed key about once in 250 (a public key whose
 * leading zero byte was dropped, 31 bytes instead of 32); such a key fails to parse, so draw again.
 */
export function generateEd25519KeyPair(): { private: string; public: string } {
  for (let attempt = 0; ; attempt++) {
    const pair = utils.generateKeyPairSync("ed25519");
    if (!(utils.parseKey(pair.private) instanceof Error) || attempt >= 20) return pair;
  }
}

export function generateHostKey(): HostKey {
  return hostKeyFromPrivate(generateEd25519KeyPair().private);
}

/**
 * The host key as ssh2's server uses it, signing with a KeyObject parsed once: ssh2 hands OpenSSL the PEM text at
 * every handshake, and parsing it costs ~0.4 ms of the twin's ~2.5 ms per login (benchmark profile). Ed25519 only
 * (what the twin generates); other key types keep ssh2's own signing.
 */
export function signingHostKey(privateKey: string): ParsedKey {
  const parsed = parseOne(privateKey);
  if (parsed.type !== "ssh-ed25519") return parsed;
  const keyObject = createPrivateKey(parsed.getPrivatePEM());
  const sign = (data: Buffer): Buffer | Error => {
    try {
      return cryptoSign(null, data, keyObject);
    } catch (err) {
      return err as Error;
    }
  };
  Object.defineProperty(parsed, "sign", { value: sign });
  return parsed;
}

/**
 * The host key named `name` in `dir`, created on first use so a restarted twin keeps its identity (and the
 * daemon's pinned fingerprints stay valid). Without a dir, a fresh key per start.
 */
export function loadOrCreateHostKey(name: string, dir?: string): HostKey {
  if (!dir) return generateHostKey();
  const file = join(dir, `${name}.ed25519`);
  try {
    return hostKeyFromPrivate(readFileSync(file, "utf8"));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const key = generateHostKey();
  writeFileSync(file, key.privateKey, { mode: 0o600 });
  return key;
}

// ---------------------------------------------------------------------------------------------------------------
// Users, sessions, faults

export interface SshUser {
  password?: string;
  /** Authorized public keys, OpenSSH one-line form (`ssh-ed25519 AAAA... comment`) or PEM. */
  publicKeys?: string[];
}

export interface SessionRecord {
  session: number;
  user: string;
  kind: "shell" | "exec" | "sftp";
  /** `address/port` of the peer, as Luna logs print it. */
  peer: string;
  openedAt: number;
  closedAt?: number;
}

/** Faults the carrier applies to a session's output (the interpreters stay unaware of them). */
export interface CarrierFaults {
  /** Every write is delayed by this many milliseconds. */
  slowReplyMs?: number;
  /** When an entered command starts with this text, the connection drops in the middle of its output. */
  dropMidCommand?: string;
  /** When an entered command starts with this text, its output (not the prompt) comes back garbled. */
  garbleCommand?: string;
  /**
   * When an entered command starts with `command`, its output is held back until `released` settles (the twin's
   * `hold` fault): a job sits inside that command for exactly as long as a test wants to look at it, with no timer.
   */
  hold?: { command: string; released: Promise<void> };
}

/** Process-wide session ids: unique across every twin server, so logs of several devices never collide. */
let nextSession = 1;

export interface SshServerOptions {
  /** Name used in errors and logs (device or client host name). */
  name: string;
  address: string;
  /** 0 = ephemeral. */
  port: number;
  hostKey: HostKey;
  /** The account for a login name (looked up at each attempt, so a changed password applies at once). */
  users: (name: string) => SshUser | undefined;
  host: ShellHost;
  /** False = the machine is not up: connections are dropped before the SSH banner, input drops the session. */
  isUp?: () => boolean;
  /** Current faults (read at each write, so they can change at run time). */
  faults?: () => CarrierFaults | undefined;
  /** How long an authenticated login takes before it is accepted (a latency profile; default at once). */
  loginDelayMs?: () => number;
  /** Replaces `host.exec` for the commands it claims (scp on an appliance). Return false to fall through. */
  execHandler?: (command: string, channel: ServerChannel, ctx: ChannelContext) => boolean;
  /** The sftp subsystem; absent = refused. */
  sftpHandler?: (sftp: SFTPWrapper, ctx: ChannelContext) => void;
  /** A session opened (the record is later completed with closedAt in place). */
  onSession?: (record: SessionRecord) => void;
  /** After interpreter input was handled or a session ended: lets the owner react to state changes. */
  afterActivity?: () => void;
}

export interface ChannelContext {
  user: string;
  session: number;
  peer: string;
}

/** One SSH server on one address:port. `start()` binds; `stop()` unbinds and drops every connection. */
export class TwinSshServer {
  readonly name: string;
  readonly hostKeyFingerprint: string;
  readonly sessions: SessionRecord[] = [];
  #opts: SshServerOptions;
  #ssh: InstanceType<typeof Ssh2Server>;
  #tcp: NetServer | undefined;
  #sockets = new Set<Socket>();
  #address: string;
  #port: number;

  constructor(opts: SshServerOptions) {
    this.#opts = opts;
    this.name = opts.name;
    this.hostKeyFingerprint = opts.hostKey.fingerprint;
    this.#address = opts.address;
    this.#port = opts.port;
    this.#ssh = new Ssh2Server({ hostKeys: [{ key: signingHostKey(opts.hostKey.privateKey) }] });
    this.#ssh.on("connection", (conn: Connection, info: { ip: string; port: number }) =>
      this.#onConnection(conn, info),
    );
  }

  get address(): string {
    return this.#address;
  }

  /** The bound port (the real one when started with port 0). */
  get port(): number {
    return this.#port;
  }

  get listening(): boolean {
    return this.#tcp !== undefined;
  }

  /** Bind the listener. Rejects with the listen error (EADDRINUSE...) so callers can pick another address. */
  async start(): Promise<void> {
    if (this.#tcp) return;
    const { tcp, port } = await listenExclusive(this.#address, this.#port, (socket) =>
      this.#onSocket(socket),
    );
    this.#port = port;
    this.#tcp = tcp;
  }

  /** Unbind and drop every connection (a machine that went dark). `start()` binds again on the same port. */
  async stop(): Promise<void> {
    const tcp = this.#tcp;
    this.#tcp = undefined;
    this.dropAll();
    if (tcp) await new Promise<void>((resolve) => tcp.close(() => resolve()));
  }

  /** Tear down every TCP connection at once, without SSH disconnect messages. */
  dropAll(): void {
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
  }

  get connectionCount(): number {
    return this.#sockets.size;
  }

  #up(): boolean {
    return this.#opts.isUp ? this.#opts.isUp() : true;
  }

  #onSocket(socket: Socket): void {
    if (!this.#up()) {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    this.#sockets.add(socket);
    socket.once("close", () => this.#sockets.delete(socket));
    // A peer that resets mid-handshake emits an error; the close handler above does the bookkeeping.
    socket.on("error", () => {});
    this.#ssh.injectSocket(socket);
  }

  #socketOf(info: { ip: string; port: number }): Socket | undefined {
    for (const s of this.#sockets) if (s.remotePort === info.port && s.remoteAddress === info.ip) return s;
    return undefined;
  }

  #onConnection(conn: Connection, info: { ip: string; port: number }): void {
    const socket = this.#socketOf(info);
    const peer = `${info.ip}/${info.port}`;
    const drop = () => {
      if (socket) socket.destroy();
      else conn.end();
    };
    let user = "";
    const records: SessionRecord[] = [];
    const open = (kind: SessionRecord["kind"]) => {
      const r = this.#openRecord(user, kind, peer);
      records.push(r);
      return r;
    };
    conn.on("error", () => {});
    // However the connection ends, every session it carried is over.
    conn.on("close", () => {
      for (const r of records) this.#closeRecord(r);
    });
    conn.on("authentication", (ctx) => {
      if (this.#authenticate(ctx)) {
        user = ctx.username;
        // A publickey query (no signature yet) is only answered; the login is the request that follows.
        const logsIn = ctx.method !== "publickey" || Boolean(ctx.signature);
        const delay = logsIn ? (this.#opts.loginDelayMs?.() ?? 0) : 0;
        if (delay > 0) setTimeout(() => ctx.accept(), delay);
        else ctx.accept();
      } else {
        // No detail, no hint about which part was wrong: only the methods that exist.
        ctx.reject(["password", "publickey"]);
      }
    });
    conn.on("session", (acceptSession) => {
      const session = acceptSession();
      let pty = false;
      session.on("pty", (accept) => {
        pty = true;
        accept?.();
      });
      session.on("window-change", (accept) => accept?.());
      session.on("env", (accept) => accept?.());
      session.on("shell", (accept) => {
        const channel = accept();
        this.#runShell(channel, open("shell"), { pty, drop });
      });
      session.on("exec", (accept, _reject, info) => {
        const channel = accept();
        this.#runExec(channel, info.command, open("exec"), { pty, drop });
      });
      session.on("sftp", (accept, reject) => {
        const handler = this.#opts.sftpHandler;
        if (!handler) {
          reject();
          return;
        }
        const sftp = accept();
        const record = open("sftp");
        sftp.on("close", () => this.#closeRecord(record));
        handler(sftp, { user, session: record.session, peer });
      });
      session.on("subsystem", (_accept, reject) => reject());
    });
  }

  #authenticate(ctx: AuthContext): boolean {
    const account = this.#opts.users(ctx.username);
    if (!account) return false;
    if (ctx.method === "password") {
      return account.password !== undefined && equalSecret(ctx.password, account.password);
    }
    if (ctx.method === "publickey") {
      const offered = ctx.key.data;
      const allowed = (account.publicKeys ?? []).map(parseOne).find((k) => k.getPublicSSH().equals(offered));
      if (!allowed) return false;
      // The first publickey request is a query ("would you take this key?"): accepting it only answers PK_OK
      // (ssh2 does so); the login happens on the signed request that follows, verified here.
      if (!ctx.signature || !ctx.blob) return true;
      return allowed.verify(ctx.blob, ctx.signature, ctx.hashAlgo);
    }
    return false;
  }

  #openRecord(user: string, kind: SessionRecord["kind"], peer: string): SessionRecord {
    const record: SessionRecord = { session: nextSession++, user, kind, peer, openedAt: Date.now() };
    this.sessions.push(record);
    this.#opts.onSession?.(record);
    return record;
  }

  #closeRecord(record: SessionRecord): void {
    if (record.closedAt === undefined) record.closedAt = Date.now();
  }

  #runShell(channel: ServerChannel, record: SessionRecord, c: { pty: boolean; drop: () => void }): void {
    const io = new ChannelIO(channel, c.pty, c.drop, () => this.#opts.faults?.());
    io.onClosed = () => this.#closeRecord(record);
    const shell: InteractiveShell = this.#opts.host.openShell(io, {
      user: record.user,
      session: record.session,
      pty: c.pty,
    });
    const decoder = new StringDecoder("utf8");
    channel.on("data", (data: Buffer) => {
      if (!this.#up()) {
        c.drop();
        return;
      }
      const text = decoder.write(data);
      io.noteInput(text);
      shell.input(text);
      this.#opts.afterActivity?.();
    });
    channel.on("close", () => {
      this.#closeRecord(record);
      io.closed = true;
      shell.end();
      this.#opts.afterActivity?.();
    });
    shell.start();
  }

  #runExec(
    channel: ServerChannel,
    command: string,
    record: SessionRecord,
    c: { pty: boolean; drop: () => void },
  ): void {
    channel.on("close", () => {
      this.#closeRecord(record);
      this.#opts.afterActivity?.();
    });
    const ctx = { user: record.user, session: record.session, peer: record.peer };
    if (this.#opts.execHandler?.(command, channel, ctx)) return;
    const io = new ChannelIO(channel, c.pty, c.drop, () => this.#opts.faults?.());
    io.onClosed = () => this.#closeRecord(record);
    io.noteInput(`${command}\n`);
    this.#opts.host.exec(command, io, { user: record.user, session: record.session });
    this.#opts.afterActivity?.();
  }
}

function equalSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given, "utf8");
  const b = Buffer.from(expected, "utf8");
  // Compare in constant time for equal lengths; a length mismatch is a refusal either way.
  return a.length === b.length && timingSafeEqual(a, b);
}

// ---------------------------------------------------------------------------------------------------------------
// The ShellIO of one channel, with the carrier faults applied

const ROT = (ch: string): string => {
  const c = ch.charCodeAt(0);
  if (c >= 65 && c <= 90) return String.fromCharCode(((c - 65 + 13) % 26) + 65);
  if (c >= 97 && c <= 122) return String.fromCharCode(((c - 97 + 13) % 26) + 97);
  if (c >= 48 && c <= 57) return String.fromCharCode(((c - 48 + 5) % 10) + 48);
  return ch;
};

/** Garbled output: every line but the prompt has its letters and digits rotated (plausible-looking, wrong). */
export function garble(text: string): string {
  return text
    .split("\n")
    .map((line) => (/:>\s*$/.test(line) ? line : line.replace(/[A-Za-z0-9]/g, ROT)))
    .join("\n");
}

function matchesCommand(line: string, pattern: string | undefined): boolean {
  if (!pattern) return false;
  const norm = (s: string) => s.trim().replace(/\s+/g, " ").toLowerCase();
  const p = norm(pattern);
  return p !== "" && norm(line).startsWith(p);
}

class ChannelIO implements ShellIO {
  closed = false;
  /** The interpreter ended the session (the peer may take a moment to acknowledge the channel close). */
  onClosed?: () => void;
  #channel: ServerChannel;
  #pty: boolean;
  #drop: () => void;
  #faults: () => CarrierFaults | undefined;
  #pendingLine = "";
  #dropArmed = false;
  /** close() or a drop was requested: later writes are discarded. */
  #ending = false;
  #garbling = false;
  #releaseAt = 0;
  /** Set while the reply to a held command is held back: writes queue here, in order, until it is released. */
  #held: (() => void)[] | undefined;

  constructor(
    channel: ServerChannel,
    pty: boolean,
    drop: () => void,
    faults: () => CarrierFaults | undefined,
  ) {
    this.#channel = channel;
    this.#pty = pty;
    this.#drop = drop;
    this.#faults = faults;
    channel.on("error", () => {});
  }

  /**
   * Track what the peer typed, so command-specific faults fire on the command they name. With no command fault set,
   * nothing is tracked, but a state armed while one was set is cleared: a fault cleared after a garbled reply must
   * not keep garbling every later reply of the same session (the client's next command came back without its footer).
   */
  noteInput(text: string): void {
    const f = this.#faults();
    if (!f?.dropMidCommand && !f?.garbleCommand && !f?.hold) {
      this.#garbling = false;
      this.#dropArmed = false;
      this.#pendingLine = "";
      return;
    }
    for (const ch of text) {
      if (ch === "\r" || ch === "\n") {
        if (this.#pendingLine !== "") {
          this.#dropArmed = matchesCommand(this.#pendingLine, f.dropMidCommand);
          this.#garbling = matchesCommand(this.#pendingLine, f.garbleCommand);
          if (f.hold && !this.#held && matchesCommand(this.#pendingLine, f.hold.command))
            this.#holdUntil(f.hold.released);
        }
        this.#pendingLine = "";
      } else {
        this.#pendingLine += ch;
      }
    }
  }

  write(text: string): void {
    if (this.#ending || this.closed) return;
    let out = this.#pty ? text.replace(/\r?\n/g, "\r\n") : text;
    if (this.#garbling) out = garble(out);
    if (this.#dropArmed) {
      // Half the first chunk of output, then the line goes dead: the client sees a truncated reply.
      this.#dropArmed = false;
      this.#ending = true;
      const half = out.slice(0, Math.max(1, Math.floor(out.length / 2)));
      this.#later(() => {
        if (!this.closed) this.#channel.write(half);
        this.#drop();
      });
      return;
    }
    this.#later(() => {
      if (!this.closed) this.#channel.write(out);
    });
  }

  close(exitCode?: number): void {
    if (this.#ending || this.closed) return;
    this.#ending = true;
    this.#later(() => {
      if (this.closed) return;
      this.#channel.exit(exitCode ?? 0);
      this.#channel.end();
      this.onClosed?.();
    });
  }

  destroy(): void {
    this.#ending = true;
    this.#drop();
  }

  #holdUntil(released: Promise<void>): void {
    const queue: (() => void)[] = [];
    this.#held = queue;
    void released.then(() => {
      this.#held = undefined;
      for (const action of queue) this.#later(action);
    });
  }

  /** Run now, or after the `slow` delay; order is kept because every action waits at least for the previous. */
  #later(action: () => void): void {
    if (this.#held) {
      this.#held.push(action);
      return;
    }
    const delay = this.#faults()?.slowReplyMs ?? 0;
    if (delay <= 0 && this.#releaseAt <= Date.now()) {
      action();
      return;
    }
    const at = Math.max(Date.now() + delay, this.#releaseAt);
    this.#releaseAt = at;
    setTimeout(action, at - Date.now());
  }
}
