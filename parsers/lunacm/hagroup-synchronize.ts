// `hagroup synchronize -group <label>`: replicates objects across HA members. The one warning the reference
// verifies is the cloning-policy conflict, printed before the device tries:
//   Warning: Synchronize may fail.  The members in slot 0 and slot 1 have conflicting settings for private key cloning.
// It is returned typed (`cloningConflict: { slots: [0, 1] }`) because it means the members cannot exchange private
// keys and a "successful" sync may have left them apart. A warning may be wrapped over several lines by a terminal.
import { z } from "zod";
import { conform, ParseError } from "../common.ts";
import { readLunacmOutput } from "./capture.ts";

export const command = "hagroup synchronize";

const conflict = z.strictObject({ slots: z.tuple([z.number().int().min(0), z.number().int().min(0)]) });

export const schema = z.strictObject({
  /** The first cloning conflict reported, or null. */
  cloningConflict: conflict.nullable(),
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

export function parse(raw: string): HagroupSynchronize {
  const capture = readLunacmOutput(raw, command);
  const lines = capture.lines;
  const warnings: string[] = [];
  const messages: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? "").trim();
    if (line === "") continue;
    if (/^Warning\s*:/i.test(line)) {
      // Join continuation lines of a wrapped warning up to the next blank line or the next labelled line.
      let text = line;
      while (i + 1 < lines.length) {
        const next = (lines[i + 1] ?? "").trim();
        if (next === "" || /^(Warning|Error|Caution)\s*:/i.test(next) || /->/.test(next)) break;
        if (CLONING.test(text)) break;
        text = `${text} ${next}`;
        i++;
      }
      warnings.push(text.replace(/\s+/g, " ").replace(/fail\. The/, "fail.  The"));
      continue;
    }
    messages.push(line);
  }
  const cloningConflicts = warnings.flatMap((w) => {
    const m = CLONING.exec(w);
    return m ? [{ slots: [Number(m[1]), Number(m[2])] as [number, number] }] : [];
  });
  const unreadable = warnings.find(
    (w) => /private key cloning|conflicting settings/i.test(w) && !CLONING.test(w),
  );
  if (unreadable)
    throw new ParseError(`unreadable cloning-conflict warning: ${JSON.stringify(unreadable)}`, raw);
  return conform(
    schema,
    { cloningConflict: cloningConflicts[0] ?? null, cloningConflicts, warnings, messages },
    raw,
  );
}
