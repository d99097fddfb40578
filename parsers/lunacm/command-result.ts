// LunaCM (and vtl) success and failure. LunaCM ends each command with `Command Result : No Error` or
// `Command Result : 0x<hex> (<text>)` (e.g. `0xb (User Cancelled Operation)`, `0xa0 (CKR_PIN_INCORRECT)`), often
// preceded by an `Error ...:` line (`Error in execution: command cancelled.`). `lunacm -q` and vtl print no footer, so
// an `Error` line alone is a failure too (`Error: There are no registered servers`), and so is an `Error` line above a
// `No Error` footer: contradictory output fails closed.
import {
  type Capture,
  type DeviceError,
  deviceErrorSchema,
  frameCapture,
  ParseError,
  readWarnings,
} from "../common.ts";

export const command = "(command result)";
export const schema = deviceErrorSchema;

const ERROR_LINE = /^\s*Error\b[^:]*:\s*(.*?)\s*$/;

export function findLunacmDeviceError(capture: Capture): DeviceError | null {
  const messages: string[] = [];
  for (const line of capture.lines) {
    const m = ERROR_LINE.exec(line);
    if (m && (m[1] ?? "") !== "") messages.push(m[1] ?? "");
    else if (m) messages.push(line.trim());
  }
  const footer = capture.footer;
  const warnings = readWarnings(capture.lines);
  if (footer && footer.shell === "lunacm" && !footer.ok) {
    return { code: footer.code, name: footer.text, message: messages.join(" ") || footer.text, warnings };
  }
  if (messages.length === 0) return null;
  return { code: "ERROR", name: "Error", message: messages.join(" "), warnings };
}

/** Parse a capture that must be a LunaCM/vtl failure (fixtures, callers that already know it failed). */
export function parse(raw: string): DeviceError {
  const found = findLunacmDeviceError(frameCapture(raw, "lunacm"));
  if (!found) throw new ParseError("no device error in this lunacm output", raw);
  return found;
}
