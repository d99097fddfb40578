// `partition showinfo` (alias `par si`): the current slot's partition — label, serial, status, role states and
// login-attempt counters. The reference names the fields but has no full Luna 7 capture, so this reads
// `Label -> value` lines (and `Label: value` lines), maps labels by what they name, keeps the rest in `extra`, and
// refuses lines of any other shape. A counter that is printed but unreadable fails the parse.
import { z } from "zod";
import { conform, describeLine, type KeyValue, ParseError, readArrowPair, readColonPair } from "../common.ts";
import { readLunacmOutput } from "./capture.ts";

export const command = "partition showinfo";

export const schema = z.strictObject({
  label: z.string().nullable(),
  serial: z.string().min(1),
  /** `Partition Status ->` (e.g. `L3 Device`), or older clients' `HSM Status ->` (`OK`). */
  status: z.string().nullable(),
  hsmSerial: z.string().nullable(),
  psoLoginAttemptsLeft: z.number().int().min(0).nullable(),
  coLoginAttemptsLeft: z.number().int().min(0).nullable(),
  cuLoginAttemptsLeft: z.number().int().min(0).nullable(),
  coLockedOut: z.boolean().nullable(),
  /** Token flags printed as words (e.g. `CONTAINER_ACTIVATED`). */
  flags: z.array(z.string()),
  extra: z.record(z.string(), z.string()),
});
export type PartitionShowinfo = z.infer<typeof schema>;

const FLAG = /^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$/;

function role(key: string): "pso" | "co" | "cu" | null {
  if (/^(partition so|pso|so)\b|\bpartition security officer\b/.test(key)) return "pso";
  if (/^(crypto officer|co)\b/.test(key)) return "co";
  if (/^(crypto user|cu)\b/.test(key)) return "cu";
  return null;
}

export function parse(raw: string): PartitionShowinfo {
  const capture = readLunacmOutput(raw, command);
  const out: Record<string, unknown> = {};
  const flags: string[] = [];
  const extra: Record<string, string> = {};
  const put = (field: string, value: unknown, kv: KeyValue) => {
    if (field in out && out[field] !== value) throw new ParseError(`'${kv.label}' printed twice`, raw);
    out[field] = value;
  };
  for (const line of capture.lines) {
    const t = line.trim();
    if (t === "") continue;
    if (FLAG.test(t)) {
      flags.push(t);
      continue;
    }
    const kv = readArrowPair(line) ?? readColonPair(line);
    if (!kv)
      throw new ParseError(`unrecognised line in 'partition showinfo' output: ${describeLine(line)}`, raw);
    if (kv.value === "" && /:\s*$/.test(t)) continue; // a section heading such as `Partition Information:`
    if (kv.value === "" && /flags$/.test(kv.key)) continue; // `Token Flags ->` with the flags on the lines below
    const k = kv.key;
    const r = role(k);
    if (r && /attempts left/.test(k)) {
      const v = kv.value;
      let n: number;
      if (/^\d+$/.test(v)) n = Number(v);
      else if (/^None\b.*Locked Out\.?$/i.test(v)) n = 0;
      else throw new ParseError(`unreadable counter '${kv.label}': ${JSON.stringify(v)}`, raw);
      put(`${r}LoginAttemptsLeft`, n, kv);
    } else if (r === "co" && /locked out/.test(k)) {
      if (!/^(yes|no)$/i.test(kv.value)) throw new ParseError(`unreadable '${kv.label}': ${kv.value}`, raw);
      put("coLockedOut", /^yes$/i.test(kv.value), kv);
    } else if (/^(partition )?(label|name)$/.test(k)) {
      put("label", kv.value, kv);
    } else if (/^(partition )?(serial number|serial #|sn)$/.test(k)) {
      put("serial", kv.value, kv);
    } else if (k === "hsm serial number") {
      put("hsmSerial", kv.value, kv);
    } else if (k === "partition status" || k === "hsm status") {
      put("status", kv.value, kv);
    } else if (/flags$/.test(k) && kv.value.split(/\s+/).every((f) => FLAG.test(f))) {
      flags.push(...kv.value.split(/\s+/));
    } else {
      extra[kv.label] = kv.value;
    }
  }
  if (typeof out.serial !== "string" || out.serial === "") {
    throw new ParseError("missing partition serial number", raw);
  }
  return conform(
    schema,
    {
      label: out.label ?? null,
      serial: out.serial,
      status: out.status ?? null,
      hsmSerial: out.hsmSerial ?? null,
      psoLoginAttemptsLeft: out.psoLoginAttemptsLeft ?? null,
      coLoginAttemptsLeft: out.coLoginAttemptsLeft ?? null,
      cuLoginAttemptsLeft: out.cuLoginAttemptsLeft ?? null,
      coLockedOut: out.coLockedOut ?? null,
      flags,
      extra,
    },
    raw,
  );
}
