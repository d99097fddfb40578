// lunacm changes whose whole success reply is the `Command Result : No Error` footer (reference §15: recover, retry,
// interval "success: Command Result : No Error"; `role logout` [I] alike). Any other line is refused: a reply we do not
// understand is an unknown outcome, and the caller re-reads the state it changed.
import { z } from "zod";
import { conform, describeLine, ParseError } from "../common.ts";
import { readLunacmChange } from "./capture.ts";

const schema = z.strictObject({ done: z.literal(true) });
export type LunacmDone = z.infer<typeof schema>;

function footerOnly(canonical: string) {
  return {
    command: canonical,
    schema,
    parse(raw: string): LunacmDone {
      const capture = readLunacmChange(raw, canonical);
      const line = capture.lines.find((l) => l.trim() !== "");
      if (line !== undefined)
        throw new ParseError(`unrecognised line in the reply to '${canonical}': ${describeLine(line)}`, raw);
      return conform(schema, { done: true }, raw);
    },
  };
}

export const roleLogout = footerOnly("role logout");
export const hagroupRecover = footerOnly("hagroup recover");
