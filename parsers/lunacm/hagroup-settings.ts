// `hagroup retry` and `hagroup interval`: with -count / -interval they set the client's HA auto-recovery (success is
// the `No Error` footer alone, reference §15); with -show they print the setting. The -show layout is [I]: the
// reference has it only from Luna 5's `vtl haAdmin show` (`HA Auto Recovery: disabled`,
// `Maximum Auto Recovery Retry: 0`, `Auto Recovery Poll Interval: 60 seconds`); lunafleet assumes Luna 7's lunacm
// prints the same labels. A set returns nulls; a show that prints no value is refused.
import { z } from "zod";
import { conform, describeLine, ParseError, readColonPair } from "../common.ts";
import { readLunacmChange } from "./capture.ts";

const retrySchema = z.strictObject({
  /** Maximum Auto Recovery Retry (-1 unlimited, 0 = no auto-recovery); null when the reply is a set's. */
  count: z.number().int().min(-1).nullable(),
  /** HA Auto Recovery enabled/disabled; null when not printed. */
  autoRecovery: z.boolean().nullable(),
});
export type HagroupRetry = z.infer<typeof retrySchema>;

const intervalSchema = z.strictObject({
  /** Auto Recovery Poll Interval in seconds; null when the reply is a set's. */
  intervalSeconds: z.number().int().min(0).nullable(),
});
export type HagroupInterval = z.infer<typeof intervalSchema>;

function pairs(raw: string, canonical: string): Map<string, string> {
  const capture = readLunacmChange(raw, canonical);
  const out = new Map<string, string>();
  for (const line of capture.lines) {
    if (line.trim() === "") continue;
    const kv = readColonPair(line);
    if (!kv || out.has(kv.key))
      throw new ParseError(`unrecognised line in the reply to '${canonical}': ${describeLine(line)}`, raw);
    out.set(kv.key, kv.value);
  }
  return out;
}

const integer = (value: string | undefined, what: string, raw: string): number | null => {
  if (value === undefined) return null;
  if (!/^-?\d+$/.test(value))
    throw new ParseError(`${what}: expected a whole number, got ${JSON.stringify(value)}`, raw);
  return Number(value);
};

export const hagroupRetry = {
  command: "hagroup retry",
  schema: retrySchema,
  parse(raw: string): HagroupRetry {
    const kv = pairs(raw, "hagroup retry");
    const known = new Set(["ha auto recovery", "maximum auto recovery retry"]);
    const other = [...kv.keys()].find((k) => !known.has(k));
    if (other) throw new ParseError(`unrecognised field '${other}' in the reply to 'hagroup retry'`, raw);
    const state = kv.get("ha auto recovery")?.toLowerCase();
    if (state !== undefined && state !== "enabled" && state !== "disabled")
      throw new ParseError(`HA Auto Recovery: expected enabled/disabled, got ${JSON.stringify(state)}`, raw);
    return conform(
      retrySchema,
      {
        count: integer(kv.get("maximum auto recovery retry"), "Maximum Auto Recovery Retry", raw),
        autoRecovery: state === undefined ? null : state === "enabled",
      },
      raw,
    );
  },
};

export const hagroupInterval = {
  command: "hagroup interval",
  schema: intervalSchema,
  parse(raw: string): HagroupInterval {
    const kv = pairs(raw, "hagroup interval");
    const other = [...kv.keys()].find((k) => k !== "auto recovery poll interval");
    if (other) throw new ParseError(`unrecognised field '${other}' in the reply to 'hagroup interval'`, raw);
    const text = kv.get("auto recovery poll interval");
    if (text === undefined) return conform(intervalSchema, { intervalSeconds: null }, raw);
    const m = /^(\d+)\s*seconds?$/i.exec(text);
    if (!m)
      throw new ParseError(
        `Auto Recovery Poll Interval: expected '<n> seconds', got ${JSON.stringify(text)}`,
        raw,
      );
    return conform(intervalSchema, { intervalSeconds: Number(m[1]) }, raw);
  },
};
