// `hsm show` (alias `hsm sh`): appliance software version, HSM identity, the HSM Admin (SO) login state and the
// attempts left before the HSM zeroizes itself. The guard reads `adminLoginAttemptsLeft` before it allows any
// `hsm login`, so this parser refuses every counter it cannot read rather than assume one.
import { z } from "zod";
import {
  conform,
  describeLine,
  ParseError,
  parseNonNegativeInt,
  parseYesNo,
  putExtra,
  readColonPair,
} from "../common.ts";
import { readLunashOutput } from "./capture.ts";
import { splitSections } from "./sections.ts";

export const command = "hsm show";

export const schema = z.strictObject({
  serial: z.string().regex(/^\d+$/),
  /** "" when the HSM is zeroized (7.x prints nothing; Luna 5 prints `no label`). */
  label: z.string(),
  firmware: z.string().min(1),
  /** Appliance software version (`Software Version:`); null when the capture has no Appliance Details block. */
  softwareVersion: z.string().nullable(),
  /** `HSM Model:` (Luna 7: `Luna K7`) or `Hardware Model:` (Luna 5/6). */
  model: z.string().min(1),
  partNumber: z.string().nullable(),
  authenticationMethod: z.string().nullable(),
  /** True when the HSM reports itself zeroized (`HSM IS ZEROIZED !!!!`, or Luna 5/6 `Zeroized: Yes`). */
  zeroized: z.boolean(),
  /** `Manually Zeroized:` (decommission button); null when not printed. Reported as is, not folded into `zeroized`. */
  manuallyZeroized: z.boolean().nullable(),
  adminLoggedIn: z.boolean(),
  /** HSM SO attempts left before zeroization, as the device prints it; 0 when zeroized. */
  adminLoginAttemptsLeft: z.number().int().min(0),
  rpvInitialized: z.boolean().nullable(),
  auditRoleInitialized: z.boolean().nullable(),
  remoteLoginInitialized: z.boolean().nullable(),
  secureTransportMode: z.boolean().nullable(),
  tamperState: z.string().nullable(),
  partitions: z.array(z.strictObject({ serial: z.string(), name: z.string() })),
  partitionsAllowed: z.number().int().nullable(),
  partitionsCreated: z.number().int().nullable(),
  fipsApproved: z.boolean(),
  storage: z
    .strictObject({ totalBytes: z.number().int(), usedBytes: z.number().int(), freeBytes: z.number().int() })
    .nullable(),
  /** Environmental block as printed (`Battery Voltage` → `3.093 V`). */
  environment: z.record(z.string(), z.string()),
  /** `Label: value` lines this parser does not know (newer firmware); kept, not dropped. */
  extra: z.record(z.string(), z.string()),
});
export type HsmShow = z.infer<typeof schema>;

type Field =
  | "softwareVersion"
  | "label"
  | "serial"
  | "firmware"
  | "model"
  | "partNumber"
  | "authenticationMethod"
  | "adminLoginStatus"
  | "attemptsLeft"
  | "rpvInitialized"
  | "auditRoleInitialized"
  | "remoteLoginInitialized"
  | "manuallyZeroized"
  | "legacyZeroized"
  | "secureTransportMode"
  | "tamperState"
  | "partitionsAllowed"
  | "partitionsCreated"
  | "storageTotal"
  | "storageUsed"
  | "storageFree";

const LABELS: Record<string, Field> = {
  "software version": "softwareVersion",
  "hsm label": "label",
  label: "label",
  "serial #": "serial",
  "serial number": "serial",
  "hsm serial number": "serial",
  firmware: "firmware",
  "firmware version": "firmware",
  "hsm model": "model",
  "hardware model": "model",
  "hsm part number": "partNumber",
  "part number": "partNumber",
  "authentication method": "authenticationMethod",
  "hsm admin login status": "adminLoginStatus",
  "hsm admin login attempts left": "attemptsLeft",
  "rpv initialized": "rpvInitialized",
  "audit role initialized": "auditRoleInitialized",
  "remote login initialized": "remoteLoginInitialized",
  "manually zeroized": "manuallyZeroized",
  zeroized: "legacyZeroized",
  "secure transport mode": "secureTransportMode",
  "hsm tamper state": "tamperState",
  "number of partitions allowed": "partitionsAllowed",
  "number of partitions created": "partitionsCreated",
  "maximum hsm storage space (bytes)": "storageTotal",
  "space in use (bytes)": "storageUsed",
  "free space left (bytes)": "storageFree",
};

const PARTITION_LINE = /^\s*Partition:\s*(\d+)\s*,\s*Name:\s*(.*?)\s*$/;
const NO_PARTITIONS = /^\s*There are no partitions\.?\s*$/i;
const FIPS = /^\s*The HSM is (NOT )?in FIPS 140-[23] approved operation mode\.?\s*$/i;
const ATTEMPTS = /^(\d+) before HSM zeroization!*$/i;
const ZEROIZED_NOTICE = /^HSM IS ZEROIZED\s*!*$/i;

export function parse(raw: string): HsmShow {
  const capture = readLunashOutput(raw, command);
  const fields = new Map<Field, string>();
  const environment: Record<string, string> = {};
  const extra: Record<string, string> = {};
  const partitions: { serial: string; name: string }[] = [];
  let sawPartitionSection = false;
  let sawNoPartitions = false;
  let fipsApproved: boolean | null = null;

  for (const section of splitSections(capture.lines)) {
    const title = section.title.toLowerCase();
    if (title.startsWith("partitions")) sawPartitionSection = true;
    for (const line of section.lines) {
      if (line.trim() === "") continue;
      const p = PARTITION_LINE.exec(line);
      if (p) {
        partitions.push({ serial: p[1] ?? "", name: p[2] ?? "" });
        sawPartitionSection = true;
        continue;
      }
      if (NO_PARTITIONS.test(line)) {
        sawNoPartitions = true;
        sawPartitionSection = true;
        continue;
      }
      const f = FIPS.exec(line);
      if (f) {
        const approved = f[1] === undefined;
        if (fipsApproved !== null && fipsApproved !== approved) {
          throw new ParseError("contradictory FIPS operation lines", raw);
        }
        fipsApproved = approved;
        continue;
      }
      const kv = readColonPair(line);
      if (!kv) throw new ParseError(`unrecognised line in 'hsm show' output: ${describeLine(line)}`, raw);
      if (title.startsWith("environmental")) {
        putExtra(environment, kv.label, kv.value, raw);
        continue;
      }
      const field = LABELS[kv.key];
      if (!field) {
        putExtra(extra, kv.label, kv.value, raw);
        continue;
      }
      const seen = fields.get(field);
      if (seen !== undefined && seen !== kv.value) {
        throw new ParseError(`'${kv.label}' printed twice with different values`, raw);
      }
      fields.set(field, kv.value);
    }
  }

  const need = (field: Field, what: string): string => {
    const v = fields.get(field);
    if (v === undefined) throw new ParseError(`missing ${what}`, raw);
    return v;
  };
  const optional = (field: Field): string | null => fields.get(field) ?? null;
  const optionalBool = (field: Field, what: string): boolean | null => {
    const v = fields.get(field);
    // Older appliances print `Not Supported` for features their firmware lacks: no answer, not a yes/no.
    if (v === undefined || /^(not supported|n\/a)$/i.test(v)) return null;
    return parseYesNo(v, what, raw);
  };
  const optionalInt = (field: Field, what: string): number | null => {
    const v = fields.get(field);
    return v === undefined ? null : parseNonNegativeInt(v, what, raw);
  };

  const serial = need("serial", "HSM serial number (Serial #)");
  if (!/^\d+$/.test(serial))
    throw new ParseError(`HSM serial number is not numeric: ${JSON.stringify(serial)}`, raw);
  const firmware = need("firmware", "firmware version");
  if (firmware === "") throw new ParseError("firmware version is empty", raw);
  const model = need("model", "HSM model (HSM Model / Hardware Model)");
  if (model === "") throw new ParseError("HSM model is empty", raw);
  let label = need("label", "HSM label");
  if (/^no label$/i.test(label)) label = "";

  const status = need("adminLoginStatus", "HSM Admin login status").toLowerCase();
  let adminLoggedIn: boolean;
  if (status === "logged in") adminLoggedIn = true;
  else if (status === "not logged in") adminLoggedIn = false;
  else throw new ParseError(`unreadable HSM Admin login status: ${JSON.stringify(status)}`, raw);

  const attemptsText = need("attemptsLeft", "HSM Admin login attempts left");
  let zeroized: boolean;
  let adminLoginAttemptsLeft: number;
  const a = ATTEMPTS.exec(attemptsText);
  if (a) {
    adminLoginAttemptsLeft = Number(a[1]);
    // "0 before HSM zeroization!" would contradict itself: a zeroized HSM says so in words.
    if (adminLoginAttemptsLeft < 1) {
      throw new ParseError(`unreadable HSM Admin login attempts left: ${JSON.stringify(attemptsText)}`, raw);
    }
    zeroized = false;
  } else if (ZEROIZED_NOTICE.test(attemptsText)) {
    adminLoginAttemptsLeft = 0;
    zeroized = true;
  } else {
    throw new ParseError(`unreadable HSM Admin login attempts left: ${JSON.stringify(attemptsText)}`, raw);
  }
  const legacyZeroized = optionalBool("legacyZeroized", "Zeroized");
  if (legacyZeroized !== null && legacyZeroized !== zeroized) {
    throw new ParseError(
      `'Zeroized: ${fields.get("legacyZeroized")}' contradicts the attempts-left line`,
      raw,
    );
  }

  if (fipsApproved === null)
    throw new ParseError("missing FIPS operation mode line (output truncated?)", raw);

  const partitionsCreated = optionalInt("partitionsCreated", "Number of partitions created");
  if (!sawPartitionSection) throw new ParseError("missing partitions section (output truncated?)", raw);
  if (sawNoPartitions && partitions.length > 0) {
    throw new ParseError("'There are no partitions.' printed next to partition lines", raw);
  }
  if (!sawNoPartitions && partitions.length === 0 && partitionsCreated === null) {
    throw new ParseError("partitions section lists nothing (output truncated?)", raw);
  }
  if (partitionsCreated !== null && partitionsCreated !== partitions.length) {
    throw new ParseError(
      `'Number of partitions created: ${partitionsCreated}' but ${partitions.length} partition line(s) listed`,
      raw,
    );
  }

  // Zeroization destroys every partition; a zeroized HSM listing partitions contradicts itself.
  if (zeroized && partitions.length > 0) {
    throw new ParseError("HSM reported zeroized yet lists partitions (contradictory output)", raw);
  }

  const total = optionalInt("storageTotal", "Maximum HSM Storage Space");
  const used = optionalInt("storageUsed", "Space In Use");
  const free = optionalInt("storageFree", "Free Space Left");
  let storage: HsmShow["storage"] = null;
  if (total !== null || used !== null || free !== null) {
    if (total === null || used === null || free === null) {
      throw new ParseError("HSM storage block is incomplete", raw);
    }
    storage = { totalBytes: total, usedBytes: used, freeBytes: free };
  }

  return conform(
    schema,
    {
      serial,
      label,
      firmware,
      softwareVersion: optional("softwareVersion"),
      model,
      partNumber: optional("partNumber"),
      authenticationMethod: optional("authenticationMethod"),
      zeroized,
      manuallyZeroized: optionalBool("manuallyZeroized", "Manually Zeroized"),
      adminLoggedIn,
      adminLoginAttemptsLeft,
      rpvInitialized: optionalBool("rpvInitialized", "RPV Initialized"),
      auditRoleInitialized: optionalBool("auditRoleInitialized", "Audit Role Initialized"),
      remoteLoginInitialized: optionalBool("remoteLoginInitialized", "Remote Login Initialized"),
      secureTransportMode: optionalBool("secureTransportMode", "Secure Transport Mode"),
      tamperState: optional("tamperState"),
      partitions,
      partitionsAllowed: optionalInt("partitionsAllowed", "Number of partitions allowed"),
      partitionsCreated,
      fipsApproved,
      storage,
      environment,
      extra,
    },
    raw,
  );
}
