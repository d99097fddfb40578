// `slot set -slot <n>`: lunacm answers with the slot it now works on (reference §14, verbatim form):
//   Current Slot Id: 1 (Luna User Slot 7.0.1 (PW) Signing With Cloning Mode)
// The id must be read back: every later command of the session goes to that slot (a login above all).
import { z } from "zod";
import { conform, describeLine, ParseError } from "../common.ts";
import { readLunacmChange } from "./capture.ts";

export const command = "slot set";

export const schema = z.strictObject({
  slotId: z.number().int().min(0),
  /** What lunacm says the slot is, as printed (nested parentheses kept). */
  description: z.string().nullable(),
});
export type SlotSet = z.infer<typeof schema>;

const CURRENT = /^Current Slot Id:\s*(\d+)(?:\s+\((.*)\))?$/;

export function parse(raw: string): SlotSet {
  const capture = readLunacmChange(raw, command);
  let found: SlotSet | null = null;
  for (const line of capture.lines) {
    const t = line.trim();
    if (t === "") continue;
    const m = CURRENT.exec(t);
    if (m && found === null) {
      found = { slotId: Number(m[1]), description: m[2] ?? null };
      continue;
    }
    throw new ParseError(`unrecognised line in the reply to 'slot set': ${describeLine(line)}`, raw);
  }
  if (!found) throw new ParseError("no 'Current Slot Id:' line: the current slot is unknown", raw);
  return conform(schema, found, raw);
}
