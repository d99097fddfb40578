// `role show -name <role>`: one partition role's state. The reference verifies only that a locked-out role shows
// `Locked out` (and keeps showing it after a timed lockout until the next good login); the exact layout is not
// captured. This reads `Label -> value` / `Label: value` lines, and needs either a status or an attempts counter.
import { z } from "zod";
import { conform, describeLine, ParseError, putExtra, readArrowPair, readColonPair } from "../common.ts";
import { readLunacmOutput } from "./capture.ts";

export const command = "role show";

export const schema = z.strictObject({
  role: z.string().nullable(),
  initialized: z.boolean().nullable(),
  /** True when any status or flag says `Locked out`. */
  lockedOut: z.boolean(),
  loginAttemptsLeft: z.number().int().min(0).nullable(),
  status: z.string().nullable(),
  extra: z.record(z.string(), z.string()),
});
export type RoleShow = z.infer<typeof schema>;

export function parse(raw: string): RoleShow {
  const capture = readLunacmOutput(raw, command);
  let role: string | null = null;
  let initialized: boolean | null = null;
  let attempts: number | null = null;
  let status: string | null = null;
  let lockedOut = false;
  const extra: Record<string, string> = {};
  for (const line of capture.lines) {
    const t = line.trim();
    if (t === "") continue;
    const kv = readArrowPair(line) ?? readColonPair(line);
    if (!kv) throw new ParseError(`unrecognised line in 'role show' output: ${describeLine(line)}`, raw);
    const k = kv.key;
    const v = kv.value;
    if (/locked out/i.test(v)) lockedOut = true;
    if (/^(role|name|role name)$/.test(k)) role = v;
    else if (/initiali[sz]ed$/.test(k)) {
      if (!/^(yes|no|true|false)$/i.test(v)) throw new ParseError(`unreadable '${kv.label}': ${v}`, raw);
      initialized = /^(yes|true)$/i.test(v);
    } else if (/attempts left/.test(k)) {
      const n = /^(\d+)(?:\s+before\b[^\d]*)?$/i.exec(v);
      if (n) attempts = Number(n[1]);
      else if (/^None\b.*Locked Out\.?$/i.test(v)) attempts = 0;
      else throw new ParseError(`unreadable counter '${kv.label}': ${JSON.stringify(v)}`, raw);
    } else if (/status$/.test(k)) status = v;
    else if (/\block(ed)? ?out\b/.test(k)) {
      // `Locked Out`, `Lockout`, `Permanent Lockout`: any yes means locked.
      if (!/^(yes|no)$/i.test(v)) throw new ParseError(`unreadable '${kv.label}': ${v}`, raw);
      if (/^yes$/i.test(v)) lockedOut = true;
      putExtra(extra, kv.label, v, raw);
    } else putExtra(extra, kv.label, v, raw);
  }
  if (status === null && attempts === null) {
    throw new ParseError("'role show' output has neither a status nor an attempts-left counter", raw);
  }
  // No check of "locked out" against the counter: the device keeps showing `Locked out` after a timed lockout has
  // expired until the next good login, so both may legitimately disagree. `lockedOut` stays the cautious reading.
  return conform(schema, { role, initialized, lockedOut, loginAttemptsLeft: attempts, status, extra }, raw);
}
