// The parser registry: one parser per command that lunafleet sends, each typed by its own schema, found through the
// command vocabulary (parsers/vocabulary.ts) so abbreviations resolve the way the device resolves them. interpret()
// is the one interpretation of a reply: a typed value, the device's own error (code, name, message, every warning),
// or a parse error carrying the raw text. It never throws for bad input and never returns half a result.
import type { z } from "zod";
import {
  type DeviceError,
  DeviceErrorReported,
  frameCapture,
  matchPromptLine,
  normalizeText,
  ParseError,
} from "./common.ts";
import * as vtlListServers from "./host/vtl-list-servers.ts";
import { vtlAddServer, vtlDeleteServer } from "./host/vtl-server-change.ts";
import * as vtlVerify from "./host/vtl-verify.ts";
import { findLunacmDeviceError } from "./lunacm/command-result.ts";
import { hagroupRecover, roleLogout } from "./lunacm/footer-only.ts";
import * as hagroupListgroups from "./lunacm/hagroup-listgroups.ts";
import { hagroupInterval, hagroupRetry } from "./lunacm/hagroup-settings.ts";
import * as hagroupSynchronize from "./lunacm/hagroup-synchronize.ts";
import * as partitionShowinfo from "./lunacm/partition-showinfo.ts";
import * as roleLogin from "./lunacm/role-login.ts";
import * as roleShow from "./lunacm/role-show.ts";
import * as slotList from "./lunacm/slot-list.ts";
import * as slotSet from "./lunacm/slot-set.ts";
import { clientAssignPartition, clientDelete, clientRegister } from "./lunash/client-change.ts";
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
import * as sysconfRegenCert from "./lunash/sysconf-regen-cert.ts";
import * as syslogTail from "./lunash/syslog-tail.ts";
import * as userList from "./lunash/user-list.ts";
import { resolveCommand, type Shell } from "./vocabulary.ts";

export type { DeviceError } from "./common.ts";
export { DeviceErrorReported, ParseError } from "./common.ts";
export type { CloningConflict } from "./lunacm/hagroup-synchronize.ts";
export { cloningConflictsIn } from "./lunacm/hagroup-synchronize.ts";
export type { CommandClass, CommandEntry, Reading, Shell } from "./vocabulary.ts";
export { commandWords, findCommand, readings, resolveCommand, splitWords, VOCABULARY } from "./vocabulary.ts";

export interface CommandParser<T = unknown> {
  /** Fixture directory name: parsers/fixtures/<slug>/. */
  slug: string;
  shell: Shell;
  /** Canonical command words, e.g. `hsm showPolicies`. */
  command: string;
  schema: z.ZodType<T>;
  parse(raw: string): T;
}

const entry = <T>(
  slug: string,
  shell: Shell,
  mod: { command: string; schema: z.ZodType<T>; parse(raw: string): T },
): CommandParser<T> => ({ slug, shell, command: mod.command, schema: mod.schema, parse: mod.parse });

/** Every parser, typed: `shell.send("hsm show", parsers.hsmShow)` returns what hsm-show.ts says it returns. */
export const parsers = {
  hsmShow: entry("hsm-show", "lunash", hsmShow),
  hsmShowPolicies: entry("hsm-show-policies", "lunash", hsmShowPolicies),
  hsmLogin: entry("hsm-login", "lunash", hsmLogin),
  partitionList: entry("partition-list", "lunash", partitionList),
  partitionShow: entry("partition-show", "lunash", partitionShow),
  packageList: entry("package-list", "lunash", packageList),
  clientList: entry("client-list", "lunash", clientList),
  clientShow: entry("client-show", "lunash", clientShow),
  clientFingerprint: entry("client-fingerprint", "lunash", clientFingerprint),
  clientRegister: entry("client-register", "lunash", clientRegister),
  clientAssignPartition: entry("client-assign-partition", "lunash", clientAssignPartition),
  clientDelete: entry("client-delete", "lunash", clientDelete),
  userList: entry("user-list", "lunash", userList),
  ntlsShow: entry("ntls-show", "lunash", ntlsShow),
  syslogTail: entry("syslog-tail", "lunash", syslogTail),
  sysconfRegenCert: entry("sysconf-regen-cert", "lunash", sysconfRegenCert),
  slotList: entry("slot-list", "lunacm", slotList),
  slotSet: entry("slot-set", "lunacm", slotSet),
  partitionShowinfo: entry("partition-showinfo", "lunacm", partitionShowinfo),
  roleShow: entry("role-show", "lunacm", roleShow),
  roleLogin: entry("role-login", "lunacm", roleLogin),
  roleLogout: entry("role-logout", "lunacm", roleLogout),
  hagroupListgroups: entry("hagroup-listgroups", "lunacm", hagroupListgroups),
  hagroupSynchronize: entry("hagroup-synchronize", "lunacm", hagroupSynchronize),
  hagroupRecover: entry("hagroup-recover", "lunacm", hagroupRecover),
  hagroupRetry: entry("hagroup-retry", "lunacm", hagroupRetry),
  hagroupInterval: entry("hagroup-interval", "lunacm", hagroupInterval),
  vtlListServers: entry("vtl-list-servers", "host", vtlListServers),
  vtlVerify: entry("vtl-verify", "host", vtlVerify),
  vtlAddServer: entry("vtl-add-server", "host", vtlAddServer),
  vtlDeleteServer: entry("vtl-delete-server", "host", vtlDeleteServer),
} as const;

export const PARSERS: readonly CommandParser[] = Object.values(parsers);

/** The parsed value of a reply: `T` of the parser that read it. */
export type Parsed<P> = P extends CommandParser<infer T> ? T : never;

export function findParser(shell: Shell, canonical: string): CommandParser | undefined {
  return PARSERS.find((p) => p.shell === shell && p.command.toLowerCase() === canonical.toLowerCase());
}

/** What a reply means, as its one parser reads it. */
export type Interpretation<T> =
  | {
      ok: true;
      value: T;
      /**
       * Whether the capture ended with its `Command Result` footer. False for non-interactive captures (`ssh host cmd`,
       * `lunacm -q`, vtl): the value is then complete only as far as the capture went — rows after a cut at a line
       * boundary cannot be known. Captures taken by the shell driver always carry the footer (vtl has none).
       */
      footerSeen: boolean;
    }
  | { ok: false; deviceError: DeviceError }
  | { ok: false; parseError: { reason: string; raw: string } };

/** Interpret a reply with its command's parser: the typed value, the device's error, or why it cannot be read. */
export function interpret<T>(parser: CommandParser<T>, raw: string): Interpretation<T> {
  try {
    const value = parser.parse(raw);
    return { ok: true, value, footerSeen: frameCapture(raw, parser.shell).footer !== null };
  } catch (err) {
    if (err instanceof DeviceErrorReported) return { ok: false, deviceError: err.deviceError };
    if (err instanceof ParseError) return { ok: false, parseError: { reason: err.reason, raw } };
    const reason = `parser for '${parser.command}' failed unexpectedly: ${err instanceof Error ? err.message : String(err)}`;
    return { ok: false, parseError: { reason, raw } };
  }
}

export type ParseResult =
  | ({ ok: true; command: string } & Extract<Interpretation<unknown>, { ok: true }>)
  | { ok: false; command: string | null; deviceError: DeviceError }
  | { ok: false; command: string | null; parseError: { reason: string; raw: string } };

/** Resolve a command line (abbreviations included), pick its parser and interpret the capture (`lunafleet parse`). */
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
  if (!parser) {
    // No parser for this command, but the device may still have reported an error: that is worth knowing.
    try {
      const deviceError = findDeviceError(shell, raw);
      if (deviceError) return { ok: false, command: canonical, deviceError };
    } catch (err) {
      if (err instanceof ParseError)
        return { ok: false, command: canonical, parseError: { reason: err.reason, raw } };
      throw err;
    }
    return {
      ok: false,
      command: canonical,
      parseError: { reason: `no parser for ${shell} '${canonical}'`, raw },
    };
  }
  return { command: canonical, ...interpret(parser, raw) };
}

/** The device error in a capture of either shell, or null. Throws ParseError when the framing is unreadable. */
export function findDeviceError(shell: Shell, raw: string): DeviceError | null {
  const capture = frameCapture(raw, shell);
  return shell === "lunash" ? findLunashDeviceError(capture) : findLunacmDeviceError(capture);
}

/** Shell and command read from the echoed prompt line of a capture (`[h] lunash:>hsm show`, `$ vtl verify`). */
export function detectCommand(raw: string): { shell: Shell; command: string; host: string | null } | null {
  for (const line of normalizeText(raw).split("\n")) {
    const prompt = matchPromptLine(line);
    if (prompt && prompt.command !== "")
      return { shell: prompt.shell, command: prompt.command, host: prompt.host };
  }
  return null;
}
