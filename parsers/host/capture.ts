// Entry point of the client tools' parsers (vtl on a client host's OS shell): vtl prints lunacm's `Error ...:` lines
// but no footer, so the capture is framed like lunacm's with the host shell's echo line (`$ vtl verify`).
import type { Capture } from "../common.ts";
import { readLunacmOutput } from "../lunacm/capture.ts";

export function readHostOutput(raw: string, canonical: string): Capture {
  return readLunacmOutput(raw, canonical, "host");
}
