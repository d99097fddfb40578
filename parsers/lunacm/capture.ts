// Entry point every lunacm parser goes through: frame the capture, check the echoed command (if captured) is the one
// this parser reads, and surface a device error before any field is read.
import { type Capture, DeviceErrorReported, frameCapture, ParseError } from "../common.ts";
import { resolveCommand, type Shell } from "../vocabulary.ts";
import { findLunacmDeviceError } from "./command-result.ts";

export function readLunacmOutput(
  raw: string,
  canonical: string,
  shell: Exclude<Shell, "lunash"> = "lunacm",
): Capture {
  const capture = frameCapture(raw, shell);
  if (capture.echoedCommand !== null) {
    const r = resolveCommand(shell, capture.echoedCommand);
    if (!r.ok) throw new ParseError(`echoed command not understood: ${r.reason}`, raw);
    if (r.canonical.toLowerCase() !== canonical.toLowerCase()) {
      throw new ParseError(`capture is the output of '${r.canonical}', not '${canonical}'`, raw);
    }
  }
  const deviceError = findLunacmDeviceError(capture);
  if (deviceError) throw new DeviceErrorReported(deviceError, raw);
  return capture;
}

/** A lunacm change command's reply: success is its `No Error` footer; without a footer the outcome is unknown. */
export function readLunacmChange(raw: string, canonical: string): Capture {
  const capture = readLunacmOutput(raw, canonical);
  if (capture.footer === null)
    throw new ParseError(`no Command Result footer: the outcome of '${canonical}' is unknown`, raw);
  return capture;
}
