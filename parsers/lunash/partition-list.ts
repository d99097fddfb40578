// `partition list` (alias `par list`): one row per partition with its object count and storage. Luna 7.7+ adds a
// `Partition Version` column; Luna 5/6 and 7.0–7.6 print `Partition  Name  Objects  Total  Used  Free`.
import { z } from "zod";
import { conform, describeLine, isRule, ParseError } from "../common.ts";
import { readLunashOutput } from "./capture.ts";

export const command = "partition list";

export const schema = z.strictObject({
  partitions: z.array(
    z.strictObject({
      serial: z.string().regex(/^\d+$/),
      name: z.string().min(1),
      /** 0 = V0, 1 = V1 partition; null on firmware whose table has no version column. */
      version: z.number().int().nullable(),
      objects: z.number().int().min(0),
      totalBytes: z.number().int().min(0),
      usedBytes: z.number().int().min(0),
      freeBytes: z.number().int().min(0),
    }),
  ),
});
export type PartitionList = z.infer<typeof schema>;

const NO_PARTITIONS = /^\s*There are no partitions\.?\s*$/i;

export function parse(raw: string): PartitionList {
  const capture = readLunashOutput(raw, command);
  const lines = capture.lines;
  if (lines.length === 1 && NO_PARTITIONS.test(lines[0] ?? "")) return { partitions: [] };

  const ruleAt = lines.findIndex((l) => isRule(l));
  if (ruleAt < 1) throw new ParseError("no partition table header (=== rule) found", raw);
  const header = lines.slice(0, ruleAt).join(" ");
  const columnLine = lines[ruleAt - 1] ?? "";
  if (!/^\s*Partition\s+Name\b.*\bObjects\b.*\bTotal\s+Used\s+Free\s*$/.test(columnLine)) {
    throw new ParseError(`unrecognised partition table header: ${describeLine(columnLine)}`, raw);
  }
  const hasVersion = /\bVersion\b/.test(header);
  const numbers = hasVersion ? 5 : 4;
  const row = new RegExp(`^\\s*(\\d+)\\s+(\\S(?:.*?\\S)?)${"\\s+(\\d+)".repeat(numbers)}\\s*$`);

  const partitions: PartitionList["partitions"] = [];
  for (const line of lines.slice(ruleAt + 1)) {
    if (line.trim() === "") continue;
    const m = row.exec(line);
    if (!m) throw new ParseError(`unreadable partition row (truncated?): ${describeLine(line)}`, raw);
    const n = m.slice(3).map(Number);
    const [version, objects, total, used, free] = hasVersion ? n : [null, ...n];
    if (used! + free! !== total!) {
      throw new ParseError(`partition ${m[1]}: used + free != total (${describeLine(line)})`, raw);
    }
    partitions.push({
      serial: m[1] ?? "",
      name: m[2] ?? "",
      version: version ?? null,
      objects: objects!,
      totalBytes: total!,
      usedBytes: used!,
      freeBytes: free!,
    });
  }
  if (partitions.length === 0) {
    throw new ParseError("partition table has a header but no rows (truncated?)", raw);
  }
  return conform(schema, { partitions }, raw);
}
