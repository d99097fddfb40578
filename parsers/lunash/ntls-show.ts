// `ntls show`: what NTLS (the client-facing TLS service, port 1792) is bound to. The reference documents only the
// content (bound device / IP, port), not a captured Luna 7 layout, so this parser reads `Label: value` pairs (one or
// several per line, separated by two or more blanks) and maps labels by what they name. A binding must be found;
// lines that are not label/value pairs are refused.
import { z } from "zod";
import {
  conform,
  describeLine,
  type KeyValue,
  ParseError,
  parseNonNegativeInt,
  putExtra,
  readColonPair,
} from "../common.ts";
import { readLunashOutput } from "./capture.ts";

export const command = "ntls show";

export const schema = z.strictObject({
  /** Network device NTLS is bound to (`eth0`, `bond0`, `all`), when printed. */
  boundDevice: z.string().nullable(),
  ipAddress: z.string().nullable(),
  hostname: z.string().nullable(),
  port: z.number().int().min(1).max(65535).nullable(),
  extra: z.record(z.string(), z.string()),
});
export type NtlsShow = z.infer<typeof schema>;

function splitPairs(line: string): KeyValue[] | null {
  const parts = line.trim().split(/\s{2,}(?=[A-Za-z][A-Za-z0-9 #()/_-]*:(?:\s|$))/);
  const pairs: KeyValue[] = [];
  for (const part of parts) {
    const kv = readColonPair(part);
    if (!kv) return null;
    pairs.push(kv);
  }
  return pairs;
}

/** `"192.20.11.78" (eth0)` → { value: 192.20.11.78, device: eth0 } */
function unquote(value: string): { value: string; device: string | null } {
  const m = /^"?([^"\s]*)"?\s*(?:\((\S+)\))?$/.exec(value.trim());
  if (!m) return { value: value.trim(), device: null };
  return { value: m[1] ?? "", device: m[2] ?? null };
}

export function parse(raw: string): NtlsShow {
  const capture = readLunashOutput(raw, command);
  let boundDevice: string | null = null;
  let ipAddress: string | null = null;
  let hostname: string | null = null;
  let port: number | null = null;
  const extra: Record<string, string> = {};
  const set = <T>(current: T | null, next: T, what: string): T => {
    if (current !== null && current !== next) throw new ParseError(`two different ${what} values`, raw);
    return next;
  };
  for (const line of capture.lines) {
    if (line.trim() === "") continue;
    const pairs = splitPairs(line);
    if (!pairs) throw new ParseError(`unrecognised line in 'ntls show' output: ${describeLine(line)}`, raw);
    for (const kv of pairs) {
      if (/\bport\b/.test(kv.key)) {
        const n = parseNonNegativeInt(kv.value, kv.label, raw);
        if (n < 1 || n > 65535) throw new ParseError(`NTLS port out of range: ${n}`, raw);
        port = set(port, n, "NTLS port");
      } else if (/\bip address\b|\bip\b/.test(kv.key)) {
        const u = unquote(kv.value);
        ipAddress = set(ipAddress, u.value, "IP address");
        if (u.device) boundDevice = set(boundDevice, u.device, "bound device");
      } else if (/\bhostname\b/.test(kv.key)) {
        hostname = set(hostname, unquote(kv.value).value, "hostname");
      } else if (/\b(device|interface)\b/.test(kv.key)) {
        boundDevice = set(boundDevice, kv.value.replace(/"/g, ""), "bound device");
      } else {
        putExtra(extra, kv.label, kv.value, raw);
      }
    }
  }
  if (boundDevice === null && ipAddress === null && hostname === null) {
    throw new ParseError("no NTLS binding (device, IP address or hostname) in 'ntls show' output", raw);
  }
  return conform(schema, { boundDevice, ipAddress, hostname, port, extra }, raw);
}
