// `partition show -partition <name>` (alias `partition sh`): one partition's identity, role lockout state and the
// login attempts left per role. Luna 7 has a Partition SO and a Crypto Officer; Luna 5/6 had one Partition Owner.
// The counters decide whether a role login may be attempted, so a counter that is printed but unreadable fails the
// whole parse. Without `-partition` the device lists every partition; that output is refused (ask for one).
import { z } from "zod";
import {
  conform,
  describeLine,
  type KeyValue,
  ParseError,
  parseNonNegativeInt,
  parseYesNo,
  putExtra,
  readColonPair,
} from "../common.ts";
import { readLunashOutput } from "./capture.ts";

export const command = "partition show";

export const schema = z.strictObject({
  serial: z.string().regex(/^\d+$/),
  name: z.string().min(1),
  label: z.string().nullable(),
  psoPinToBeChanged: z.boolean().nullable(),
  psoZeroized: z.boolean().nullable(),
  psoLoginAttemptsLeft: z.number().int().min(0).nullable(),
  coPinToBeChanged: z.boolean().nullable(),
  coLockedOut: z.boolean().nullable(),
  coLoginAttemptsLeft: z.number().int().min(0).nullable(),
  coActivated: z.boolean().nullable(),
  /** false when the device says `Crypto Officer is not initialized.`; true when it prints CO state; else null. */
  coInitialized: z.boolean().nullable(),
  /** false when the device says `Crypto User is not initialized.`; null when it says nothing about the CU. */
  cuInitialized: z.boolean().nullable(),
  /** Luna 5/6 Partition Owner fields (null on Luna 7). */
  ownerLockedOut: z.boolean().nullable(),
  ownerPinToBeChanged: z.boolean().nullable(),
  ownerLoginAttemptsLeft: z.number().int().min(0).nullable(),
  legacyDomainSet: z.boolean().nullable(),
  storage: z
    .strictObject({ totalBytes: z.number().int(), usedBytes: z.number().int(), freeBytes: z.number().int() })
    .nullable(),
  objectCount: z.number().int().min(0).nullable(),
  extra: z.record(z.string(), z.string()),
});
export type PartitionShow = z.infer<typeof schema>;

type Kind = "string" | "bool" | "attempts" | "int" | "storage";
const LABELS: Record<string, { field: keyof PartitionShow; kind: Kind }> = {
  "partition sn": { field: "serial", kind: "string" },
  "partition serial number": { field: "serial", kind: "string" },
  "partition name": { field: "name", kind: "string" },
  "partition label": { field: "label", kind: "string" },
  "partition so pin to be changed": { field: "psoPinToBeChanged", kind: "bool" },
  "partition so zeroized": { field: "psoZeroized", kind: "bool" },
  "partition so login attempts left": { field: "psoLoginAttemptsLeft", kind: "attempts" },
  "crypto officer pin to be changed": { field: "coPinToBeChanged", kind: "bool" },
  "crypto officer locked out": { field: "coLockedOut", kind: "bool" },
  "crypto officer login attempts left": { field: "coLoginAttemptsLeft", kind: "attempts" },
  "crypto officer is activated": { field: "coActivated", kind: "bool" },
  "partition owner locked out": { field: "ownerLockedOut", kind: "bool" },
  "partition owner pin to be changed": { field: "ownerPinToBeChanged", kind: "bool" },
  "partition owner login attempts left": { field: "ownerLoginAttemptsLeft", kind: "attempts" },
  "legacy domain has been set": { field: "legacyDomainSet", kind: "bool" },
  "partition storage information (bytes)": { field: "storage", kind: "storage" },
  "storage (bytes)": { field: "storage", kind: "storage" },
  "partition object count": { field: "objectCount", kind: "int" },
  "number objects": { field: "objectCount", kind: "int" },
};

const STORAGE = /^Total\s*=\s*(\d+)\s*,\s*Used\s*=\s*(\d+)\s*,\s*Free\s*=\s*(\d+)$/i;
// `None - Owner is Locked Out` / `None - Crypto Officer is Locked Out`: no attempts left.
const ATTEMPTS_NONE = /^None\b.*Locked Out\.?$/i;

export function parse(raw: string): PartitionShow {
  const capture = readLunashOutput(raw, command);
  const out: Record<string, unknown> = {};
  const extra: Record<string, string> = {};
  let cuInitialized: boolean | null = null;
  let coInitialized: boolean | null = null;
  let partitionsSeen = 0;

  const read = (kv: KeyValue, kind: Kind): unknown => {
    switch (kind) {
      case "string":
        return kv.value;
      case "bool":
        return parseYesNo(kv.value, kv.label, raw);
      case "int":
        return parseNonNegativeInt(kv.value, kv.label, raw);
      case "attempts":
        if (ATTEMPTS_NONE.test(kv.value)) return 0;
        if (/^\d+$/.test(kv.value)) return Number(kv.value);
        throw new ParseError(`unreadable counter '${kv.label}': ${JSON.stringify(kv.value)}`, raw);
      case "storage": {
        const m = STORAGE.exec(kv.value);
        if (!m) throw new ParseError(`unreadable storage line: ${JSON.stringify(kv.value)}`, raw);
        return { totalBytes: Number(m[1]), usedBytes: Number(m[2]), freeBytes: Number(m[3]) };
      }
    }
  };

  for (const line of capture.lines) {
    const t = line.trim();
    if (t === "") continue;
    const init = /^Crypto (User|Officer) is (not )?initialized\.?$/i.exec(t);
    if (init) {
      if (/user/i.test(init[1] ?? "")) cuInitialized = init[2] === undefined;
      else coInitialized = init[2] === undefined;
      continue;
    }
    const kv = readColonPair(line);
    if (!kv) throw new ParseError(`unrecognised line in 'partition show' output: ${describeLine(line)}`, raw);
    const known = LABELS[kv.key];
    if (!known) {
      putExtra(extra, kv.label, kv.value, raw);
      continue;
    }
    if (known.field === "name") partitionsSeen++;
    if (known.field in out) {
      if (known.field === "name" || known.field === "serial") {
        throw new ParseError(
          "output describes more than one partition; run 'partition show -partition <name>' for one",
          raw,
        );
      }
      throw new ParseError(`'${kv.label}' printed twice`, raw);
    }
    out[known.field] = read(kv, known.kind);
  }

  if (partitionsSeen > 1) throw new ParseError("output describes more than one partition", raw);
  if (typeof out.serial !== "string" || out.serial === "") throw new ParseError("missing Partition SN", raw);
  if (!/^\d+$/.test(out.serial)) throw new ParseError(`Partition SN is not numeric: ${out.serial}`, raw);
  if (typeof out.name !== "string" || out.name === "") throw new ParseError("missing Partition Name", raw);
  // A role whose fields appear must come with its counter and lockout state: the guard decides on exactly those,
  // and a capture cut after the first lines of a role would otherwise read as "not printed".
  const has = (prefix: string) => Object.keys(out).some((k) => k.startsWith(prefix));
  const require = (field: string, label: string) => {
    if (!(field in out)) throw new ParseError(`missing '${label}' (output truncated?)`, raw);
  };
  // Luna 7 (Partition SO + Crypto Officer): both roles must be accounted for; the CO either by its counter and
  // lockout state or by the device saying it is not initialized. Luna 5/6: the Partition Owner's counter and state.
  const owner = has("owner");
  const luna7 = has("pso") || has("co") || coInitialized !== null;
  if (owner && luna7)
    throw new ParseError("output mixes Partition Owner (Luna 5/6) and PSO/CO (Luna 7) fields", raw);
  if (!owner && !luna7)
    throw new ParseError("no role login state in 'partition show' output (truncated?)", raw);
  if (luna7) {
    require("psoLoginAttemptsLeft", "Partition SO Login Attempts Left");
    if (coInitialized === false) {
      if (has("co")) throw new ParseError("Crypto Officer reported not initialized yet with CO state", raw);
    } else {
      require("coLoginAttemptsLeft", "Crypto Officer Login Attempts Left");
      require("coLockedOut", "Crypto Officer Locked Out");
      coInitialized = true;
    }
  }
  if (owner) {
    require("ownerLoginAttemptsLeft", "Partition Owner Login Attempts Left");
    require("ownerLockedOut", "Partition Owner Locked Out");
  }
  const lockedOutButAttempts =
    (out.coLockedOut === true &&
      typeof out.coLoginAttemptsLeft === "number" &&
      out.coLoginAttemptsLeft > 0) ||
    (out.ownerLockedOut === true &&
      typeof out.ownerLoginAttemptsLeft === "number" &&
      out.ownerLoginAttemptsLeft > 0);
  if (lockedOutButAttempts)
    throw new ParseError("role reported locked out yet with login attempts left", raw);

  const value = {
    serial: out.serial,
    name: out.name,
    label: out.label ?? null,
    psoPinToBeChanged: out.psoPinToBeChanged ?? null,
    psoZeroized: out.psoZeroized ?? null,
    psoLoginAttemptsLeft: out.psoLoginAttemptsLeft ?? null,
    coPinToBeChanged: out.coPinToBeChanged ?? null,
    coLockedOut: out.coLockedOut ?? null,
    coLoginAttemptsLeft: out.coLoginAttemptsLeft ?? null,
    coActivated: out.coActivated ?? null,
    coInitialized,
    cuInitialized,
    ownerLockedOut: out.ownerLockedOut ?? null,
    ownerPinToBeChanged: out.ownerPinToBeChanged ?? null,
    ownerLoginAttemptsLeft: out.ownerLoginAttemptsLeft ?? null,
    legacyDomainSet: out.legacyDomainSet ?? null,
    storage: out.storage ?? null,
    objectCount: out.objectCount ?? null,
    extra,
  };
  return conform(schema, value, raw);
}
