// `hsm showPolicies`: the HSM's capabilities (fixed by firmware/licences) and its policies (changeable by the HSM
// Admin; those marked destructive zeroize the HSM when changed). Policy 15 (SO can reset partition PIN) decides
// whether a locked-out Crypto Officer can be recovered at all, so rows are read strictly.
import { z } from "zod";
import { conform, describeLine, ParseError, readColonPair } from "../common.ts";
import { readLunashOutput } from "./capture.ts";

export const command = "hsm showPolicies";

const policy = z.strictObject({
  description: z.string().min(1),
  /** As printed: `On`, `Off`, or a number. */
  value: z.string().min(1),
  /** `On` → 1, `Off` → 0, digits → the number; null for any other word. */
  numericValue: z.number().int().nullable(),
  code: z.number().int().min(0),
  destructive: z.boolean(),
});

const capability = z.strictObject({
  description: z.string().min(1),
  value: z.string().min(1),
  numericValue: z.number().int().nullable(),
  code: z.number().int().min(0).nullable(),
});

export const schema = z.strictObject({
  label: z.string().nullable(),
  serial: z.string().nullable(),
  firmware: z.string().nullable(),
  capabilities: z.array(capability),
  policies: z.array(policy),
});
export type HsmShowPolicies = z.infer<typeof schema>;

const HEADER = /^\s*Description\s{2,}Value(?:\s{2,}Code)?(?:\s{2,}Destructive)?\s*$/;
const RULE = /^\s*=+(?:\s+=+)*\s*$/;
const POLICY_ROW = /^\s*(\S(?:.*?\S)?)\s{2,}(\S(?:.*?\S)?)\s{2,}(\d+)\s{2,}(Yes|No)\s*$/i;
const CAPABILITY_ROW = /^\s*(\S(?:.*?\S)?)\s{2,}(\S(?:.*?\S)?)(?:\s{2,}(\d+))?\s*$/;

function numeric(value: string): number | null {
  if (/^on$/i.test(value)) return 1;
  if (/^off$/i.test(value)) return 0;
  if (/^\d+$/.test(value)) return Number(value);
  return null;
}

export function parse(raw: string): HsmShowPolicies {
  const capture = readLunashOutput(raw, command);
  const head = new Map<string, string>();
  const capabilities: HsmShowPolicies["capabilities"] = [];
  const policies: HsmShowPolicies["policies"] = [];
  // Which table the prose above a header announced: "capabilities describe this HSM" / "policies describe ...".
  let announced: "capabilities" | "policies" | null = null;
  let table: "capabilities" | "policies" | null = null;

  const lines = capture.lines;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? "";
    if (line.trim() === "") continue;
    if (HEADER.test(line) && RULE.test(lines[i + 1] ?? "")) {
      const hasDestructive = /Destructive/.test(line);
      table = hasDestructive ? "policies" : (announced ?? "capabilities");
      if (table === "policies" && !hasDestructive) {
        throw new ParseError(`policy table without a Destructive column: ${describeLine(line)}`, raw);
      }
      i++;
      continue;
    }
    if (table === "policies") {
      const m = POLICY_ROW.exec(line);
      if (m) {
        const value = m[2] ?? "";
        policies.push({
          description: m[1] ?? "",
          value,
          numericValue: numeric(value),
          code: Number(m[3]),
          destructive: /^yes$/i.test(m[4] ?? ""),
        });
        continue;
      }
    } else if (table === "capabilities") {
      const m = CAPABILITY_ROW.exec(line);
      if (m && !/^The following/i.test(line.trim())) {
        const value = m[2] ?? "";
        capabilities.push({
          description: m[1] ?? "",
          value,
          numericValue: numeric(value),
          code: m[3] === undefined ? null : Number(m[3]),
        });
        continue;
      }
    }
    // Outside a table row: the identity block, or the prose that introduces the next table.
    if (table === null) {
      const kv = readColonPair(line);
      if (kv && /^(hsm label|serial #|serial number|firmware)$/.test(kv.key)) {
        head.set(kv.key === "serial number" ? "serial #" : kv.key, kv.value);
        continue;
      }
    }
    if (/capabilities describe/i.test(line)) {
      announced = "capabilities";
      table = null;
      continue;
    }
    if (/policies describe/i.test(line)) {
      announced = "policies";
      table = null;
      continue;
    }
    if (table === null && isKnownProse(line)) continue;
    throw new ParseError(`unrecognised line in 'hsm showPolicies' output: ${describeLine(line)}`, raw);
  }

  if (policies.length === 0) throw new ParseError("no policy rows found (output truncated?)", raw);
  const codes = new Set<number>();
  for (const p of policies) {
    if (codes.has(p.code)) throw new ParseError(`policy code ${p.code} listed twice`, raw);
    codes.add(p.code);
  }
  const label = head.get("hsm label");
  return conform(
    schema,
    {
      label: label === undefined ? null : label,
      serial: head.get("serial #") ?? null,
      firmware: head.get("firmware") ?? null,
      capabilities,
      policies,
    },
    raw,
  );
}

// The explanatory sentences LunaSH prints between the identity block and the tables (note the device's own typo
// "may by changed"). Only these continuation lines are accepted outside a table.
function isKnownProse(line: string): boolean {
  const t = line.trim();
  return (
    /^except via firmware or capability updates\.?$/i.test(t) ||
    /^this HSM and may b[ey] changed by the HSM Administrator\.?$/i.test(t) ||
    /^Changing policies marked "destructive" will zeroize \(erase$/i.test(t) ||
    /^completely\) the entire HSM\.?$/i.test(t) ||
    /^Changing policies marked "destructive" will zeroize \(erase completely\) the entire HSM\.?$/i.test(t)
  );
}
