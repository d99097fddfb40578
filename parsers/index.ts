// The parser registry: `parseCommandOutput(shell, command, raw)` resolves the command (abbreviations included) to
// its canonical form, picks the one parser for it and returns a typed value, the device's own error, or a parse
// error carrying the raw text. It never throws for bad input and never returns half a result.
import type { z } from "zod";
import { resolveCommand } from "./commands.ts";
import {
  type DeviceError,
  DeviceErrorReported,
  frameCapture,
  matchPromptLine,
  normalizeText,
  ParseError,
  type Shell,
} from "./common.ts";
import { findLunacmDeviceError } from "./lunacm/command-result.ts";
import * as hagroupListgroups from "./lunacm/hagroup-listgroups.ts";
import * as hagroupSynchronize from "./lunacm/hagroup-synchronize.ts";
import * as partitionShowinfo from "./lunacm/partition-showinfo.ts";
import * as roleLogin from "./lunacm/role-login.ts";
import * as roleShow from "./lunacm/role-show.ts";
import * as slotList from "./lunacm/slot-list.ts";
import * as vtlListServers from "./lunacm/vtl-list-servers.ts";
import * as vtlVerify from "./lunacm/vtl-verify.ts";
import * as clientFingerprint from "./lunash/client-fingerprint.ts";
import * as clientList from "./lunash/client-list.ts";
import * as clientShow from "./lunash/client-show.ts";
import { findLunashDeviceError } from "./lunash/error-block.ts";
import * as hsmLogin from "./lunash/hsm-login.ts";
import * as hsmShow from "./lunash/hsm-show.ts";
import * as hsmShowPolicies from "./lunash/hsm-show-policies.ts";
import * as ntlsShow from "./lunash/ntls-show.ts";
import * as packageList from "./lunash/package-list.ts";
import * as partitionList from "./lunash/partition-list.ts";
import * as partitionShow from "./lunash/partition-show.ts";
import * as syslogTail from "./lunash/syslog-tail.ts";
import * as userList from "./lunash/user-list.ts";

export { commandWords, resolveCommand } from "./commands.ts";
export type { DeviceError, Shell } from "./common.ts";
export { DeviceErrorReported, ParseError } from "./common.ts";

export interface CommandParser {
  /** Fixture directory name: parsers/fixtures/<slug>/. */
  slug: string;
  shell: Shell;
  /** Canonical command words, e.g. `hsm showPolicies`. */
  command: string;
  schema: z.ZodType;
  parse(raw: string): unknown;
}

const entry = (
  slug: string,
  shell: Shell,
  mod: { command: string; schema: z.ZodType; parse(raw: string): unknown },
): CommandParser => ({ slug, shell, command: mod.command, schema: mod.schema, parse: mod.parse });

export const PARSERS: readonly CommandParser[] = [
  entry("hsm-show", "lunash", hsmShow),
  entry("hsm-show-policies", "lunash", hsmShowPolicies),
  entry("hsm-login", "lunash", hsmLogin),
  entry("partition-list", "lunash", partitionList),
  entry("partition-show", "lunash", partitionShow),
  entry("package-list", "lunash", packageList),
  entry("client-list", "lunash", clientList),
  entry("client-show", "lunash", clientShow),
  entry("client-fingerprint", "lunash", clientFingerprint),
  entry("user-list", "lunash", userList),
  entry("ntls-show", "lunash", ntlsShow),
  entry("syslog-tail", "lunash", syslogTail),
  entry("slot-list", "lunacm", slotList),
  entry("partition-showinfo", "lunacm", partitionShowinfo),
  entry("role-show", "lunacm", roleShow),
  entry("role-login", "lunacm", roleLogin),
  entry("hagroup-listgroups", "lunacm", hagroupListgroups),
  entry("hagroup-synchronize", "lunacm", hagroupSynchronize),
  entry("vtl-list-servers", "lunacm", vtlListServers),
  entry("vtl-verify", "lunacm", vtlVerify),
];

export function findParser(shell: Shell, canonical: string): CommandParser | undefined {
  return PARSERS.find((p) => p.shell === shell && p.command.toLowerCase() === canonical.toLowerCase());
}

export type ParseResult =
  | {
      ok: true;
      command: string;
      value: unknown;
      /**
       * Whether the capture ended with its `Command Result` footer. False for non-interactive captures (`ssh host cmd`,
       * `lunacm -q`, vtl): the value is then complete only as far as the capture went — rows after a cut at a line
       * boundary cannot be known. Captures taken by the shell driver always carry the footer.
       */
      footerSeen: boolean;
    }
  | { ok: false; command: string | null; deviceError: DeviceError }
  | { ok: false; command: string | null; parseError: { reason: string; raw: string } };

export function parseCommandOutput(shell: Shell, command: string, raw: string): ParseResult {
  const resolved = resolveCommand(shell, command);
  if (!resolved.ok) {
    // The device may have refused the command itself (`0x1 Unknown command`): report that, it explains more.
    try {
      const deviceError = findDeviceError(shell, raw);
      if (deviceError) return { ok: false, command: null, deviceError };
    } catch {
      // Unreadable framing: the resolution failure is the reason to report.
    }
    return { ok: false, command: null, parseError: { reason: resolved.reason, raw } };
  }
  const canonical = resolved.canonical;
  const parser = findParser(shell, canonical);
  try {
    if (!parser) {
      // No parser for this command, but the device may still have reported an error: that is worth knowing.
      const deviceError = findDeviceError(shell, raw);
      if (deviceError) return { ok: false, command: canonical, deviceError };
      return {
        ok: false,
        command: canonical,
        parseError: { reason: `no parser for ${shell} '${canonical}'`, raw },
      };
    }
    const value = parser.parse(raw);
    return { ok: true, command: canonical, value, footerSeen: frameCapture(raw, shell).footer !== null };
  } catch (err) {
    if (err instanceof DeviceErrorReported)
      return { ok: false, command: canonical, deviceError: err.deviceError };
    if (err instanceof ParseError)
      return { ok: false, command: canonical, parseError: { reason: err.reason, raw } };
    const reason = `parser for '${canonical}' failed unexpectedly: ${err instanceof Error ? err.message : String(err)}`;
    return { ok: false, command: canonical, parseError: { reason, raw } };
  }
}

/** The device error in a capture of either shell, or null. Throws ParseError when the framing is unreadable. */
export function findDeviceError(shell: Shell, raw: string): DeviceError | null {
  const capture = frameCapture(raw, shell);
  return shell === "lunash" ? findLunashDeviceError(capture) : findLunacmDeviceError(capture);
}

/** Shell and command read from the echoed prompt line of a capture (`[h] lunash:>hsm show`, `lunacm:>slot list`). */
export function detectCommand(raw: string): { shell: Shell; command: string; host: string | null } | null {
  for (const line of normalizeText(raw).split("\n")) {
    const prompt = matchPromptLine(line);
    if (prompt && prompt.command !== "")
      return { shell: prompt.shell, command: prompt.command, host: prompt.host };
  }
  return null;
}
