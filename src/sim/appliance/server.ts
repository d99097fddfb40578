// Over 400 lines: the SSH, file-area and NTLS listeners follow one appliance state (reboot, hang, power cycle); their
//  lifecycle reads together.
// One simulated appliance on the network: the lunash SSH server, its file area (sftp and scp: `server.pem` to
// fetch, client certificates to upload), and the NTLS listener. The listeners follow the appliance's state:
// a hung reboot leaves nothing listening until a power cycle, a reboot in progress refuses connections, and
// `ntls.listening = false` closes 1792.
import type { ServerChannel, SFTPWrapper } from "ssh2";
import ssh2 from "ssh2";
import type { ShellHost } from "../shell-session.ts";
import {
  type CarrierFaults,
  type ChannelContext,
  type HostKey,
  type SshUser,
  TwinSshServer,
} from "../ssh-server.ts";
import type { ApplianceState } from "../state.ts";
import { NtlsListener } from "./ntls.ts";

const { OPEN_MODE, STATUS_CODE } = ssh2.utils.sftp;

/** The file every appliance serves from its scp area: its NTLS server certificate. */
const SERVER_PEM = "server.pem";

export interface ApplianceServerOptions {
  state: ApplianceState;
  host: ShellHost;
  address: string;
  sshPort: number;
  ntlsPort: number;
  hostKey: HostKey;
  /** Public keys (OpenSSH one-line form) accepted for the appliance user, besides its password. */
  authorizedKeys?: string[];
  /** Carrier faults, for a ShellHost that does not apply them itself. */
  faults?: () => CarrierFaults | undefined;
}

export class ApplianceServer {
  readonly state: ApplianceState;
  readonly ssh: TwinSshServer;
  readonly ntls: NtlsListener;
  #reconciling: Promise<void> = Promise.resolve();
  #reconcileQueued = false;
  #stopped = false;
  #lastSeen = "";

  constructor(opts: ApplianceServerOptions) {
    const { state } = opts;
    this.state = state;
    const authorizedKeys = opts.authorizedKeys ?? [];
    this.ssh = new TwinSshServer({
      name: state.name,
      address: opts.address,
      port: opts.sshPort,
      hostKey: opts.hostKey,
      // Read at each login: `user password` in lunash changes the password for the next connection.
      users: (name): SshUser | undefined =>
        name === state.applianceUser
          ? { password: state.appliancePassword, publicKeys: authorizedKeys }
          : undefined,
      host: opts.host,
      isUp: () => state.power === "on",
      faults: opts.faults,
      execHandler: (command, channel, ctx) => scpExec(state, command, channel, ctx),
      sftpHandler: (sftp) => serveFiles(state, sftp),
      onSession: (record) => state.sessionLog.push(record),
      afterActivity: () => this.reconcile(),
    });
    this.ntls = new NtlsListener({ address: opts.address, port: opts.ntlsPort, state });
  }

  get address(): string {
    return this.ssh.address;
  }

  /** Bind SSH and (when NTLS is up) 1792. Rejects with the bind error (EADDRINUSE) and leaves nothing bound. */
  async start(): Promise<void> {
    try {
      await this.ssh.start();
      if (this.state.ntls.listening && this.state.power === "on") await this.ntls.start();
    } catch (err) {
      await this.ssh.stop();
      await this.ntls.stop();
      throw err;
    }
  }

  /**
   * Bring the listeners in line with the state after something changed it (a command, a fault, a power cycle).
   * Calls are coalesced and run one at a time; the returned promise settles when the listeners match.
   */
  reconcile(): Promise<void> {
    if (this.#reconcileQueued) return this.#reconciling;
    this.#reconcileQueued = true;
    this.#reconciling = this.#reconciling.then(async () => {
      this.#reconcileQueued = false;
      if (this.#stopped) return;
      const { state } = this;
      try {
        if (state.power === "hung") {
          // Dead until someone pulls the plug: no SSH, no NTLS, open connections gone.
          await this.ssh.stop();
          await this.ntls.stop();
          return;
        }
        if (state.power === "rebooting") {
          // Going down: sessions die now. The listeners stay bound but refuse (power gating at accept), so the
          // appliance comes back by itself when its boot finishes.
          this.ssh.dropAll();
          return;
        }
        await this.ssh.start();
        if (state.ntls.listening) await this.ntls.start();
        else await this.ntls.stop();
      } catch {
        // Rebinding our own address failed (someone took the port meanwhile): the appliance stays unreachable,
        // which is what a client would see on real hardware too. The next reconcile tries again.
      }
    });
    return this.#reconciling;
  }

  /**
   * Reconcile only if power or NTLS changed since the last look: the twin's one sweep timer calls this for every
   * appliance (a boot that finishes by itself, or a state change made without an SSH command).
   */
  reconcileIfChanged(): void {
    const seen = `${this.state.power}/${this.state.ntls.listening}`;
    if (seen === this.#lastSeen) return;
    this.#lastSeen = seen;
    void this.reconcile();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#reconciling;
    await this.ssh.stop();
    await this.ntls.stop();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The scp area: `server.pem` (read-only, always the current certificate) plus whatever was uploaded.

/** A plain file name in the scp area, or undefined for anything with a directory part (the area is flat). */
function scpAreaName(path: string): string | undefined {
  const name = path
    .replace(/^(\.\/|\/+|~\/)+/, "")
    .replace(/^home\/[^/]+\//, "")
    .trim();
  if (name === "" || name === "." || name.includes("/") || name === "..") return undefined;
  return name;
}

function readAreaFile(state: ApplianceState, name: string): string | undefined {
  if (name === SERVER_PEM) return state.ntls.certPem;
  return state.scpFiles.get(name);
}

function areaNames(state: ApplianceState): string[] {
  return [SERVER_PEM, ...[...state.scpFiles.keys()].filter((n) => n !== SERVER_PEM)];
}

const FILE_MODE = 0o100644;
const DIR_MODE = 0o040755;

function fileAttrs(size: number) {
  const now = Math.floor(Date.now() / 1000);
  return { mode: FILE_MODE, uid: 0, gid: 0, size, atime: now, mtime: now };
}

type OpenFile =
  | { kind: "read"; data: Buffer }
  | { kind: "write"; name: string; chunks: { offset: number; data: Buffer }[] }
  | { kind: "dir"; sent: boolean };

/** The sftp subsystem over the scp area (what OpenSSH 9's `scp` and the daemon's cert sync use). */
function serveFiles(state: ApplianceState, sftp: SFTPWrapper): void {
  const open = new Map<string, OpenFile>();
  let nextHandle = 1;
  const newHandle = (f: OpenFile): Buffer => {
    const h = Buffer.from(String(nextHandle++));
    open.set(h.toString(), f);
    return h;
  };
  // The client's EOF ends the subsystem: report exit status 0 and close our side, as sshd's sftp-server does.
  // OpenSSH's scp waits for the close, and fails (status -1) without the exit status.
  sftp.on("end", () => {
    sendExitStatus(sftp, 0);
    sftp.end();
  });
  const isRoot = (p: string) => /^(\/|\.|~|\/home\/[^/]+\/?|\.\/)?$/.test(p.trim());

  sftp.on("REALPATH", (id, path) => {
    const name = isRoot(path) ? "/" : `/${scpAreaName(path) ?? path.replace(/^\/+/, "")}`;
    sftp.name(id, [{ filename: name, longname: name, attrs: fileAttrs(0) }]);
  });
  const stat = (id: number, path: string) => {
    if (isRoot(path)) {
      sftp.attrs(id, { ...fileAttrs(0), mode: DIR_MODE });
      return;
    }
    const name = scpAreaName(path);
    const data = name === undefined ? undefined : readAreaFile(state, name);
    if (data === undefined) sftp.status(id, STATUS_CODE.NO_SUCH_FILE, "No such file");
    else sftp.attrs(id, fileAttrs(Buffer.byteLength(data)));
  };
  sftp.on("STAT", stat);
  sftp.on("LSTAT", stat);
  sftp.on("OPEN", (id, path, flags) => {
    const name = scpAreaName(path);
    if (name === undefined) {
      sftp.status(id, STATUS_CODE.PERMISSION_DENIED, "Permission denied");
      return;
    }
    if (flags & OPEN_MODE.WRITE) {
      if (name === SERVER_PEM) {
        sftp.status(id, STATUS_CODE.PERMISSION_DENIED, "Permission denied");
        return;
      }
      sftp.handle(id, newHandle({ kind: "write", name, chunks: [] }));
      return;
    }
    const data = readAreaFile(state, name);
    if (data === undefined) sftp.status(id, STATUS_CODE.NO_SUCH_FILE, "No such file");
    else sftp.handle(id, newHandle({ kind: "read", data: Buffer.from(data) }));
  });
  sftp.on("READ", (id, handle, offset, length) => {
    const f = open.get(handle.toString());
    if (f?.kind !== "read") {
      sftp.status(id, STATUS_CODE.FAILURE, "Bad handle");
      return;
    }
    if (offset >= f.data.length) sftp.status(id, STATUS_CODE.EOF);
    else sftp.data(id, f.data.subarray(offset, Math.min(f.data.length, offset + length)));
  });
  sftp.on("WRITE", (id, handle, offset, data) => {
    const f = open.get(handle.toString());
    if (f?.kind !== "write") {
      sftp.status(id, STATUS_CODE.FAILURE, "Bad handle");
      return;
    }
    f.chunks.push({ offset, data: Buffer.from(data) });
    sftp.status(id, STATUS_CODE.OK);
  });
  sftp.on("FSTAT", (id, handle) => {
    const f = open.get(handle.toString());
    if (!f) sftp.status(id, STATUS_CODE.FAILURE, "Bad handle");
    else if (f.kind === "read") sftp.attrs(id, fileAttrs(f.data.length));
    else if (f.kind === "write") sftp.attrs(id, fileAttrs(assemble(f.chunks).length));
    else sftp.attrs(id, { ...fileAttrs(0), mode: DIR_MODE });
  });
  // Modes and times of uploads are accepted and ignored (the scp area keeps none).
  sftp.on("FSETSTAT", (id) => sftp.status(id, STATUS_CODE.OK));
  sftp.on("SETSTAT", (id) => sftp.status(id, STATUS_CODE.OK));
  sftp.on("CLOSE", (id, handle) => {
    const key = handle.toString();
    const f = open.get(key);
    open.delete(key);
    if (!f) {
      sftp.status(id, STATUS_CODE.FAILURE, "Bad handle");
      return;
    }
    if (f.kind === "write") state.scpFiles.set(f.name, assemble(f.chunks).toString("utf8"));
    sftp.status(id, STATUS_CODE.OK);
  });
  sftp.on("OPENDIR", (id, path) => {
    if (!isRoot(path)) sftp.status(id, STATUS_CODE.NO_SUCH_FILE, "No such file");
    else sftp.handle(id, newHandle({ kind: "dir", sent: false }));
  });
  sftp.on("READDIR", (id, handle) => {
    const f = open.get(handle.toString());
    if (f?.kind !== "dir") {
      sftp.status(id, STATUS_CODE.FAILURE, "Bad handle");
      return;
    }
    if (f.sent) {
      sftp.status(id, STATUS_CODE.EOF);
      return;
    }
    f.sent = true;
    sftp.name(
      id,
      areaNames(state).map((n) => {
        const size = Buffer.byteLength(readAreaFile(state, n) ?? "");
        return {
          filename: n,
          longname: `-rw-r--r--    1 admin    admin    ${size} ${n}`,
          attrs: fileAttrs(size),
        };
      }),
    );
  });
  sftp.on("REMOVE", (id, path) => {
    const name = scpAreaName(path);
    if (name !== undefined && name !== SERVER_PEM && state.scpFiles.delete(name))
      sftp.status(id, STATUS_CODE.OK);
    else sftp.status(id, STATUS_CODE.NO_SUCH_FILE, "No such file");
  });
  // OpenSSH's scp/sftp ask for extensions (limits@openssh.com, expand-path@openssh.com...): an unanswered request
  // would hang the client, so every operation the area does not support gets an explicit refusal.
  for (const op of ["MKDIR", "RMDIR", "RENAME", "READLINK", "SYMLINK", "EXTENDED"] as const)
    sftp.on(op, (id: number) => sftp.status(id, STATUS_CODE.OP_UNSUPPORTED, "Operation unsupported"));
}

/**
 * ssh2's server-side SFTP stream has no `exit()`; its channel id and protocol are reachable, and the exit-status
 * request is the same one an exec channel sends. Guarded: if ssh2's internals move, the status is simply not sent.
 */
function sendExitStatus(sftp: SFTPWrapper, code: number): void {
  const internals = sftp as unknown as {
    _protocol?: { exitStatus?: (chan: number, status: number) => void };
    outgoing?: { id?: number; state?: string };
  };
  const id = internals.outgoing?.id;
  if (typeof id === "number" && internals.outgoing?.state === "open")
    internals._protocol?.exitStatus?.(id, code);
}

function assemble(chunks: { offset: number; data: Buffer }[]): Buffer {
  const size = chunks.reduce((m, c) => Math.max(m, c.offset + c.data.length), 0);
  const out = Buffer.alloc(size);
  for (const c of chunks) c.data.copy(out, c.offset);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Legacy scp (`scp -O`, older clients): the rcp protocol over an exec channel.

/** Handles `scp -f <file>` (download) and `scp -t <file>` (upload); other commands fall through to lunash. */
function scpExec(
  state: ApplianceState,
  command: string,
  channel: ServerChannel,
  _ctx: ChannelContext,
): boolean {
  const words = command.trim().split(/\s+/);
  if (words[0] !== "scp") return false;
  const flags = words.slice(1).filter((w) => w.startsWith("-"));
  const target =
    words
      .slice(1)
      .filter((w) => !w.startsWith("-"))
      .at(-1) ?? "";
  const fail = (message: string) => {
    // rcp error: \x01 + message; scp prints it and exits non-zero.
    channel.write(`\x01scp: ${message}\n`);
    channel.exit(1);
    channel.end();
  };
  if (flags.some((f) => f.includes("f"))) {
    const name = scpAreaName(target);
    const data = name === undefined ? undefined : readAreaFile(state, name);
    if (name === undefined || data === undefined) {
      channel.once("data", () => fail(`${target}: No such file or directory`));
      return true;
    }
    const body = Buffer.from(data);
    let step = 0;
    channel.on("data", (chunk: Buffer) => {
      if (chunk[0] !== 0) {
        channel.exit(1);
        channel.end();
        return;
      }
      if (step === 0) channel.write(`C0644 ${body.length} ${name}\n`);
      else if (step === 1) channel.write(Buffer.concat([body, Buffer.from([0])]));
      else {
        channel.exit(0);
        channel.end();
      }
      step++;
    });
    return true;
  }
  if (flags.some((f) => f.includes("t"))) {
    receiveScp(state, target, channel);
    return true;
  }
  fail("unsupported scp mode");
  return true;
}

function receiveScp(state: ApplianceState, target: string, channel: ServerChannel): void {
  let buf = Buffer.alloc(0);
  let expecting: { name: string; size: number } | undefined;
  const targetName = scpAreaName(target);
  const ok = () => channel.write(Buffer.from([0]));
  ok();
  channel.on("data", (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      if (expecting) {
        if (buf.length < expecting.size + 1) return;
        const body = buf.subarray(0, expecting.size);
        buf = buf.subarray(expecting.size + 1);
        state.scpFiles.set(expecting.name, body.toString("utf8"));
        expecting = undefined;
        ok();
        continue;
      }
      const nl = buf.indexOf(0x0a);
      if (nl < 0) return;
      const line = buf.subarray(0, nl).toString("utf8");
      buf = buf.subarray(nl + 1);
      const m = /^C[0-7]{4} (\d+) (.+)$/.exec(line);
      if (line.startsWith("T")) {
        ok();
        continue;
      }
      if (!m) {
        channel.write("\x01scp: protocol error: only plain files can be copied to the appliance\n");
        channel.exit(1);
        channel.end();
        return;
      }
      // `scp x.pem admin@hsm:` names the file by its own name; `...:y.pem` renames it.
      const name = targetName && targetName !== "." ? targetName : scpAreaName(m[2] ?? "");
      if (!name || name === SERVER_PEM) {
        channel.write(`\x01scp: ${m[2]}: Permission denied\n`);
        channel.exit(1);
        channel.end();
        return;
      }
      expecting = { name, size: Number(m[1]) };
      ok();
    }
  });
  channel.on("end", () => {
    channel.exit(0);
    channel.end();
  });
}
