// `hagroup listgroups`: each HA group's header (`HA Group Label:`, `HA Group Number:`, `Group Members:`,
// `Needs sync:`, `Standby Members:` ...) followed by its member table (`Slot #  Member S/N  Member Label  Status`).
// The member serials in the header and in the table must agree — a disagreement means a truncated or garbled
// capture, and an HA recovery decided on half a table could take the wrong member out. A client with no group answers
// with one statement (see NO_GROUPS) → `{ groups: [] }`; an empty capture is refused, never read as "no groups".
import { z } from "zod";
import {
  conform,
  describeLine,
  isRule,
  ParseError,
  parseNonNegativeInt,
  parseYesNo,
  putExtra,
  readColonPair,
} from "../common.ts";
import { readLunacmOutput } from "./capture.ts";

export const command = "hagroup listgroups";

const member = z.strictObject({
  /** Client slot of the member; null when printed as `-` / `N/A`. */
  slot: z.number().int().min(0).nullable(),
  serial: z.string().regex(/^\d+$/),
  label: z.string(),
  /** As printed, lower-cased: `alive`, `down`, ... */
  status: z.string().min(1),
});

const group = z.strictObject({
  label: z.string().min(1),
  number: z.string().regex(/^\d+$/),
  slotId: z.number().int().min(0).nullable(),
  synchronization: z.string().nullable(),
  members: z.array(member),
  needsSync: z.boolean(),
  standby: z.array(z.string()),
  extra: z.record(z.string(), z.string()),
});

export const schema = z.strictObject({ groups: z.array(group) });
export type HagroupListgroups = z.infer<typeof schema>;
type Group = z.infer<typeof group>;

const TABLE_HEADER = /^\s*Slot\s*#\s+Member\s+S\/N\s+Member\s+Label\s+Status\s*$/i;
const ROW = /^\s*(\d+|-|N\/A)\s+(\d+)\s+(?:(\S(?:.*?\S)?)\s+)?(\S+)\s*$/i;
// [I] What lunacm prints when the client has no HA group is not in the reference (§15 shows only a listing). This
// parser and the twin agree on one statement, alone in the output: `HA Group list is empty.` Nothing else counts as
// "no groups": an empty capture, a cut statement or any other wording is refused, because an absent answer is not
// proof that a client uses none of a device's partitions (deprovision's preflight decides on it). Adjust this one
// pattern (and the twin's `NO_HA_GROUPS`) when a capture from a real client shows the actual wording.
const NO_GROUPS = /^\s*HA Group list is empty\.\s*$/i;

function serialList(value: string, what: string, raw: string): string[] {
  const v = value.trim();
  if (v === "" || /^<none>$/i.test(v)) return [];
  const items = v.split(/\s*,\s*/);
  if (!items.every((s) => /^\d+$/.test(s)))
    throw new ParseError(`unreadable ${what}: ${JSON.stringify(value)}`, raw);
  return items;
}

export function parse(raw: string): HagroupListgroups {
  const capture = readLunacmOutput(raw, command);
  const lines = capture.lines;
  const groups: Group[] = [];
  let head = new Map<string, string>();
  let extra: Record<string, string> = {};
  let members: Group["members"] | null = null;
  let noGroups = false;

  const finish = () => {
    if (head.size === 0 && members === null) return;
    const label = head.get("ha group label");
    if (!label) throw new ParseError("HA group without 'HA Group Label'", raw);
    const number = head.get("ha group number");
    if (!number || !/^\d+$/.test(number))
      throw new ParseError(`HA group ${label}: missing or unreadable 'HA Group Number'`, raw);
    const needs = head.get("needs sync");
    if (needs === undefined)
      throw new ParseError(`HA group ${label}: missing 'Needs sync' (truncated?)`, raw);
    const listed = head.has("group members")
      ? serialList(head.get("group members") ?? "", "Group Members", raw)
      : null;
    if (members === null) {
      throw new ParseError(`HA group ${label}: member table missing (output truncated?)`, raw);
    }
    const tableSerials = members.map((m) => m.serial);
    if (listed !== null && [...listed].sort().join(",") !== [...tableSerials].sort().join(",")) {
      throw new ParseError(
        `HA group ${label}: 'Group Members' (${listed.join(", ")}) disagrees with the member table (${tableSerials.join(", ")})`,
        raw,
      );
    }
    const slot = head.get("ha group slot id");
    groups.push({
      label,
      number,
      // `N/A` when the group has no virtual slot on this client (e.g. HA-only off and the group not yet usable).
      slotId:
        slot === undefined || /^n\/a$/i.test(slot)
          ? null
          : parseNonNegativeInt(slot, "HA Group Slot ID", raw),
      synchronization: head.get("synchronization") ?? null,
      members,
      needsSync: parseYesNo(needs, "Needs sync", raw),
      standby: serialList(head.get("standby members") ?? "", "Standby Members", raw),
      extra,
    });
    head = new Map();
    extra = {};
    members = null;
  };

  const KNOWN = new Set([
    "ha group label",
    "ha group number",
    "ha group slot id",
    "synchronization",
    "group members",
    "needs sync",
    "standby members",
  ]);

  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? "";
    if (line.trim() === "") continue;
    if (NO_GROUPS.test(line)) {
      if (noGroups) throw new ParseError("'HA Group list is empty.' printed twice", raw);
      noGroups = true;
      continue;
    }
    if (TABLE_HEADER.test(line)) {
      if (head.size === 0) throw new ParseError("member table without an HA group header", raw);
      if (members !== null) throw new ParseError("two member tables for one HA group", raw);
      if (!isRule(lines[i + 1] ?? "")) throw new ParseError("member table header without its === rule", raw);
      i++;
      members = [];
      while (i + 1 < lines.length && (lines[i + 1] ?? "").trim() !== "") {
        const rowLine = lines[i + 1] ?? "";
        if (readColonPair(rowLine) && !ROW.test(rowLine)) break;
        const m = ROW.exec(rowLine);
        if (!m) throw new ParseError(`unreadable HA member row (truncated?): ${describeLine(rowLine)}`, raw);
        const slotText = m[1] ?? "";
        members.push({
          slot: /^\d+$/.test(slotText) ? Number(slotText) : null,
          serial: m[2] ?? "",
          label: m[3] ?? "",
          status: (m[4] ?? "").toLowerCase(),
        });
        i++;
      }
      continue;
    }
    const kv = readColonPair(line);
    if (!kv)
      throw new ParseError(`unrecognised line in 'hagroup listgroups' output: ${describeLine(line)}`, raw);
    if (kv.key === "ha group label") finish();
    if (!KNOWN.has(kv.key)) {
      putExtra(extra, kv.label, kv.value, raw);
      continue;
    }
    if (head.has(kv.key)) throw new ParseError(`'${kv.label}' printed twice for one HA group`, raw);
    head.set(kv.key, kv.value);
  }
  finish();
  if (noGroups && groups.length > 0) throw new ParseError("'no HA groups' printed next to HA groups", raw);
  if (!noGroups && groups.length === 0) throw new ParseError("empty 'hagroup listgroups' output", raw);
  return conform(schema, { groups }, raw);
}
