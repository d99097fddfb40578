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
        async run(command: string, opts?: CommandOptions): Promise<ShellReply> {
          const out = await session.run(command, { ...toRunOptions(opts), parse: false });
          return { command, raw: out.raw, result: parseClientTool(host.name, command, out.raw) };
        },
      };
    },
    async close() {
      const all = [...hostShells.values()];
      hostShells.clear();
      for (const p of all) await (await p.catch(() => undefined))?.close();
    },
  };
}

function adapt(session: ShellSession): DeviceShell {
  return {
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
