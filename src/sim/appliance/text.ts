// The framing every lunash command shares: banner, prompt, result footers, `Error:` blocks and the confirmation
// blocks of destructive commands. Wording and spacing follow reference/luna-cli.md §1; lines end with "\n" here
// and the session turns them into "\r\n" on a pty.

const RESULT_SUCCESS = "Command Result : 0 (Success)";
const RESULT_SHELL_ERROR = "Command Result : 65535 (Luna Shell execution)";

/** Result codes a command can end with; the footer text follows from the code. */
export type ResultCode = 0 | 65535;

export function footer(code: ResultCode): string {
  return code === 0 ? RESULT_SUCCESS : RESULT_SHELL_ERROR;
}

export function banner(softwareVersion: string): string {
  return `Luna Network HSM Command Line Shell v${softwareVersion}. Copyright (c) 2018 SafeNet. All rights reserved.`;
}

export function prompt(hostname: string): string {
  return `[${hostname}] lunash:>`;
}

/** A Luna return code as lunash prints it: upper-case hex, no `0x`, leading zeros dropped. */
export interface LunaError {
  code: number;
  name: string;
}

export const RC_OBJECT_NOT_IN_LIST: LunaError = { code: 0xc000040a, name: "RC_OBJECT_NOT_IN_LIST" };
export const LUNA_RET_UM_PIN_INCORRECT: LunaError = { code: 0xa00000, name: "LUNA_RET_UM_PIN_INCORRECT" };
export const LUNA_RET_SO_LOGIN_FAILURE_THRESHOLD: LunaError = {
  code: 0x30000f,
  name: "LUNA_RET_SO_LOGIN_FAILURE_THRESHOLD",
};

function hexCode(code: number): string {
  return code.toString(16).toUpperCase();
}

/** `Error:  '<canonical command>' failed. (<HEX> : <NAME>)` followed by explanation lines, each `Error:  `-prefixed. */
export function failedLine(command: string, err: LunaError): string {
  return `Error:  '${command}' failed. (${hexCode(err.code)} : ${err.name})`;
}

/** Right-align `value` in `width` columns (never truncates). */
export function lpad(value: string | number, width: number): string {
  return String(value).padStart(width);
}

/** Left-align `value` in `width` columns (never truncates). */
export function rpad(value: string | number, width: number): string {
  return String(value).padEnd(width);
}

/** `   Label:<spaces>value` with the value starting at column `valueCol` (0-based), as the Luna 7 shows do. */
export function field(label: string, value: string | number, valueCol: number, indent = 3): string {
  const head = `${" ".repeat(indent)}${label}`;
  const pad = Math.max(1, valueCol - head.length);
  return `${head}${" ".repeat(pad)}${value}`;
}

/** A section header with its `=` underline of the same length, indented like `hsm show`. */
export function section(title: string, indent = 3): string[] {
  const pad = " ".repeat(indent);
  return [`${pad}${title}`, `${pad}${"=".repeat(title.length)}`];
}
