// `vtl verify`: the slots this client reaches over NTLS (`Slot  Serial #  Label` table). An empty table means NTLS
// reached no partition (client not registered, partition not assigned, clock skew, NTLS unbound).
// `Error: There are no registered servers` is reported as a device error by the framing.
import { z } from "zod";
import { conform, describeLine, isRule, ParseError } from "../common.ts";
import { readHostOutput } from "./capture.ts";

export const command = "vtl verify";

export const schema = z.strictObject({
  /** vtl version from its banner (`v10.7.2-16`), when captured. */
  version: z.string().nullable(),
  slots: z.array(
    z.strictObject({ slot: z.number().int().min(0), serial: z.string().regex(/^\d+$/), label: z.string() }),
  ),
});
export type VtlVerify = z.infer<typeof schema>;

const BANNER = /^vtl \(\d+-bit\) v(\S+?)\.?\s+Copyright\b/i;
const FOUND = /^The following Luna SA Slots\/Partitions were found:?$/i;
const HEADER = /^Slot\s+Serial\s*#\s+Label$/i;
const ROW = /^\s*(\d+)\s+(\d+)(?:\s+(\S(?:.*\S)?))?\s*$/;

export function parse(raw: string): VtlVerify {
  const capture = readHostOutput(raw, command);
  const lines = capture.lines;
  let version: string | null = null;
  let found = false;
  let table = false;
  const slots: VtlVerify["slots"] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? "";
    const t = line.trim();
    if (t === "") continue;
    const b = BANNER.exec(t);
    if (b && !found) {
      version = b[1] ?? null;
      continue;
    }
    if (FOUND.test(t) && !found) {
      found = true;
      continue;
    }
    if (found && !table && HEADER.test(t)) {
      if (!isRule(lines[i + 1] ?? "")) throw new ParseError("slot table header without its === rule", raw);
      table = true;
      i++;
      continue;
    }
    if (table) {
      const m = ROW.exec(line);
      if (!m) throw new ParseError(`unreadable slot row (truncated?): ${describeLine(line)}`, raw);
      slots.push({ slot: Number(m[1]), serial: m[2] ?? "", label: m[3] ?? "" });
      continue;
    }
    throw new ParseError(`unrecognised line in 'vtl verify' output: ${describeLine(line)}`, raw);
  }
  if (!found || !table) throw new ParseError("no slot table in 'vtl verify' output (truncated?)", raw);
  return conform(schema, { version, slots }, raw);
}
