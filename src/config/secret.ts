// Secrets: references in the fleet file (`env:NAME`, `file:/path`, or a literal in a twin file) resolve to
// Secret objects whose value leaves only through reveal(). Every resolved value is registered with the
// redactor so that any text leaving the process (logs, transcripts, evidence, errors) can be scrubbed.
import { readFileSync } from "node:fs";
import { inspect } from "node:util";
import { NonRetryable } from "../errors/non-retryable.ts";

const REDACTED = "[REDACTED]";

/** Every secret value this process has resolved. */
const knownSecretValues = new Set<string>();
/** Shortest value the redactor tracks (see registerSecretValue). */
const MIN_SECRET_LENGTH = 4;
/**
 * Above this many values, matches are found by one pass over the text through an index of each value's first two
 * characters instead of one search per value: a daemon holding a 1,000-device fleet has thousands of secrets, and
 * redact() runs on every chunk a shell receives, so its cost must not grow with the fleet.
 */
const INDEX_ABOVE = 32;
let byPrefix: Map<number, string[]> | undefined;
/**
 * One byte per hash of a two-character prefix: non-zero when some value may start there. Most positions of a text
 * start no secret, and a typed-array read rejects them several times faster than a Map lookup (the scan runs over
 * every byte a shell receives and every evidence record).
 */
let prefixFilter: Uint8Array | undefined;

function filterSlot(c0: number, c1: number): number {
  return ((c0 << 7) ^ c1) & 0xffff;
}

export function registerSecretValue(value: string): void {
  // Very short strings would shred ordinary text; the appliance refuses passwords under 8 characters anyway.
  if (value.length >= MIN_SECRET_LENGTH && !knownSecretValues.has(value)) {
    knownSecretValues.add(value);
    byPrefix = undefined;
    prefixFilter = undefined;
    // "Holds no secret" was said of the values known until now.
    cleanTexts.clear();
    cleanChars = 0;
  }
}

/**
 * Texts already scanned and found to hold no known value. One reply's text is scanned several times on its way (the
 * step result, its checkpoint, the evidence record of it, the job's result): the same string each time, whose hash
 * V8 keeps, so asking this set is far cheaper than scanning again. Emptied whenever a value is registered; bounded
 * in count and in characters, and emptied when full.
 */
const cleanTexts = new Set<string>();
let cleanChars = 0;
const CLEAN_MIN_LENGTH = 32;
const CLEAN_MAX_TEXTS = 16_384;
const CLEAN_MAX_CHARS = 4_000_000;

function rememberClean(text: string): void {
  if (cleanTexts.size >= CLEAN_MAX_TEXTS || cleanChars + text.length > CLEAN_MAX_CHARS) {
    cleanTexts.clear();
    cleanChars = 0;
  }
  if (text.length > CLEAN_MAX_CHARS) return;
  cleanTexts.add(text);
  cleanChars += text.length;
}

function prefixKey(text: string, i: number): number {
  return (text.charCodeAt(i) << 16) | text.charCodeAt(i + 1);
}

function prefixIndex(): { index: Map<number, string[]>; filter: Uint8Array } {
  if (byPrefix && prefixFilter) return { index: byPrefix, filter: prefixFilter };
  const index = new Map<number, string[]>();
  const filter = new Uint8Array(0x10000);
  for (const value of knownSecretValues) {
    const key = prefixKey(value, 0);
    filter[filterSlot(value.charCodeAt(0), value.charCodeAt(1))] = 1;
    const list = index.get(key);
    if (list) list.push(value);
    else index.set(key, [value]);
  }
  byPrefix = index;
  prefixFilter = filter;
  return { index, filter };
}

/** [start, end) of every occurrence of every known value, in no particular order. */
function occurrences(text: string): [number, number][] {
  const found: [number, number][] = [];
  if (knownSecretValues.size <= INDEX_ABOVE) {
    for (const value of knownSecretValues)
      for (let i = text.indexOf(value); i >= 0; i = text.indexOf(value, i + 1))
        found.push([i, i + value.length]);
    return found;
  }
  const { index, filter } = prefixIndex();
  const last = text.length - MIN_SECRET_LENGTH;
  let next = text.charCodeAt(0);
  for (let i = 0; i <= last; i++) {
    const c0 = next;
    next = text.charCodeAt(i + 1);
    if (filter[filterSlot(c0, next)] === 0) continue;
    const candidates = index.get(prefixKey(text, i));
    if (!candidates) continue;
    for (const value of candidates) if (text.startsWith(value, i)) found.push([i, i + value.length]);
  }
  return found;
}

/**
 * Replace every known secret value in `text` with [REDACTED]. Overlapping occurrences (of one value or of several)
 * become a single [REDACTED], so no fragment of either survives.
 */
export function redact(text: string): string {
  if (knownSecretValues.size === 0 || text.length < MIN_SECRET_LENGTH) return text;
  const long = text.length >= CLEAN_MIN_LENGTH;
  if (long && cleanTexts.has(text)) return text;
  const found = occurrences(text);
  if (found.length === 0) {
    if (long) rememberClean(text);
    return text;
  }
  found.sort((x, y) => x[0] - y[0] || y[1] - x[1]);
  let out = "";
  let copied = 0; // text before this index is in `out`
  let [spanStart, spanEnd] = found[0] as [number, number];
  for (const [start, end] of found) {
    if (start < spanEnd) {
      spanEnd = Math.max(spanEnd, end);
      continue;
    }
    out += text.slice(copied, spanStart) + REDACTED;
    copied = spanEnd;
    spanStart = start;
    spanEnd = end;
  }
  return out + text.slice(copied, spanStart) + REDACTED + text.slice(spanEnd);
}

export class Secret {
  readonly #value: string;
  /** Where it came from (`env:NAME`, `file:/path`, `literal`): safe to print. */
  readonly source: string;

  constructor(value: string, source: string) {
    this.#value = value;
    this.source = source;
    registerSecretValue(value);
  }

  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return `Secret(${this.source})`;
  }
}

export type SecretRefKind = "env" | "file" | "literal";

export function secretRefKind(ref: string): SecretRefKind {
  if (ref.startsWith("env:")) return "env";
  if (ref.startsWith("file:")) return "file";
  return "literal";
}

/** A credential reference that cannot be resolved: no retry makes a missing secret appear. */
class SecretResolutionError extends NonRetryable {
  override name = "SecretResolutionError";
}

/**
 * Resolve a credential reference. `literalAllowed` is true only for fleet files marked `twin: true`;
 * the schema already refuses literals elsewhere, this is the second lock on the same door.
 */
export function resolveSecret(
  ref: string,
  opts: { literalAllowed: boolean; env?: NodeJS.ProcessEnv; what?: string },
): Secret {
  const what = opts.what ?? "credential";
  const env = opts.env ?? process.env;
  switch (secretRefKind(ref)) {
    case "env": {
      const name = ref.slice(4);
      const value = env[name];
      if (value === undefined || value === "")
        throw new SecretResolutionError(`${what}: environment variable ${name} is not set`);
      return new Secret(value, ref);
    }
    case "file": {
      const path = ref.slice(5);
      let value: string;
      try {
        value = readFileSync(path, "utf8");
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? "read error";
        throw new SecretResolutionError(`${what}: cannot read secret file ${path} (${code})`);
      }
      // One trailing newline is how editors save files; it is never part of a Luna password.
      value = value.replace(/\r?\n$/, "");
      if (value === "") throw new SecretResolutionError(`${what}: secret file ${path} is empty`);
      return new Secret(value, ref);
    }
    case "literal":
      if (!opts.literalAllowed)
        throw new SecretResolutionError(
          `${what}: literal secrets are refused outside a twin fleet file; use env:NAME or file:/path`,
        );
      return new Secret(ref, "literal");
  }
}
