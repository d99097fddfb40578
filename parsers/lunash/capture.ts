// Entry point every lunash parser goes through: frame the capture, check that the echoed command (if captured) is
// the one this parser reads, and surface a device error before any field is read.

import { type Capture, DeviceErrorReported, frameCapture, ParseError } from "../common.ts";
import { resolveCommand } from "../vocabulary.ts";
import { findLunashDeviceError } from "./error-block.ts";

export function readLunashOutput(raw: string, canonical: string): Capture {
  const capture = frameCapture(raw, "lunash");
  checkEcho(capture, canonical);
  const deviceError = findLunashDeviceError(capture);
  if (deviceError) throw new DeviceErrorReported(deviceError, raw);
  return capture;
}

function checkEcho(capture: Capture, canonical: string): void {
  if (capture.echoedCommand === null) return;
  const r = resolveCommand(capture.shell, capture.echoedCommand);
  if (!r.ok) throw new ParseError(`echoed command not understood: ${r.reason}`, capture.raw);
  if (r.canonical.toLowerCase() !== canonical.toLowerCase()) {
    throw new ParseError(`capture is the output of '${r.canonical}', not '${canonical}'`, capture.raw);
  }
}

/** A lunash change command's reply: it must carry its footer and exactly its documented success line. */
export function readLunashChange(raw: string, canonical: string, success: RegExp): Capture {
  const capture = readLunashOutput(raw, canonical);
  if (capture.footer === null)
    throw new ParseError(`no Command Result footer: the outcome of '${canonical}' is unknown`, raw);
  if (!capture.lines.some((l) => success.test(l.trim())))
    throw new ParseError(`no success line in the reply to '${canonical}': its outcome is unknown`, raw);
  return capture;
}

/**
 * The reply after a confirmation. The shell driver hands over only what followed the `proceed` it typed; an operator's
 * paste also holds the CAUTION/WARNING block and the `> proceed` line, which are skipped here (and a block not
 * answered `proceed` is refused: the change did not run).
 */
export function afterConfirmation(lines: readonly string[], raw: string): string[] {
  const start = lines.findIndex((l) => /^\s*(?:CAUTION|WARNING)\b/i.test(l));
  if (start < 0) return [...lines];
  const answered = lines.findIndex((l, i) => i > start && /^\s*>\s*proceed\s*$/i.test(l));
  if (answered < 0) throw new ParseError("the confirmation was not answered 'proceed'", raw);
  return lines.slice(answered + 1);
}
