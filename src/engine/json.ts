// Step results, checkpoints and evidence are plain JSON with every known secret value scrubbed. Redaction walks the
// value (not its serialized text) so that a secret containing quotes or backslashes is still found.
import { redact } from "../config/secret.ts";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/**
 * Turn a step's return value into redacted JSON. Secret objects serialize as [REDACTED] (their toJSON), Dates as ISO
 * strings, `undefined` object fields are dropped; functions, symbols, bigints and cycles are refused: a checkpoint
 * must read back exactly as it was written.
 */
export function toRedactedJson(value: unknown, path = "result", seen = new Set<object>()): Json {
  if (value === null || typeof value === "boolean") return value;
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new TypeError(`${path}: ${value} is not representable in JSON`);
    return value;
  }
  if (typeof value === "string") return redact(value);
  if (typeof value === "undefined") return null;
  if (typeof value !== "object")
    throw new TypeError(`${path}: a ${typeof value} is not representable in JSON`);
  const withToJson = value as { toJSON?: () => unknown };
  if (typeof withToJson.toJSON === "function") return toRedactedJson(withToJson.toJSON(), path, seen);
  if (seen.has(value)) throw new TypeError(`${path}: circular reference`);
  seen.add(value);
  try {
    if (Array.isArray(value)) return value.map((v, i) => toRedactedJson(v, `${path}[${i}]`, seen));
    if (value instanceof Map) return toRedactedJson(Object.fromEntries(value), path, seen);
    if (value instanceof Set) return toRedactedJson([...value], path, seen);
    const out: { [key: string]: Json } = {};
    for (const [k, v] of Object.entries(value)) {
      if (v === undefined) continue;
      out[redact(k)] = toRedactedJson(v, `${path}.${k}`, seen);
    }
    return out;
  } finally {
    seen.delete(value);
  }
}
