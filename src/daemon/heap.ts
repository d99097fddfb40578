// How far V8 lets the daemon's heap grow past what is live before it collects. Left to itself, V8 lets a busy process
// grow its old space to about four times the live set: on the 1,000-device sweep (npm run bench, issue 15) the live
// heap stayed near 66 MB while the heap peaked near 300 MB, and the daemon at 440 MB RSS. With growth held to 30 % the
// same sweep peaked near 130 MB of heap and 260 MB RSS, for a few per cent of CPU (more, smaller collections). It
// is a growth factor, never a ceiling: a larger fleet still gets the heap it needs.
import { setFlagsFromString } from "node:v8";

export const DEFAULT_HEAP_GROWING_PERCENT = 30;

/**
 * Apply LUNAFLEET_HEAP_GROWING_PERCENT (1–400; `0` or `v8` leaves V8's own policy) or the default to this process.
 * Returns the percent applied (undefined: V8's own), so the daemon can log it.
 */
export function applyHeapGrowth(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const raw = env.LUNAFLEET_HEAP_GROWING_PERCENT?.trim();
  if (raw === "0" || raw === "v8") return undefined;
  const percent = raw ? Number(raw) : DEFAULT_HEAP_GROWING_PERCENT;
  if (!Number.isInteger(percent) || percent < 1 || percent > 400)
    throw new Error(
      `LUNAFLEET_HEAP_GROWING_PERCENT: expected a whole number 1–400 (or 0 for V8's own policy), got ${JSON.stringify(raw)}`,
    );
  setFlagsFromString(`--heap-growing-percent=${percent}`);
  return percent;
}
