// `vtl listServers`: the appliances this client trusts for NTLS, `Server: <host>  HTL required: yes|no` per line,
// `There are no servers registered.` when none.
import { z } from "zod";
import { conform, describeLine, ParseError } from "../common.ts";
import { readHostOutput } from "./capture.ts";

export const command = "vtl listServers";

export const schema = z.strictObject({
  servers: z.array(z.strictObject({ host: z.string().min(1), htlRequired: z.boolean() })),
});
export type VtlListServers = z.infer<typeof schema>;

const ROW = /^\s*Server\s*:\s*(\S+)\s+HTL required\s*:\s*(yes|no)\s*$/i;
const NONE = /^\s*There are no servers registered\.?\s*$/i;

export function parse(raw: string): VtlListServers {
  const capture = readHostOutput(raw, command);
  const servers: VtlListServers["servers"] = [];
  let none = false;
  for (const line of capture.lines) {
    if (line.trim() === "") continue;
    if (/^vtl \(\d+-bit\) v/i.test(line.trim())) continue; // banner
    if (NONE.test(line)) {
      none = true;
      continue;
    }
    const m = ROW.exec(line);
    if (!m) throw new ParseError(`unrecognised line in 'vtl listServers' output: ${describeLine(line)}`, raw);
    servers.push({ host: m[1] ?? "", htlRequired: /^yes$/i.test(m[2] ?? "") });
  }
  if (none && servers.length > 0)
    throw new ParseError("'There are no servers registered.' next to servers", raw);
  if (!none && servers.length === 0) throw new ParseError("empty 'vtl listServers' output", raw);
  return conform(schema, { servers }, raw);
}
