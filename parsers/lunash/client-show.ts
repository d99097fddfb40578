// `client show -client <name>`: the client's ID, hostname and the partitions assigned to it
// (`Partitions:   "p1", "p2"` or `<none>`). Luna 5/6 also print `HTL Required:` and `OTT Expiry:`.
import { z } from "zod";
import { conform, describeLine, ParseError, parseYesNo, putExtra, readColonPair } from "../common.ts";
import { readLunashOutput } from "./capture.ts";

export const command = "client show";

export const schema = z.strictObject({
  clientId: z.string().min(1),
  /** Hostname or IP the client was registered with; null when the device printed no Hostname line. */
  hostname: z.string().nullable(),
  partitions: z.array(z.string()),
  htlRequired: z.boolean().nullable(),
  ottExpiry: z.string().nullable(),
  extra: z.record(z.string(), z.string()),
});
export type ClientShow = z.infer<typeof schema>;

/** `"p1", "p2"` → ["p1", "p2"]; `<none>` → []; anything else is refused. */
function readQuotedList(value: string): string[] | null {
  const v = value.trim();
  if (/^<none>$/i.test(v) || v === "") return [];
  const items: string[] = [];
  const re = /\s*"([^"]*)"\s*(,|$)/y;
  let pos = 0;
  while (pos < v.length) {
    re.lastIndex = pos;
    const m = re.exec(v);
    if (!m) return null;
    items.push(m[1] ?? "");
    pos = re.lastIndex;
    if (m[2] === "" && pos < v.length) return null;
    if (m[2] === "," && pos >= v.length) return null;
  }
  return items;
}

export function parse(raw: string): ClientShow {
  const capture = readLunashOutput(raw, command);
  const fields = new Map<string, string>();
  const extra: Record<string, string> = {};
  const known = new Set(["clientid", "client id", "hostname", "partitions", "htl required", "ott expiry"]);
  for (const line of capture.lines) {
    if (line.trim() === "") continue;
    const kv = readColonPair(line);
    if (!kv) throw new ParseError(`unrecognised line in 'client show' output: ${describeLine(line)}`, raw);
    if (!known.has(kv.key)) {
      putExtra(extra, kv.label, kv.value, raw);
      continue;
    }
    const key = kv.key === "client id" ? "clientid" : kv.key;
    if (fields.has(key)) throw new ParseError(`'${kv.label}' printed twice`, raw);
    fields.set(key, kv.value);
  }
  const clientId = fields.get("clientid");
  if (!clientId) throw new ParseError("missing ClientID", raw);
  const partitionsText = fields.get("partitions");
  if (partitionsText === undefined) throw new ParseError("missing Partitions line (output truncated?)", raw);
  const partitions = readQuotedList(partitionsText);
  if (!partitions)
    throw new ParseError(`unreadable Partitions value: ${JSON.stringify(partitionsText)}`, raw);
  const htl = fields.get("htl required");
  return conform(
    schema,
    {
      clientId,
      hostname: fields.get("hostname") ?? null,
      partitions,
      htlRequired: htl === undefined ? null : parseYesNo(htl, "HTL Required", raw),
      ottExpiry: fields.get("ott expiry") ?? null,
      extra,
    },
    raw,
  );
}
