// `slot list`: the client's view of its slots — one block of `Label -> value` lines per slot, physical partitions
// (`Net Token Slot`) and HA virtual slots (whose labels carry an `HSM ` prefix), then `Current Slot Id: <n>|None`.
import { z } from "zod";
import {
  conform,
  describeLine,
  ParseError,
  parseNonNegativeInt,
  putExtra,
  readArrowPair,
} from "../common.ts";
import { readLunacmOutput } from "./capture.ts";

export const command = "slot list";

const slot = z.strictObject({
  slotId: z.number().int().min(0),
  label: z.string().nullable(),
  serialNumber: z.string().min(1),
  model: z.string().nullable(),
  firmwareVersion: z.string().nullable(),
  configuration: z.string().nullable(),
  description: z.string().nullable(),
  status: z.string().nullable(),
  /** The slot is an HA group's virtual slot (`HA Virtual Card Slot`, or status `N/A - HA Group`). */
  haVirtual: z.boolean(),
  extra: z.record(z.string(), z.string()),
});

export const schema = z.strictObject({
  slots: z.array(slot),
  currentSlotId: z.number().int().min(0).nullable(),
});
export type SlotList = z.infer<typeof schema>;
type Slot = z.infer<typeof slot>;

// Both the partition-slot labels and the HA-slot labels (`HSM Label ->`, `HSM Serial Number ->`, ...).
const FIELDS: Record<string, keyof Slot> = {
  label: "label",
  "token label": "label",
  "serial number": "serialNumber",
  "serial #": "serialNumber",
  model: "model",
  "firmware version": "firmwareVersion",
  configuration: "configuration",
  "slot description": "description",
  status: "status",
};

export function parse(raw: string): SlotList {
  const capture = readLunacmOutput(raw, command);
  const slots: Slot[] = [];
  let current: Record<string, unknown> | null = null;
  let currentSlotId: number | null | undefined;

  const finish = () => {
    if (!current) return;
    if (typeof current.serialNumber !== "string" || current.serialNumber === "") {
      throw new ParseError(`slot ${current.slotId}: missing serial number (output truncated?)`, raw);
    }
    const description = (current.description as string | undefined) ?? null;
    const status = (current.status as string | undefined) ?? null;
    slots.push({
      slotId: current.slotId as number,
      label: (current.label as string | undefined) ?? null,
      serialNumber: current.serialNumber,
      model: (current.model as string | undefined) ?? null,
      firmwareVersion: (current.firmwareVersion as string | undefined) ?? null,
      configuration: (current.configuration as string | undefined) ?? null,
      description,
      status,
      haVirtual: /HA Virtual/i.test(description ?? "") || /HA Group/i.test(status ?? ""),
      extra: current.extra as Record<string, string>,
    });
    current = null;
  };

  for (const line of capture.lines) {
    const t = line.trim();
    if (t === "" || /^Available HSMs:?$/i.test(t)) continue;
    const cur = /^Current Slot Id:\s*(\S+)(?:\s.*)?$/i.exec(t);
    if (cur) {
      finish();
      if (currentSlotId !== undefined) throw new ParseError("'Current Slot Id' printed twice", raw);
      currentSlotId = /^none$/i.test(cur[1] ?? "")
        ? null
        : parseNonNegativeInt(cur[1] ?? "", "Current Slot Id", raw);
      continue;
    }
    if (currentSlotId !== undefined)
      throw new ParseError(`text after 'Current Slot Id': ${describeLine(line)}`, raw);
    const kv = readArrowPair(line);
    if (!kv) throw new ParseError(`unrecognised line in 'slot list' output: ${describeLine(line)}`, raw);
    if (kv.key === "slot id") {
      finish();
      current = { slotId: parseNonNegativeInt(kv.value, "Slot Id", raw), extra: {} };
      continue;
    }
    if (!current) throw new ParseError(`slot field before any 'Slot Id': ${describeLine(line)}`, raw);
    const field = FIELDS[kv.key.replace(/^hsm /, "")];
    if (!field) {
      putExtra(current.extra as Record<string, string>, kv.label, kv.value, raw);
      continue;
    }
    if (field in current) throw new ParseError(`slot ${current.slotId}: '${kv.label}' printed twice`, raw);
    current[field] = kv.value;
  }
  finish();
  if (currentSlotId === undefined)
    throw new ParseError("missing 'Current Slot Id' line (output truncated?)", raw);
  const ids = new Set(slots.map((s) => s.slotId));
  if (ids.size !== slots.length) throw new ParseError("a slot id is listed twice", raw);
  if (currentSlotId !== undefined && currentSlotId !== null && !ids.has(currentSlotId)) {
    throw new ParseError(
      `'Current Slot Id: ${currentSlotId}' names a slot that is not listed (truncated?)`,
      raw,
    );
  }
  return conform(schema, { slots, currentSlotId: currentSlotId ?? null }, raw);
}
