// Entry point every lunacm/vtl parser goes through: frame the capture, check the echoed command (if captured) is
// the one this parser reads, and surface a device error before any field is read.

import { resolveCommand } from "../commands.ts";
import { type Capture, DeviceErrorReported, frameCapture, ParseError } from "../common.ts";
import { findLunacmDeviceError } from "./command-result.ts";

export function readLunacmOutput(raw: string, canonical: string): Capture {
  const capture = frameCapture(raw, "lunacm");
  if (capture.echoedCommand !== null) {
    const r = resolveCommand("lunacm", capture.echoedCommand);
    if (!r.ok) throw new ParseError(`echoed command not understood: ${r.reason}`, raw);
    if (r.canonical.toLowerCase() !== canonical.toLowerCase()) {
      throw new ParseError(`capture is the output of '${r.canonical}', not '${canonical}'`, raw);
    }
  }
  const deviceError = findLunacmDeviceError(capture);
  if (deviceError) throw new DeviceErrorReported(deviceError, raw);
  return capture;
}
