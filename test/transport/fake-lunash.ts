// A tiny lunash-speaking ssh2 server for driver tests: banner, `[name] lunash:>` prompt, canned replies, and a log of
// everything it received (auth attempts and typed input) so tests can assert what was — and was not — sent.
import { createServer, type Server as NetServer, type Socket } from "node:net";
import ssh2, { type Connection } from "ssh2";
import { Secret } from "../../src/config/secret.ts";
import { generateEd25519KeyPair } from "../../src/sim/ssh-server.ts";
import { sshFingerprint } from "../../src/transport/fingerprint.ts";
import type { SshTarget } from "../../src/transport/target.ts";

export const PASSWORD = "Appliance-pw-1";
const timeouts = { connectMs: 1500, authMs: 1500, commandMs: 3000, keepaliveMs: 15_000 };

/** An SshTarget for a fake server (password auth with PASSWORD). */
export function targetFor(
  server: { host: string; port: number; name?: string },
  over: Partial<SshTarget> = {},
): SshTarget {
  const password = new Secret(PASSWORD, "literal");
  return {
    kind: "device",
    name: server.name ?? "hsm-fake",
    host: server.host,
    port: server.port,
    user: "admin",
    timeouts,
    credentials: () => ({ password }),
    ...over,
  };
}

const { Server, utils } = ssh2;

export interface FakeIo {
  write(text: string): void;
  /** Print a prompt-like text and wait for one line of input. */
  ask(text: string): Promise<string>;
  /** Tear the TCP connection down (no SSH goodbye). */
  drop(): void;
}

/** A reply writes output (the server adds the footer-less prompt after it returns, unless it dropped). */
export type Reply = string | ((io: FakeIo, line: string) => void | Promise<void> | "hang");

export interface FakeOptions {
  name?: string;
  password?: string;
  /** Accept this public key (OpenSSH line or parsed). */
  publicKey?: string;
  replies?: Record<string, Reply>;
  /** Never answer authentication requests. */
  authHang?: boolean;
  banner?: string;
  /** Print only the banner, no prompt (a forced password change). */
  noPrompt?: boolean;
  /** How the prompt is dressed on this device: e.g. a trailing blank, or ANSI bold around it. */
  promptStyle?: { before?: string; after?: string };
}

export interface AuthAttempt {
  method: string;
  user: string;
  /** Whether the attempt carried a password (the value is never stored). */
  hadPassword: boolean;
}

export const OK_FOOTER = "\r\n\r\nCommand Result : 0 (Success)\r\n";

export class FakeLunash {
  // Through the twin's generator: ssh2's own writes a key it cannot parse about once in 250 draws.
  readonly hostKey = generateEd25519KeyPair();
  readonly fingerprint: string;
  readonly auths: AuthAttempt[] = [];
  /** Every line of input received, in order, across sessions (passwords replaced by `<password>`). */
  readonly inputs: string[] = [];
  readonly passwordsSeen: string[] = [];
  #openShells = 0;
  #whenNoShells: (() => void)[] = [];
  shells = 0;
  port = 0;
  readonly host = "127.0.0.1";
  readonly #ssh: InstanceType<typeof Server>;
  #tcp: NetServer | undefined;
  readonly #sockets = new Set<Socket>();

  constructor(readonly opts: FakeOptions = {}) {
    const parsed = utils.parseKey(this.hostKey.public);
    if (parsed instanceof Error) throw parsed;
    this.fingerprint = sshFingerprint((Array.isArray(parsed) ? parsed[0] : parsed)!.getPublicSSH());
    this.#ssh = new Server({ hostKeys: [this.hostKey.private] });
    this.#ssh.on("connection", (conn: Connection) => this.#onConnection(conn));
  }

  get name(): string {
    return this.opts.name ?? "hsm-fake";
  }

  async start(): Promise<this> {
    const tcp = createServer({ noDelay: true }, (s) => {
      this.#sockets.add(s);
      s.on("close", () => this.#sockets.delete(s));
      s.on("error", () => {});
      this.#ssh.injectSocket(s);
    });
    await new Promise<void>((r) => tcp.listen({ host: this.host, port: 0 }, () => r()));
    const a = tcp.address();
    if (a && typeof a === "object") this.port = a.port;
    this.#tcp = tcp;
    return this;
  }

  /** Drop every TCP connection; the listener stays. */
  dropAll(): void {
    for (const s of this.#sockets) s.destroy();
  }

  async stop(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((r) => (this.#tcp ? this.#tcp.close(() => r()) : r()));
  }

  #onConnection(conn: Connection): void {
    conn.on("error", () => {});
    conn.on("authentication", (ctx) => {
      const hadPassword = ctx.method === "password";
      this.auths.push({ method: ctx.method, user: ctx.username, hadPassword });
      if (this.opts.authHang) return; // never answer
      if (ctx.method === "password" && ctx.password === (this.opts.password ?? PASSWORD)) return ctx.accept();
      if (ctx.method === "publickey" && this.opts.publicKey) {
        const allowed = utils.parseKey(this.opts.publicKey);
        if (!(allowed instanceof Error)) {
          const k = Array.isArray(allowed) ? allowed[0] : allowed;
          if (k && ctx.key.data.equals(k.getPublicSSH())) {
            if (!ctx.signature) return ctx.accept();
            if (ctx.blob && k.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true) return ctx.accept();
          }
        }
      }
      ctx.reject(["password", "publickey"]);
    });
    conn.on("ready", () => {
      conn.on("session", (acceptSession) => {
        const session = acceptSession();
        session.on("pty", (accept) => accept?.());
        session.on("shell", (accept) => {
          const ch = accept();
          this.shells++;
          this.#openShells++;
          let closed = false;
          const onClose = () => {
            if (closed) return;
            closed = true;
            if (--this.#openShells === 0) for (const r of this.#whenNoShells.splice(0)) r();
          };
          ch.on("close", onClose);
          conn.on("close", onClose);
          this.#runShell(ch, conn);
        });
      });
    });
  }

  /**
   * Resolves once no shell is open on the server (every channel closed). The channel's data arrives before its close,
   * so after this `inputs` holds everything the client ever typed in those shells: a test awaits this instead of
   * sleeping before it checks that nothing more was sent.
   */
  noShellOpen(): Promise<void> {
    if (this.#openShells === 0) return Promise.resolve();
    return new Promise((r) => this.#whenNoShells.push(r));
  }

  #runShell(ch: ssh2.ServerChannel, conn: Connection): void {
    const style = this.opts.promptStyle ?? {};
    const prompt = `${style.before ?? ""}[${this.name}] lunash:>${style.after ?? ""}`;
    let line = "";
    let waiter: ((l: string) => void) | undefined;
    let masked = false;
    let hung = false;
    const io: FakeIo = {
      write: (t) => ch.write(t),
      ask: (t) => {
        ch.write(t);
        masked = /password:\s*\r?\n\s*> $/i.test(t);
        return new Promise((r) => (waiter = r));
      },
      drop: () => {
        for (const s of this.#sockets) s.destroy();
        conn.end();
      },
    };
    ch.write(
      `${this.opts.banner ?? "Luna Network HSM Command Line Shell v7.2.0-220. Copyright (c) 2018 SafeNet. All rights reserved."}${this.opts.noPrompt ? "" : `\r\n\r\n${prompt}`}`,
    );
    const onLine = async (l: string) => {
      if (waiter) {
        const w = waiter;
        waiter = undefined;
        if (masked) this.passwordsSeen.push(l);
        this.inputs.push(masked ? "<password>" : l);
        masked = false;
        w(l);
        return;
      }
      this.inputs.push(l);
      if (hung) return;
      const cmd = l.trim();
      if (cmd === "exit") {
        ch.close();
        return;
      }
      const reply = this.opts.replies?.[cmd];
      if (reply === undefined) {
        ch.write(
          `\r\nError:  '${cmd}' failed. (C0000001 : RC_UNKNOWN_COMMAND)\r\n\r\nCommand Result : 65535 (Luna Shell execution)\r\n${prompt}`,
        );
        return;
      }
      if (typeof reply === "string") {
        ch.write(reply + OK_FOOTER + prompt);
        return;
      }
      const r = await reply(io, cmd);
      if (r === "hang") {
        hung = true;
        return;
      }
      ch.write(prompt);
    };
    ch.on("data", (d: Buffer) => {
      for (const c of d.toString("utf8")) {
        if (c === "\r" || c === "\n") {
          if (c === "\n" && line === "") continue;
          ch.write("\r\n");
          const l = line;
          line = "";
          void onLine(l);
        } else if (c === "\x03") {
          this.inputs.push("^C");
        } else {
          line += c;
          ch.write(masked ? "*" : c); // pty echo
        }
      }
    });
  }
}

/** A TCP listener that accepts and never says a word (no SSH banner). */
export async function silentListener(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const srv = createServer((s) => {
    sockets.add(s);
    s.on("error", () => {});
  });
  await new Promise<void>((r) => srv.listen({ host: "127.0.0.1", port: 0 }, () => r()));
  const a = srv.address();
  const port = a && typeof a === "object" ? a.port : 0;
  return {
    port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => srv.close(() => r()));
    },
  };
}
