// The engine's SessionProvider over the real shell driver: lunash and lunacm sessions come from ShellSessions (one
// per target, reused across steps and jobs); a client host's OS shell (where `vtl` runs) is opened here on the same
// pooled SSH connection, and vtl replies go through the same parsers as everything else.
import type { ClientHost, Device, Fleet } from "../config/schema.ts";
import { lunaOutputParser } from "../shell/output-parser.ts";
import { hostShellPlatform } from "../shell/platform.ts";
import { type RunOptions, ShellSession } from "../shell/session.ts";
import type { ShellSessions } from "../shell/sessions.ts";
import { DeviceError, ParseFailed } from "../transport/errors.ts";
import type { SshPool } from "../transport/pool.ts";
import { clientHostTarget, deviceTarget } from "../transport/target.ts";
import type { CommandOptions, DeviceShell, SessionProvider, ShellReply } from "./context.ts";
import { CapabilityUnavailable } from "./errors.ts";

export interface ShellSessionProvider extends SessionProvider {
  /** Close the client-host OS shells this provider opened (lunash/lunacm sessions belong to ShellSessions). */
  close(): Promise<void>;
}

export function shellSessionProvider(
  fleet: Fleet,
  deps: { pool: SshPool; sessions: ShellSessions },
): ShellSessionProvider {
  const hostShells = new Map<string, Promise<ShellSession>>();

  const openHostShell = async (host: ClientHost): Promise<ShellSession> => {
    const target = clientHostTarget(fleet, host);
    const conn = await deps.pool.connection(target);
    const channel = await conn.openShell();
    return ShellSession.open(channel, {
      target: host.name,
      platform: hostShellPlatform,
      commandTimeoutMs: target.timeouts.commandMs,
      openTimeoutMs: target.timeouts.commandMs,
      generation: conn.generation,
      parser: null,
    });
  };

  const hostShell = async (host: ClientHost): Promise<ShellSession> => {
    const existing = hostShells.get(host.name);
    if (existing) {
      const s = await existing.catch(() => undefined);
      const live = deps.pool.peek(host.name);
      if (s?.usable && live && live.generation === s.generation) return s;
      if (s) void s.close();
    }
    const p = openHostShell(host);
    hostShells.set(host.name, p);
    p.catch(() => hostShells.delete(host.name));
    return p;
  };

  /** One engine-built command on an exec channel; a non-zero exit status is the host's answer (DeviceError). */
  const hostExec = async (host: ClientHost, command: string, label = command): Promise<string> => {
    if (host.local)
      throw new CapabilityUnavailable(
        `client host '${host.name}' is local: its files are not reached over SSH`,
      );
    const target = clientHostTarget(fleet, host);
    const conn = await deps.pool.connection(target);
    const out = await conn.exec(command, target.timeouts.commandMs);
    if (out.exitCode !== 0)
      throw new DeviceError(
        { target: host.name, command: label },
        String(out.exitCode),
        "EXIT_STATUS",
        out.output.trim().split("\n").slice(-3).join(" ") || `exit status ${out.exitCode}`,
      );
    return out.output;
  };

  return {
    async lunash(device: Device): Promise<DeviceShell> {
      return adapt(await deps.sessions.lunash(deviceTarget(fleet, device)));
    },
    async lunacm(host: ClientHost): Promise<DeviceShell> {
      const target = host.local
        ? { kind: "local" as const, name: host.name, commandTimeoutMs: fleet.defaults.timeouts.commandMs }
        : clientHostTarget(fleet, host);
      return adapt(await deps.sessions.lunacm(target));
    },
    async clientShell(host: ClientHost): Promise<DeviceShell> {
      if (host.local)
        throw new CapabilityUnavailable(
          `client host '${host.name}' is local: its OS shell is not driven yet`,
        );
      const session = await hostShell(host);
      return {
        get usable() {
          return session.usable;
        },
        async run(command: string, opts?: CommandOptions): Promise<ShellReply> {
          const out = await session.run(command, { ...toRunOptions(opts), parse: false });
          return { command, raw: out.raw, result: parseClientTool(host.name, command, out.raw) };
        },
      };
    },
    files: {
      async readApplianceFile(device, name) {
        const target = deviceTarget(fleet, device);
        const conn = await deps.pool.connection(target);
        const data = await conn.sftpReadFile(applianceFileName(device.name, name), target.timeouts.commandMs);
        return data.toString("utf8");
      },
      async writeApplianceFile(device, name, text) {
        const target = deviceTarget(fleet, device);
        const conn = await deps.pool.connection(target);
        await conn.sftpWriteFile(
          applianceFileName(device.name, name),
          certificateText(device.name, name, text),
          target.timeouts.commandMs,
        );
      },
      async readHostFile(host, path) {
        const command = `cat ${hostPath(host.name, path, "read")}`;
        const out = await hostExec(host, command);
        return out;
      },
      async writeHostFile(host, path, text) {
        const file = hostPath(host.name, path, "write");
        const body = certificateText(host.name, path, text).replace(/\n$/, "");
        // A quoted here-document: the shell expands nothing inside it, and the body is certificate text only.
        await hostExec(host, `cat > ${file} <<'${HEREDOC_END}'\n${body}\n${HEREDOC_END}`, `write ${file}`);
      },
    },
    async close() {
      const all = [...hostShells.values()];
      hostShells.clear();
      for (const p of all) await (await p.catch(() => undefined))?.close();
    },
  };
}

const HEREDOC_END = "LUNAFLEET_PEM_END";
const PEM_ONLY = /^(?:-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----\r?\n?)+$/;
const HOST_READ_DIRS = [
  "/usr/safenet/lunaclient/cert/server/",
  "/usr/safenet/lunaclient/cert/client/",
  "/tmp/",
];
const HOST_WRITE_DIRS = ["/usr/safenet/lunaclient/cert/server/", "/tmp/"];

/** A plain file name in an appliance's (flat) scp area. */
function applianceFileName(device: string, name: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(name))
    throw new CapabilityUnavailable(`${device}: '${name}' is not a plain file name in the scp area`);
  return name;
}

/** Only certificates move through this port: never a key, never anything a shell could interpret. */
function certificateText(target: string, name: string, text: string): string {
  if (!PEM_ONLY.test(text))
    throw new CapabilityUnavailable(
      `${target}: refusing to write '${name}': the content is not PEM certificates only`,
    );
  return text;
}

/** An absolute path under the Luna certificate directories or /tmp, in characters no shell treats specially. */
function hostPath(host: string, path: string, mode: "read" | "write"): string {
  const dirs = mode === "read" ? HOST_READ_DIRS : HOST_WRITE_DIRS;
  if (
    !/^\/[A-Za-z0-9._/-]+$/.test(path) ||
    path.split("/").some((part) => part === "..") ||
    !dirs.some((d) => path.startsWith(d) && !path.slice(d.length).includes("/")) ||
    /Key\.pem$/i.test(path) ||
    /\.key$/i.test(path)
  )
    throw new CapabilityUnavailable(
      `${host}: refusing to ${mode} '${path}' (only certificate files under ${dirs.join(", ")})`,
    );
  return path;
}

function adapt(session: ShellSession): DeviceShell {
  return {
    get usable() {
      return session.usable;
    },
    async run(command, opts) {
      const out = await session.run(command, toRunOptions(opts));
      return { command, raw: out.raw, result: out.result };
    },
  };
}

function toRunOptions(opts: CommandOptions | undefined): RunOptions {
  const r: RunOptions = {};
  if (!opts) return r;
  if (opts.confirm) r.confirm = opts.confirm;
  if (opts.timeoutMs !== undefined) r.timeoutMs = opts.timeoutMs;
  if (opts.allowReboot !== undefined) r.allowReboot = opts.allowReboot;
  if (opts.rebootUnsafe !== undefined) r.rebootUnsafe = opts.rebootUnsafe;
  return r;
}

/**
 * vtl runs on the host's OS shell, whose session returns raw text; its parsers live with lunacm's in parsers/.
 * A tool without a parser is refused rather than returned unparsed: a step that reads must know what it read.
 */
function parseClientTool(host: string, command: string, raw: string): unknown {
  if (/^vtl\s+(addServer|deleteServer)\b/i.test(command)) return vtlChangeResult(host, command, raw);
  if (!lunaOutputParser.has("lunacm", command))
    return new ParseFailed(
      { target: host, command, cause: "no parser exists for this client-host command" },
      raw,
    );
  // The session returned because the OS shell's prompt came back at the start of a line, so the output ended with a
  // line end that the session trimmed along with the prompt; give it back so the parser sees a complete capture.
  const parsed = lunaOutputParser.parse("lunacm", command, raw.endsWith("\n") ? raw : `${raw}\n`);
  if (parsed.ok) return parsed.value;
  if ("deviceError" in parsed) {
    const d = parsed.deviceError;
    return new DeviceError({ target: host, command }, d.code, d.name, d.message);
  }
  return new ParseFailed(
    { target: host, command, cause: `unparseable output: ${parsed.parseError.reason}` },
    raw,
  );
}

/**
 * `vtl addServer` / `vtl deleteServer` print one line of success (§8.5) or an `Error:` line; nothing else is
 * accepted, so a garbled reply is never taken for a change that happened.
 */
function vtlChangeResult(host: string, command: string, raw: string): unknown {
  const text = raw.replace(/\r/g, "");
  const error = /^Error:\s*(.*)$/m.exec(text);
  if (error) return new DeviceError({ target: host, command }, "ERROR", "VTL_ERROR", error[1]?.trim() ?? "");
  const done =
    /^(New server \S+ successfully added to server list\.|Server \S+ successfully deleted from server list\.)$/m.exec(
      text,
    );
  if (done && text.trim() === done[0]) return { message: done[0] };
  return new ParseFailed(
    { target: host, command, cause: "unrecognised vtl reply (expected one success line)" },
    raw,
  );
}
