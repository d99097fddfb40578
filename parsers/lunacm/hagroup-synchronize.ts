// `hagroup synchronize -group <label>`: replicates objects across HA members. The one warning the reference verifies
// is the cloning-policy conflict, printed before the device tries:
//   Warning: Synchronize may fail.  The members in slot 0 and slot 1 have conflicting settings for private key cloning.
// It is read typed (`cloningConflicts: [{ slots: [0, 1] }]`) because it means the members cannot exchange private
// keys: with a success footer a "successful" sync may have left them apart; with a failing footer (lunacm then reports
// e.g. `0x30 (CKR_DEVICE_ERROR)`) the device error keeps the warning, and cloningConflictsIn() reads it from there —
// whatever the footer, the conflict is known. A warning may be wrapped over several lines by a terminal.
import { z } from "zod";
import { conform, ParseError, readWarnings } from "../common.ts";
import { readLunacmOutput } from "./capture.ts";

export const command = "hagroup synchronize";

const conflict = z.strictObject({ slots: z.tuple([z.number().int().min(0), z.number().int().min(0)]) });
export type CloningConflict = z.infer<typeof conflict>;

export const schema = z.strictObject({
  /** Every cloning conflict reported (groups with more than two members may print several). */
  cloningConflicts: z.array(conflict),
  /** Every `Warning:` text, unwrapped, as printed. */
  warnings: z.array(z.string()),
  /** The other output lines, as printed (the layout beyond the warning is not verified). */
  messages: z.array(z.string()),
});
export type HagroupSynchronize = z.infer<typeof schema>;

const CLONING =
  /^Warning:\s*Synchronize may fail\.\s+The members in slot (\d+) and slot (\d+) have conflicting settings for private key cloning\.?$/i;
const MENTIONS_CLONING = /private key cloning|conflicting settings/i;

/**
 * The cloning conflicts in warning texts (a success value's `warnings`, or a device error's). A warning that speaks
 * of cloning conflicts in words this parser does not know is refused: it would otherwise pass as no conflict.
 */
export function cloningConflictsIn(
  warnings: readonly string[],
): { ok: true; conflicts: CloningConflict[] } | { ok: false; unreadable: string } {
  const conflicts: CloningConflict[] = [];
  for (const w of warnings) {
    const m = CLONING.exec(w.replace(/\s+/g, " ").replace(/fail\. The/, "fail.  The"));
    if (m) conflicts.push({ slots: [Number(m[1]), Number(m[2])] });
    else if (MENTIONS_CLONING.test(w)) return { ok: false, unreadable: w };
  }
  return { ok: true, conflicts };
}

export function parse(raw: string): HagroupSynchronize {
  const capture = readLunacmOutput(raw, command);
  const warnings = readWarnings(capture.lines);
  const read = cloningConflictsIn(warnings);
  if (!read.ok)
    throw new ParseError(`unreadable cloning-conflict warning: ${JSON.stringify(read.unreadable)}`, raw);
  // Lines that belong to no warning are kept as messages.
  const inWarnings = warnings.join(" ");
  const messages = capture.lines.map((l) => l.trim()).filter((t) => t !== "" && !inWarnings.includes(t));
  return conform(schema, { cloningConflicts: read.conflicts, warnings, messages }, raw);
}
