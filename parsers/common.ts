// Shared machinery for every Luna CLI parser: normalising a raw capture (CRLF, ANSI, backspaces), cutting away the
// echoed command line, the trailing prompt and the `Command Result` footer, and the two error types a parser may
// raise. Pure functions only: parsers/ does no I/O and imports nothing from src/.
import { z } from "zod";
import { commandWords, type Shell } from "./vocabulary.ts";

export type { Shell } from "./vocabulary.ts";

/** The text could not be explained. Carries the reason and the raw capture it refused (never half a result). */
export class ParseError extends Error {
  readonly reason: string;
  readonly raw: string;
  constructor(reason: string, raw: string) {
    super(`cannot parse Luna output: ${reason}`);
    this.name = "ParseError";
    this.reason = reason;
    this.raw = raw;
  }
}

export const deviceErrorSchema = z.strictObject({
  /** Luna return code as printed: lunash hex without 0x (`A00000`), lunash footer number (`65535`), lunacm `0xa0`. */
  code: z.string().min(1),
  /** Symbolic name (`LUNA_RET_UM_PIN_INCORRECT`) or, when the device printed none, the footer text. */
  name: z.string(),
  /** Human explanation lines the device printed, joined with a space. */
  message: z.string(),
  /**
   * Every `Warning`/`Caution` text printed with the failure, unwrapped, as printed (lunacm's "Synchronize may fail.
   * The members in slot 0 and slot 1 have conflicting settings for private key cloning." is one): a warning often says
   * more about why than the code does.
   */
  warnings: z.array(z.string()),
});
export type DeviceError = z.infer<typeof deviceErrorSchema>;

/** The device itself reported a failure (an `Error:` block or a failing footer). Not a parse problem. */
export class DeviceErrorReported extends Error {
  readonly deviceError: DeviceError;
  readonly raw: string;
  constructor(deviceError: DeviceError, raw: string) {
    super(`device reported an error: ${deviceError.code} ${deviceError.name}: ${deviceError.message}`);
    this.name = "DeviceErrorReported";
    this.deviceError = deviceError;
    this.raw = raw;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Normalisation

// CSI (`ESC [ ... final`), OSC (`ESC ] ... BEL|ST`) and two-byte escapes, as a PTY or a terminal paste may carry.
const ANSI_CSI = /\x1b\[[0-?]*[ -/]*[@-~]/g;
const ANSI_OSC = /\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)/g;
const ANSI_OTHER = /\x1b[@-Z\\-_]/g;
// Control characters other than TAB and LF that carry no text (NUL, BEL, ...). CR and BS are handled before.
const OTHER_CONTROLS = /[\x00-\x08\x0b-\x1f\x7f]/g;

/** Text as a reader sees it: LF line ends, no escape sequences, backspaces applied, no trailing blanks per line. */
export function normalizeText(raw: string): string {
  let text = raw.replace(ANSI_OSC, "").replace(ANSI_CSI, "").replace(ANSI_OTHER, "");
  // A PTY echoes "x\b" when it erases; apply the erasure rather than keep both characters.
  let previous: string;
  do {
    previous = text;
    text = text.replace(/[^\n\b]\x08/g, "");
  } while (text !== previous);
  text = text.replace(/\r+\n/g, "\n").replace(/\r/g, "\n");
  text = text.replace(OTHER_CONTROLS, "");
  return text
    .split("\n")
    .map((line) => line.replace(/[ \t]+$/, ""))
    .join("\n");
}

// ---------------------------------------------------------------------------------------------------------------
// Prompts and echo lines

// `[hostname] lunash:>hsm show` — the hostname part is absent on some older captures.
const LUNASH_PROMPT = /^\s*(?:\[([^\]\n]*)\]\s*)?lunash:>(.*)$/;
// `lunacm:>slot list`
const LUNACM_PROMPT = /^\s*lunacm:>(.*)$/;
// A client host shell running a client tool: `$ vtl verify` (host), `[root@c ~]# lunacm -q hagroup listgroups` (lunacm),
// `C:\Program Files\SafeNet\LunaClient>vtl listServers`. A prompt character is required, so the vtl banner line
// ("vtl (64-bit) v10...") is never mistaken for an echo.
const CLIENT_SHELL_ECHO = /^.*?[$#>]\s*(vtl|lunacm)(?:\.exe)?\s+(\S.*)$/;

export interface PromptLine {
  shell: Shell;
  host: string | null;
  /** What follows the prompt; "" for a bare prompt. */
  command: string;
}

/** Recognise a prompt line of either shell (or a client-shell line running vtl / lunacm -q). */
export function matchPromptLine(line: string): PromptLine | null {
  const sh = LUNASH_PROMPT.exec(line);
  if (sh) return { shell: "lunash", host: sh[1] ?? null, command: (sh[2] ?? "").trim() };
  const cm = LUNACM_PROMPT.exec(line);
  if (cm) return { shell: "lunacm", host: null, command: (cm[1] ?? "").trim() };
  const client = CLIENT_SHELL_ECHO.exec(line);
  if (client) {
    const tool = client[1] ?? "";
    const rest = (client[2] ?? "").trim();
    if (tool === "vtl") return { shell: "host", host: null, command: `vtl ${rest}` };
    // `lunacm -q <command>` runs one LunaCM command; any other lunacm invocation is not a command echo.
    const q = /^-q\s+(\S.*)$/.exec(rest);
    if (q) return { shell: "lunacm", host: null, command: (q[1] ?? "").trim() };
  }
  return null;
}

// ---------------------------------------------------------------------------------------------------------------
// Footers

export type Footer =
  | { shell: "lunash"; code: number; text: string }
  | { shell: "lunacm"; ok: true }
  | { shell: "lunacm"; ok: false; code: string; text: string };

const LUNASH_FOOTER = /^\s*Command Result\s*:\s*(\d+)\s*\(([^()]*(?:\([^()]*\)[^()]*)*)\)\s*$/;
const LUNACM_FOOTER_OK = /^\s*Command Result\s*:\s*No Error\s*$/i;
// `Command Result : 0xb (User Cancelled Operation)`; `0x1 Unknown command` is also seen without parentheses.
const LUNACM_FOOTER_ERR = /^\s*Command Result\s*:\s*(0x[0-9a-fA-F]+)\s*(?:\((.*)\)|(.*))\s*$/;
const FOOTER_START = /^\s*Command Result\b/;

/** Read a footer line; null when the line is not a footer; ParseError when it starts like one but is garbled. */
function readFooter(line: string, shell: Shell, raw: string): Footer | null {
  if (!FOOTER_START.test(line)) return null;
  if (shell === "lunash") {
    const m = LUNASH_FOOTER.exec(line);
    if (m) return { shell, code: Number(m[1]), text: (m[2] ?? "").trim() };
  } else {
    // A client tool (vtl) prints no footer of its own; one in its capture is read as lunacm prints it.
    if (LUNACM_FOOTER_OK.test(line)) return { shell: "lunacm", ok: true };
    const m = LUNACM_FOOTER_ERR.exec(line);
    if (m)
      return {
        shell: "lunacm",
        ok: false,
        code: (m[1] ?? "").toLowerCase(),
        text: (m[2] ?? m[3] ?? "").trim(),
      };
  }
  throw new ParseError(`unreadable ${shell} footer line: ${JSON.stringify(line.trim())}`, raw);
}

// ---------------------------------------------------------------------------------------------------------------
// Capture framing

export interface Capture {
  shell: Shell;
  /** Hostname from `[host] lunash:>`, when the echo line was captured. */
  host: string | null;
  /** The command as echoed after the prompt (not canonicalised), when captured. */
  echoedCommand: string | null;
  /** Output lines between the echo and the footer, leading and trailing blank lines removed. */
  lines: string[];
  footer: Footer | null;
  /** The raw text as given, for error reports. */
  raw: string;
}

/**
 * Cut a capture into echo / body / footer. Accepts: banner or anything before the echoed command line, a missing echo
 * line, a missing footer (non-interactive captures), a missing trailing prompt. Refuses: two commands in one capture,
 * two footers, a prompt of the other shell, text after the footer.
 */
export function frameCapture(raw: string, shell: Shell): Capture {
  const lines = normalizeText(raw).split("\n");
  let start = 0;
  let host: string | null = null;
  let echoedCommand: string | null = null;

  // The echo line is the first prompt line that carries a command; what precedes it (banner, login) is not output.
  for (let i = 0; i < lines.length; i++) {
    const prompt = matchPromptLine(lines[i] ?? "");
    if (!prompt || prompt.command === "") continue;
    if (prompt.shell !== shell) {
      throw new ParseError(`capture shows a ${prompt.shell} prompt, expected ${shell} output`, raw);
    }
    host = prompt.host;
    echoedCommand = prompt.command;
    start = i + 1;
    break;
  }

  const body: string[] = [];
  let footer: Footer | null = null;
  let afterFooter = false;
  let closingPrompt = false;
  for (let i = start; i < lines.length; i++) {
    const line = lines[i] ?? "";
    const prompt = matchPromptLine(line);
    if (prompt) {
      if (prompt.shell !== shell) {
        throw new ParseError(`capture shows a ${prompt.shell} prompt, expected ${shell} output`, raw);
      }
      if (prompt.command !== "") {
        throw new ParseError(
          `capture holds more than one command ('${commandWords(echoedCommand ?? "")}' and '${commandWords(prompt.command)}')`,
          raw,
        );
      }
      // A bare prompt ends the output; only blank lines and further bare prompts may follow it.
      closingPrompt = true;
      for (const rest of lines.slice(i + 1)) {
        const p = matchPromptLine(rest);
        if (rest.trim() !== "" && !(p && p.command === "")) {
          throw new ParseError(`text after the closing prompt: ${JSON.stringify(rest.trim())}`, raw);
        }
      }
      break;
    }
    const f = readFooter(line, shell, raw);
    if (f) {
      if (footer) throw new ParseError("capture holds more than one Command Result footer", raw);
      footer = f;
      afterFooter = true;
      continue;
    }
    if (afterFooter) {
      if (line.trim() !== "") {
        throw new ParseError(`text after the Command Result footer: ${JSON.stringify(line.trim())}`, raw);
      }
      continue;
    }
    body.push(line);
  }
  // Without a footer or a closing prompt nothing marks the end of the output. A capture that then also stops
  // mid-line (no final newline) was cut off: its last line may hold half a value ("10" read as "1").
  const text = lines.join("\n");
  if (!footer && !closingPrompt && text.trim() !== "" && !text.endsWith("\n")) {
    throw new ParseError("capture ends mid-line with no footer or prompt after it (output truncated?)", raw);
  }
  return { shell, host, echoedCommand, lines: trimBlankLines(body), footer, raw };
}

function trimBlankLines(lines: string[]): string[] {
  let a = 0;
  let b = lines.length;
  while (a < b && (lines[a] ?? "").trim() === "") a++;
  while (b > a && (lines[b - 1] ?? "").trim() === "") b--;
  return lines.slice(a, b);
}

// ---------------------------------------------------------------------------------------------------------------
// Small readers shared by the parsers

export interface KeyValue {
  /** Label as printed, trimmed. */
  label: string;
  /** Label lower-cased with runs of blanks collapsed: the form parsers compare against. */
  key: string;
  value: string;
}

/** `Label:   value` (lunash) — split at the first colon; the label must start with a letter. */
export function readColonPair(line: string): KeyValue | null {
  const m = /^\s*([A-Za-z][^:]*?)\s*:(?:\s+(.*?)|)\s*$/.exec(line);
  if (!m) return null;
  const label = (m[1] ?? "").trim();
  return { label, key: labelKey(label), value: (m[2] ?? "").trim() };
}

/** `Label ->   value` (lunacm). */
export function readArrowPair(line: string): KeyValue | null {
  const m = /^\s*([A-Za-z][^>]*?)\s*->\s*(.*?)\s*$/.exec(line);
  if (!m) return null;
  const label = (m[1] ?? "").trim();
  return { label, key: labelKey(label), value: (m[2] ?? "").trim() };
}

function labelKey(label: string): string {
  return label.toLowerCase().replace(/\s+/g, " ").trim();
}

/** A rule line under a header: `=====`, `-----`, possibly several runs separated by blanks. */
export function isRule(line: string, char: "=" | "-" = "="): boolean {
  const re = char === "=" ? /^\s*=+(?:\s+=+)*\s*$/ : /^\s*-+(?:\s+-+)*\s*$/;
  return re.test(line);
}

export function parseYesNo(value: string, what: string, raw: string): boolean {
  const v = value.trim().toLowerCase();
  if (v === "yes" || v === "true" || v === "enabled") return true;
  if (v === "no" || v === "false" || v === "disabled") return false;
  throw new ParseError(`${what}: expected yes/no, got ${JSON.stringify(value)}`, raw);
}

export function parseNonNegativeInt(value: string, what: string, raw: string): number {
  const v = value.trim();
  if (!/^\d+$/.test(v))
    throw new ParseError(`${what}: expected a whole number, got ${JSON.stringify(value)}`, raw);
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new ParseError(`${what}: number out of range: ${v}`, raw);
  return n;
}

/** Validate a parser's result against its own schema: a parser that produces a shape it does not declare is a bug. */
export function conform<T>(schema: z.ZodType<T>, value: unknown, raw: string): T {
  const result = schema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new ParseError(
      `result does not fit its schema at ${issue?.path.join(".") ?? "?"}: ${issue?.message ?? "invalid"}`,
      raw,
    );
  }
  return result.data;
}

export function describeLine(line: string): string {
  return JSON.stringify(line.trim());
}

/**
 * Keep an unknown `label: value` pair. The same label twice with different values is refused: one of them would be
 * silently lost, and a repeated label usually means the parser is reading a layout it does not understand.
 */
export function putExtra(extra: Record<string, string>, label: string, value: string, raw: string): void {
  const seen = extra[label];
  if (seen !== undefined && seen !== value) {
    throw new ParseError(`'${label}' printed twice with different values (layout not understood)`, raw);
  }
  extra[label] = value;
}

const WARNING_START = /^\s*(?:Warning|Caution)\s*[:!]/i;
const LABELLED_LINE = /^\s*(?:Warning|Caution|Error|Command Result)\b/i;

/**
 * Every `Warning:` / `Caution:` text in the output lines, a wrapped one joined back into one (its continuation lines
 * run to the next blank or labelled line), trimmed, inner spacing as printed.
 */
export function readWarnings(lines: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? "";
    if (!WARNING_START.test(line)) continue;
    const parts = [line.trim()];
    while (i + 1 < lines.length) {
      const next = lines[i + 1] ?? "";
      if (next.trim() === "" || LABELLED_LINE.test(next) || /->/.test(next) || /^\s*>/.test(next)) break;
      parts.push(next.trim());
      i++;
    }
    out.push(parts.join(" "));
  }
  return out;
}
