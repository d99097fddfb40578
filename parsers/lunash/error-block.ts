// LunaSH device errors. The form is
//
//   Error:  'hsm login' failed. (A00000 : LUNA_RET_UM_PIN_INCORRECT)
//   Error:  <explanation>            (before or after the `failed.` line; may continue on indented lines)
//   Command Result : 65535 (Luna Shell execution)
//
// The footer alone cannot be trusted: the third wrong `hsm login` zeroizes the HSM and still ends with
// `Command Result : 0 (Success)`. So any `Error:` line makes the output an error, whatever the footer says; and a
// non-zero footer is an error even without an `Error:` line (then the code is the footer number, e.g. "65535").
import {
  type Capture,
  type DeviceError,
  deviceErrorSchema,
  frameCapture,
  ParseError,
  readWarnings,
} from "../common.ts";

export const command = "(error block)";
export const schema = deviceErrorSchema;

const ERROR_LINE = /^\s*Error\s*:\s*(.*)$/;
// The symbolic name is optional: a code without one is still the device's code.
const FAILED = /^'([^']+)' failed\.\s*\(\s*(?:0x)?([0-9A-Fa-f]+)\s*(?::\s*([A-Za-z0-9_]+)\s*)?\)\s*\.?$/;

/** The device error a lunash capture reports, or null when it reports none. */
export function findLunashDeviceError(capture: Capture): DeviceError | null {
  const lines = capture.lines;
  let code: string | null = null;
  let name: string | null = null;
  const explanation: string[] = [];
  let sawError = false;

  for (let i = 0; i < lines.length; i++) {
    const m = ERROR_LINE.exec(lines[i] ?? "");
    if (!m) continue;
    sawError = true;
    const text = (m[1] ?? "").trim();
    const failed = FAILED.exec(text);
    if (failed) {
      if (code === null) {
        code = (failed[2] ?? "").toUpperCase().replace(/^0+(?=.)/, "");
        name = failed[3] ?? (footerText(capture) || "");
      }
      continue;
    }
    if (text !== "") explanation.push(text);
    // An explanation may continue on indented lines (`        Use 'client list' to list all available clients.`).
    while (i + 1 < lines.length) {
      const next = lines[i + 1] ?? "";
      if (next.trim() === "" || !/^\s/.test(next) || ERROR_LINE.test(next)) break;
      explanation.push(next.trim());
      i++;
    }
  }

  const footer = capture.footer;
  const footerFailed = footer !== null && footer.shell === "lunash" && footer.code !== 0;
  if (!sawError && !footerFailed) return null;

  if (code === null) {
    if (footerFailed && footer.shell === "lunash") {
      code = String(footer.code);
      name = footer.text;
    } else {
      // An `Error:` line with a success footer and no return code: still a failure, the device named no code.
      code = "ERROR";
      name = "Error";
    }
  }
  let message = explanation.join(" ");
  if (message === "") {
    if (sawError) message = name ?? "";
    else
      message =
        capture.lines
          .map((l) => l.trim())
          .filter(Boolean)
          .join(" ") ||
        (name ?? "");
  }
  return { code, name: name ?? "", message, warnings: readWarnings(lines) };
}

/** Parse a capture that must be a device error (fixtures, callers that already know it failed). */
export function parse(raw: string): DeviceError {
  const found = findLunashDeviceError(frameCapture(raw, "lunash"));
  if (!found) throw new ParseError("no device error in this lunash output", raw);
  return found;
}

function footerText(capture: Capture): string | null {
  return capture.footer?.shell === "lunash" ? capture.footer.text : null;
}
