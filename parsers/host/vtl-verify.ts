// `vtl verify`: the slots this client reaches over NTLS (`Slot  Serial #  Label` table). An empty table means NTLS
// reached no partition (client not registered, partition not assigned, clock skew, NTLS unbound).
// `Error: There are no registered servers` [V] (and any error without the slot table) is the tool's error. A server it
// could not reach while others answered is printed, before the table, as
//   Error: Unable to communicate with server <name>: <reason>.
// — that form is [I] (no capture of a partly reachable verify exists): it is read as part of the value, per server,
// so a step knows which appliance failed without reading error text.
import { z } from "zod";
import { conform, DeviceErrorReported, describeLine, frameCapture, isRule, ParseError } from "../common.ts";
import { findLunacmDeviceError } from "../lunacm/command-result.ts";
import { resolveCommand } from "../vocabulary.ts";

export const command = "vtl verify";

export const schema = z.strictObject({
  /** vtl version from its banner (`v10.7.2-16`), when captured. */
  version: z.string().nullable(),
  slots: z.array(
    z.strictObject({ slot: z.number().int().min(0), serial: z.string().regex(/^\d+$/), label: z.string() }),
  ),
  /** Servers vtl could not reach ([I] form), with its reason. */
  unreachable: z.array(z.strictObject({ server: z.string().min(1), reason: z.string() })),
});
export type VtlVerify = z.infer<typeof schema>;

const BANNER = /^vtl \(\d+-bit\) v(\S+?)\.?\s+Copyright\b/i;
const FOUND = /^The following Luna SA Slots\/Partitions were found:?$/i;
const HEADER = /^Slot\s+Serial\s*#\s+Label$/i;
const ROW = /^\s*(\d+)\s+(\d+)(?:\s+(\S(?:.*\S)?))?\s*$/;
const UNREACHABLE = /^Error:\s*Unable to communicate with server (\S+):\s*(.*?)\.?$/;

export function parse(raw: string): VtlVerify {
  const capture = frameCapture(raw, "host");
  if (capture.echoedCommand !== null) {
    const r = resolveCommand("host", capture.echoedCommand);
    if (!r.ok || r.canonical !== command)
      throw new ParseError(`capture is not the output of '${command}'`, raw);
  }
  const unreachable: VtlVerify["unreachable"] = [];
  const lines = capture.lines.filter((l) => {
    const m = UNREACHABLE.exec(l.trim());
    if (m) unreachable.push({ server: m[1] ?? "", reason: m[2] ?? "" });
    return !m;
  });
  // Any other error (no registered server, no slot found) is vtl's refusal.
  const error = findLunacmDeviceError({ ...capture, lines });
  if (error) throw new DeviceErrorReported(error, raw);
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
  return conform(schema, { version, slots, unreachable }, raw);
}
