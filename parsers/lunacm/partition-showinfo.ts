// `partition showinfo` (alias `par si`): the current slot's partition — label, serial, status, role states and
// login-attempt counters. The reference names the fields but has no full Luna 7 capture, so two forms are read:
//   flat:      `Crypto Officer Login Attempts Left -> 9`
//   sectioned: `Crypto Officer:` then, indented below it, `Login Attempts Left -> 10 before lockout`
// A sub-line belongs to the role whose heading it is indented under; the same label under two headings is never
// merged. A role that is shown initialized must show its counter; a counter that is printed but unreadable, or a
// label repeated with different values, fails the parse. Lines of any other shape are refused.
import { z } from "zod";
import {
  conform,
  describeLine,
  type KeyValue,
  ParseError,
  parseYesNo,
  putExtra,
  readArrowPair,
  readColonPair,
} from "../common.ts";
import { readLunacmOutput } from "./capture.ts";

export const command = "partition showinfo";

export const schema = z.strictObject({
  label: z.string().nullable(),
  serial: z.string().min(1),
  /** `Partition Status ->` (e.g. `L3 Device`), or older clients' `HSM Status ->` (`OK`). */
  status: z.string().nullable(),
  hsmSerial: z.string().nullable(),
  psoInitialized: z.boolean().nullable(),
  psoLoginAttemptsLeft: z.number().int().min(0).nullable(),
  coInitialized: z.boolean().nullable(),
  coLoginAttemptsLeft: z.number().int().min(0).nullable(),
  coLockedOut: z.boolean().nullable(),
  cuInitialized: z.boolean().nullable(),
  cuLoginAttemptsLeft: z.number().int().min(0).nullable(),
  cuLockedOut: z.boolean().nullable(),
  /** Token flags printed as words (e.g. `CONTAINER_ACTIVATED`). */
  flags: z.array(z.string()),
  /** Unknown pairs; a pair under a section heading is keyed `<heading> / <label>`. */
  extra: z.record(z.string(), z.string()),
});
export type PartitionShowinfo = z.infer<typeof schema>;

type Role = "pso" | "co" | "cu";
const FLAG = /^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$/;

/** The role a label or heading names, and what remains of the label after the role words. */
function splitRole(key: string): { role: Role; rest: string } | null {
  const m =
    /^(partition so|partition security officer|pso|so)\b\s*(.*)$/.exec(key) ??
    /^(crypto officer|co)\b\s*(.*)$/.exec(key) ??
    /^(crypto user|cu)\b\s*(.*)$/.exec(key);
  if (!m) return null;
  const word = m[1] ?? "";
  const role: Role = /officer|^co$/.test(word) ? "co" : /user|^cu$/.test(word) ? "cu" : "pso";
  return { role, rest: (m[2] ?? "").replace(/^\((?:so|co|cu|pso)\)\s*/, "").trim() };
}

/** `10`, `10 before lockout`, `10 before partition zeroization`; `None - ... Locked Out` → 0. */
function readAttempts(kv: KeyValue, raw: string): number {
  const v = kv.value.trim();
  const m = /^(\d+)(?:\s+before\b[^\d]*)?$/i.exec(v);
  if (m) return Number(m[1]);
  if (/^None\b.*Locked Out\.?$/i.test(v)) return 0;
  throw new ParseError(`unreadable counter '${kv.label}': ${JSON.stringify(v)}`, raw);
}

const indentOf = (line: string) => (/^\s*/.exec(line)?.[0] ?? "").replace(/\t/g, "        ").length;

export function parse(raw: string): PartitionShowinfo {
  const capture = readLunacmOutput(raw, command);
  const out: Record<string, unknown> = {};
  const flags: string[] = [];
  const extra: Record<string, string> = {};
  const roleSections = new Set<Role>();
  let section: { title: string; role: Role | null; indent: number } | null = null;

  const put = (field: string, value: unknown, kv: KeyValue) => {
    if (field in out && out[field] !== value) throw new ParseError(`'${kv.label}' printed twice`, raw);
    out[field] = value;
  };

  const roleField = (role: Role, rest: string, kv: KeyValue): boolean => {
    if (/attempts left$/.test(rest)) put(`${role}LoginAttemptsLeft`, readAttempts(kv, raw), kv);
    else if (/^(is )?initiali[sz]ed$/.test(rest))
      put(`${role}Initialized`, parseYesNo(kv.value, kv.label, raw), kv);
    else if (/\block(ed)? ?out\b/.test(rest) && role !== "pso") {
      // `Locked Out`, `Lockout`, `Permanent Lockout`: any of them saying yes means locked (never merged to "no").
      const locked = parseYesNo(kv.value, kv.label, raw);
      out[`${role}LockedOut`] = out[`${role}LockedOut`] === true || locked;
    } else return false;
    return true;
  };

  for (const line of capture.lines) {
    const t = line.trim();
    if (t === "") continue;
    if (section && indentOf(line) <= section.indent) section = null;
    if (FLAG.test(t)) {
      flags.push(t);
      continue;
    }
    const kv = readArrowPair(line) ?? readColonPair(line);
    if (!kv)
      throw new ParseError(`unrecognised line in 'partition showinfo' output: ${describeLine(line)}`, raw);
    if (kv.value === "" && /:\s*$/.test(t)) {
      // A heading such as `Crypto Officer:` or `Partition Storage:`; the lines indented below it belong to it.
      const r = splitRole(kv.key);
      const role = r && r.rest === "" ? r.role : null;
      if (role) {
        if (roleSections.has(role)) throw new ParseError(`role heading '${kv.label}' printed twice`, raw);
        roleSections.add(role);
      }
      section = { title: kv.label, role, indent: indentOf(line) };
      continue;
    }
    if (kv.value === "" && /flags$/.test(kv.key)) continue; // `Token Flags ->` with the flags on the lines below

    if (section?.role) {
      if (roleField(section.role, kv.key, kv)) continue;
      putExtra(extra, `${section.title} / ${kv.label}`, kv.value, raw);
      continue;
    }
    const r = splitRole(kv.key);
    if (r && r.rest !== "" && roleField(r.role, r.rest, kv)) continue;
    if (/attempts left|\block(ed)? ?out\b/.test(kv.key)) {
      // A counter or lockout line that names no role cannot be attributed: refusing beats guessing the role.
      throw new ParseError(`'${kv.label}' names no role (layout not understood)`, raw);
    }
    const k = kv.key;
    if (section) putExtra(extra, `${section.title} / ${kv.label}`, kv.value, raw);
    else if (/^(partition )?(label|name)$/.test(k)) put("label", kv.value, kv);
    else if (/^(partition )?(serial number|serial #|sn)$/.test(k)) put("serial", kv.value, kv);
    else if (k === "hsm serial number") put("hsmSerial", kv.value, kv);
    else if (k === "partition status" || k === "hsm status") put("status", kv.value, kv);
    else if (/flags$/.test(k) && kv.value.split(/\s+/).every((f) => FLAG.test(f)))
      flags.push(...kv.value.split(/\s+/));
    else putExtra(extra, kv.label, kv.value, raw);
  }

  if (typeof out.serial !== "string" || out.serial === "") {
    throw new ParseError("missing partition serial number", raw);
  }
  // A role shown (heading or any field) and not shown uninitialized must come with its counter.
  for (const role of ["pso", "co", "cu"] as const) {
    const shown = roleSections.has(role) || Object.keys(out).some((k) => k.startsWith(role));
    if (shown && out[`${role}Initialized`] !== false && !(`${role}LoginAttemptsLeft` in out)) {
      throw new ParseError(
        `${role.toUpperCase()} shown without its login attempts left (output truncated?)`,
        raw,
      );
    }
  }
  const v = (k: string) => out[k] ?? null;
  return conform(
    schema,
    {
      label: v("label"),
      serial: out.serial,
      status: v("status"),
      hsmSerial: v("hsmSerial"),
      psoInitialized: v("psoInitialized"),
      psoLoginAttemptsLeft: v("psoLoginAttemptsLeft"),
      coInitialized: v("coInitialized"),
      coLoginAttemptsLeft: v("coLoginAttemptsLeft"),
      coLockedOut: v("coLockedOut"),
      cuInitialized: v("cuInitialized"),
      cuLoginAttemptsLeft: v("cuLoginAttemptsLeft"),
      cuLockedOut: v("cuLockedOut"),
      flags,
      extra,
    },
    raw,
  );
}
