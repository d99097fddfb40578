// `client fingerprint -client <name>`: `Certificate fingerprint: D9:9E:...` — colon-separated hex pairs (16 on the
// captured firmware, an MD5-sized digest; 20 or 32 pairs are accepted for SHA-1/SHA-256 sized digests).
import { z } from "zod";
import { conform, describeLine, ParseError, readColonPair } from "../common.ts";
import { readLunashOutput } from "./capture.ts";

export const command = "client fingerprint";

export const schema = z.strictObject({
  /** Upper-case hex pairs joined by colons, as printed. */
  fingerprint: z.string().regex(/^[0-9A-F]{2}(?::[0-9A-F]{2})+$/),
});
export type ClientFingerprint = z.infer<typeof schema>;

export function parse(raw: string): ClientFingerprint {
  const capture = readLunashOutput(raw, command);
  let fingerprint: string | null = null;
  for (const line of capture.lines) {
    if (line.trim() === "") continue;
    const kv = readColonPair(line);
    if (kv?.key !== "certificate fingerprint") {
      throw new ParseError(`unrecognised line in 'client fingerprint' output: ${describeLine(line)}`, raw);
    }
    if (fingerprint !== null) throw new ParseError("two fingerprint lines", raw);
    const v = kv.value.replace(/\s+/g, "");
    const pairs = v.split(":");
    if (!pairs.every((p) => /^[0-9A-Fa-f]{2}$/.test(p)) || ![16, 20, 32].includes(pairs.length)) {
      throw new ParseError(`unreadable certificate fingerprint: ${JSON.stringify(kv.value)}`, raw);
    }
    fingerprint = v.toUpperCase();
  }
  if (fingerprint === null) throw new ParseError("no 'Certificate fingerprint:' line", raw);
  return conform(schema, { fingerprint }, raw);
}
