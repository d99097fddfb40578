// `client list`: the NTLS clients registered on the appliance, `registered client <n>: <name>` per line (names may
// contain blanks); `No clients are registered.` when there are none. The numbering must run 1..n without gaps, so a
// garbled or partial paste is refused.
import { z } from "zod";
import { conform, describeLine, ParseError } from "../common.ts";
import { readLunashOutput } from "./capture.ts";

export const command = "client list";

export const schema = z.strictObject({ clients: z.array(z.string().min(1)) });
export type ClientList = z.infer<typeof schema>;

const ROW = /^\s*registered client (\d+)\s*:\s*(\S(?:.*\S)?)\s*$/i;
const NONE = /^\s*No clients are registered\.?\s*$/i;

export function parse(raw: string): ClientList {
  const capture = readLunashOutput(raw, command);
  const clients: string[] = [];
  let none = false;
  for (const line of capture.lines) {
    if (line.trim() === "") continue;
    if (NONE.test(line)) {
      none = true;
      continue;
    }
    const m = ROW.exec(line);
    if (!m) throw new ParseError(`unrecognised line in 'client list' output: ${describeLine(line)}`, raw);
    const n = Number(m[1]);
    if (n !== clients.length + 1) {
      throw new ParseError(
        `client numbering jumps to ${n} after ${clients.length} (truncated or garbled)`,
        raw,
      );
    }
    clients.push(m[2] ?? "");
  }
  if (none && clients.length > 0)
    throw new ParseError("'No clients are registered.' next to client lines", raw);
  if (!none && clients.length === 0) throw new ParseError("empty 'client list' output", raw);
  return conform(schema, { clients }, raw);
}
