// Entry point every lunash parser goes through: frame the capture, check that the echoed command (if captured) is
// the one this parser reads, and surface a device error before any field is read.

import { resolveCommand } from "../commands.ts";
import { type Capture, DeviceErrorReported, frameCapture, ParseError } from "../common.ts";
import { findLunashDeviceError } from "./error-block.ts";

export function readLunashOutput(raw: string, canonical: string): Capture {
  const capture = frameCapture(raw, "lunash");
  checkEcho(capture, canonical);
  const deviceError = findLunashDeviceError(capture);
  if (deviceError) throw new DeviceErrorReported(deviceError, raw);
  return capture;
}

export function checkEcho(capture: Capture, canonical: string): void {
  if (capture.echoedCommand === null) return;
  const r = resolveCommand(capture.shell, capture.echoedCommand);
  if (!r.ok) throw new ParseError(`echoed command not understood: ${r.reason}`, capture.raw);
  if (r.canonical.toLowerCase() !== canonical.toLowerCase()) {
    throw new ParseError(`capture is the output of '${r.canonical}', not '${canonical}'`, capture.raw);
  }
}
