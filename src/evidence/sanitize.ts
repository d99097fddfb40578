// Everything that enters evidence passes through here first, before it is hashed: a secret that reached a record
// could never be removed again without breaking the chain. Two nets:
//   1. every string (values and keys) goes through redact(), which replaces every Secret value this process knows;
//   2. any field whose name says it holds a secret (password, secret, pin, token, credential, passphrase, ...) is
//      replaced whole, whatever its value, so an unregistered password still never gets in.
// The result is canonical JSON text (sanitizedJson, what a record hashes), or that text read back as plain data.
import { redact, Secret } from "../config/secret.ts";
import { canonicalJson } from "./canonical.ts";

export const REDACTED = "[REDACTED]";
const MAX_DEPTH = 32;

/** Words that mark a field as secret when they appear in its name (camelCase, snake_case, kebab-case split). */
const SECRET_WORDS = new Set([
  "password",
  "passwords",
  "passwd",
  "passphrase",
  "pwd",
  "secret",
  "secrets",
  "pin",
  "pins",
  "token",
  "tokens",
  "credential",
  "credentials",
  "otp",
]);
/** Two-word secret names (api key, private key, ...). */
const SECRET_PAIRS = new Set([
  "api key",
  "private key",
  "access key",
  "secret key",
  "auth key",
  "session key",
]);
/**
 * Names that contain a secret word but hold public values. A fencing token is a lock counter, and evidence must be
 * able to say which lock generation did what. Only numbers pass; anything else under these names is redacted too.
 */
const PUBLIC_NUMERIC_FIELDS = new Set(["fencingtoken", "fencetoken", "fencingtokens"]);

/**
 * Field names repeat (every record has "step", "command", ...): each is judged, and its `"name":` written, once.
 * Bounded, then cleared.
 */
const fieldNames = new Map<string, { secret: boolean; prefix: string }>();
const FIELD_NAMES_MAX = 10_000;

function fieldName(name: string): { secret: boolean; prefix: string } {
  let known = fieldNames.get(name);
  if (known === undefined) {
    known = { secret: judgeFieldName(name), prefix: `${JSON.stringify(name)}:` };
    if (fieldNames.size >= FIELD_NAMES_MAX) fieldNames.clear();
    fieldNames.set(name, known);
  }
  return known;
}

export function isSecretFieldName(name: string): boolean {
  return fieldName(name).secret;
}

function judgeFieldName(name: string): boolean {
  const words = name
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .replace(/([A-Z]+)([A-Z][a-z])/g, "$1 $2")
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter(Boolean);
  if (words.some((w) => SECRET_WORDS.has(w))) return true;
  for (let i = 1; i < words.length; i++) if (SECRET_PAIRS.has(`${words[i - 1]} ${words[i]}`)) return true;
  // Glued words: "apikey", "privatekey", "sopassword".
  const glued = words.join("");
  return /password|passphrase|secret|apikey|privatekey|credential/.test(glued);
}

/** `value` as plain JSON data with every secret replaced by [REDACTED] (what sanitizedJson writes, read back). */
export function sanitizeEvidenceData(value: unknown): unknown {
  return JSON.parse(sanitizedJson(value));
}

/**
 * `value` sanitized (see the header) and written as canonical JSON in one walk: what a record's hash is taken over,
 * made once when the record is appended. (It used to be a sanitized copy, then serialized: two walks, and the copy
 * was garbage at once; on the 1,000-device sweep that was a good part of the evidence path's CPU.)
 */
export function sanitizedJson(value: unknown): string {
  return cleanJson(value, 0, new WeakSet());
}

function cleanJson(value: unknown, depth: number, seen: WeakSet<object>): string {
  if (value === null || value === undefined) return "null";
  switch (typeof value) {
    case "string":
      return JSON.stringify(redact(value));
    case "boolean":
      return value ? "true" : "false";
    case "number":
      return Number.isFinite(value) ? JSON.stringify(value) : JSON.stringify(String(value));
    case "bigint":
      return JSON.stringify(value.toString());
    case "symbol":
    case "function":
      return "null";
  }
  const obj = value as object;
  if (obj instanceof Secret) return JSON.stringify(REDACTED);
  if (depth >= MAX_DEPTH) return JSON.stringify("[too deep]");
  if (seen.has(obj)) return JSON.stringify("[circular]");
  seen.add(obj);
  try {
    if (obj instanceof Date) return Number.isNaN(obj.getTime()) ? "null" : JSON.stringify(obj.toISOString());
    if (obj instanceof Uint8Array) return JSON.stringify(redact(Buffer.from(obj).toString("utf8")));
    if (obj instanceof Error)
      return cleanObjectJson({ ...obj, name: obj.name, message: obj.message }, depth, seen);
    if (Array.isArray(obj)) return `[${obj.map((v) => cleanJson(v, depth + 1, seen)).join(",")}]`;
    if (obj instanceof Set) return `[${[...obj].map((v) => cleanJson(v, depth + 1, seen)).join(",")}]`;
    if (obj instanceof Map)
      return cleanObjectJson(Object.fromEntries([...obj].map(([k, v]) => [String(k), v])), depth, seen);
    const toJSON = (obj as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === "function") return cleanJson(toJSON.call(obj), depth + 1, seen);
    return cleanObjectJson(obj as Record<string, unknown>, depth, seen);
  } finally {
    seen.delete(obj);
  }
}

function cleanObjectJson(obj: Record<string, unknown>, depth: number, seen: WeakSet<object>): string {
  // Written straight into the text, keys put in order in place: on the 1,000-device sweep (npm run bench) the entries
  // pairs, the map of parts and sort's copy of the keys this used to make were ~15 % of the daemon's allocations.
  const keys = Object.keys(obj);
  for (const key of keys) if (redact(key) !== key) return renamedObjectJson(obj, depth, seen);
  sortCodeUnits(keys);
  let out = "{";
  for (const key of keys) {
    const v = obj[key];
    if (v === undefined || typeof v === "function" || typeof v === "symbol") continue;
    const name = fieldName(key);
    out += `${out.length > 1 ? "," : ""}${name.prefix}${fieldJson(key, name.secret, v, depth, seen)}`;
  }
  return `${out}}`;
}

/** The JSON of one field's value: whole fields under a secret name are replaced (see the header). */
function fieldJson(key: string, secret: boolean, v: unknown, depth: number, seen: WeakSet<object>): string {
  if (!secret) return cleanJson(v, depth + 1, seen);
  return PUBLIC_NUMERIC_FIELDS.has(key.toLowerCase().replace(/[^a-z]/g, "")) && typeof v === "number"
    ? canonicalJson(v)
    : JSON.stringify(REDACTED);
}

/** An object one of whose keys holds a secret value: keys redacted, and two that became equal keep the later value. */
function renamedObjectJson(obj: Record<string, unknown>, depth: number, seen: WeakSet<object>): string {
  const out = new Map<string, string>();
  for (const [key, v] of Object.entries(obj)) {
    if (v === undefined || typeof v === "function" || typeof v === "symbol") continue;
    out.set(redact(key), fieldJson(key, isSecretFieldName(key), v, depth, seen));
  }
  const keys = [...out.keys()].sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${out.get(k)}`).join(",")}}`;
}

/**
 * Sort strings by UTF-16 code units, as Array.prototype.sort does by default, in place and without a copy: an
 * object's keys are few, and most arrive nearly in order.
 */
function sortCodeUnits(keys: string[]): void {
  for (let i = 1; i < keys.length; i++) {
    const k = keys[i] as string;
    let j = i - 1;
    while (j >= 0 && (keys[j] as string) > k) {
      keys[j + 1] = keys[j] as string;
      j--;
    }
    keys[j + 1] = k;
  }
}
