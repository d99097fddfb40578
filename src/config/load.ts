// Load and validate a fleet file. Every problem is reported with its YAML path (devices[2].port) and, where the
// node exists in the file, its line and column; values are never echoed, because some of them are passwords.
import { readFileSync, statSync } from "node:fs";
import { isNode, LineCounter, parseDocument } from "yaml";
import type { z } from "zod";
import { type Fleet, safeParseFleet } from "./schema.ts";

export interface ConfigIssue {
  /** YAML path in dotted/bracket form, e.g. `devices[2].credentials.hsmSo`; `(root)` for the document. */
  path: string;
  line?: number;
  column?: number;
  message: string;
}

export class FleetConfigError extends Error {
  override name = "FleetConfigError";
  constructor(
    readonly file: string,
    readonly issues: ConfigIssue[],
  ) {
    super(`${file}: ${issues.length} error(s)\n${issues.map((i) => `  ${formatIssue(file, i)}`).join("\n")}`);
  }
}

export function formatIssue(file: string, issue: ConfigIssue): string {
  const where = issue.line ? `${file}:${issue.line}:${issue.column ?? 1}` : file;
  return `${where} ${issue.path}: ${issue.message}`;
}

export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  if (path.length === 0) return "(root)";
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else out += out === "" ? String(seg) : `.${String(seg)}`;
  }
  return out;
}

export type ParseFleetResult =
  | {
      ok: true;
      fleet: Fleet;
      /** The parsed document, its line counter and its plain data: for checks that point at a node's line. */
      source: { doc: ReturnType<typeof parseDocument>; lineCounter: LineCounter; data: unknown };
    }
  | { ok: false; issues: ConfigIssue[] };

/** A fleet file larger than this is refused before it is parsed (a 1,000-device fleet is well under 1 MiB). */
const MAX_FLEET_FILE_BYTES = 4 * 1024 * 1024;
/** Aliases (`*name`) a fleet file may use: a handful is convenience, thousands are an alias bomb. */
export const MAX_YAML_ALIASES = 100;

/**
 * What each YAML error code means, in our words. The library's own messages quote the offending token — in a fleet
 * file, possibly a password (one stray `}` makes every later token "unexpected", secrets included) — so they are never
 * shown: line, column and the kind of error are enough to find it.
 */
const YAML_ERROR_KINDS: Record<string, string> = {
  ALIAS_PROPS: "an alias cannot carry a tag or an anchor",
  BAD_ALIAS: "an alias that names no anchor",
  BAD_DIRECTIVE: "a bad directive",
  BAD_DQ_ESCAPE: "a bad escape in a double-quoted string",
  BAD_INDENT: "bad indentation",
  BAD_PROP_ORDER: "anchor and tag in the wrong order",
  BAD_SCALAR_START: "a plain value cannot start with this character",
  BLOCK_AS_IMPLICIT_KEY: "a block used as a key",
  BLOCK_IN_FLOW: "a block collection inside a flow collection ({ } or [ ])",
  DUPLICATE_KEY: "a key given twice in the same map",
  IMPOSSIBLE: "the parser could not read this",
  KEY_OVER_1024_CHARS: "a key longer than 1024 characters",
  MISSING_CHAR: "a missing character (an unclosed quote, bracket or brace?)",
  MULTILINE_IMPLICIT_KEY: "a key that spans lines (a missing ':' or quote?)",
  MULTIPLE_ANCHORS: "more than one anchor on a node",
  MULTIPLE_DOCS: "more than one YAML document (a stray '---'?)",
  MULTIPLE_TAGS: "more than one tag on a node",
  NON_STRING_KEY: "a key that is not a string",
  RESOURCE_EXHAUSTION: `too many aliases (limit ${MAX_YAML_ALIASES}): refused`,
  TAB_AS_INDENT: "a tab used for indentation",
  TAG_RESOLVE_FAILED: "a tag that does not resolve",
  UNEXPECTED_TOKEN: "an unexpected character or token (a stray '}', ']', ',' or ':'?)",
  BAD_COLLECTION_TYPE: "a collection of the wrong type",
};

/** Parse and validate fleet YAML text. Pure apart from the cron parser; never throws on bad input. */
export function parseFleet(text: string): ParseFleetResult {
  if (Buffer.byteLength(text) > MAX_FLEET_FILE_BYTES)
    return {
      ok: false,
      issues: [{ path: "(file)", message: `larger than ${MAX_FLEET_FILE_BYTES} bytes: refused` }],
    };
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    // The first error is the one to fix: the rest usually follow from it (and would only repeat the file's tokens).
    const first = doc.errors[0]!;
    const pos = lineCounter.linePos(first.pos[0]);
    const kind = YAML_ERROR_KINDS[first.code] ?? `a YAML error (${first.code})`;
    const more = doc.errors.length > 1 ? ` (${doc.errors.length - 1} more error(s) after it, not shown)` : "";
    return {
      ok: false,
      issues: [
        { path: "(document)", line: pos.line, column: pos.col, message: `YAML syntax error: ${kind}${more}` },
      ],
    };
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_YAML_ALIASES });
  } catch (err) {
    // An alias bomb ("Excessive alias count"): refused with the limit, never expanded.
    const message = /alias/i.test((err as Error).message)
      ? `too many aliases (limit ${MAX_YAML_ALIASES}): refused`
      : "the YAML document cannot be read as data";
    return { ok: false, issues: [{ path: "(document)", message }] };
  }
  const result = safeParseFleet(data);
  if (result.success) return { ok: true, fleet: result.data, source: { doc, lineCounter, data } };
  return { ok: false, issues: result.error.issues.map((issue) => toConfigIssue(issue, doc, lineCounter)) };
}

function toConfigIssue(
  issue: z.core.$ZodIssue,
  doc: ReturnType<typeof parseDocument>,
  lc: LineCounter,
): ConfigIssue {
  const path = issue.path as PropertyKey[];
  let message = issue.message;
  if (issue.code === "unrecognized_keys") message = `unknown key(s): ${issue.keys.join(", ")}`;
  if (issue.code === "invalid_type" && /received undefined/.test(message)) message = "required";
  // Find the deepest node that exists so a missing key still points at its parent's line.
  for (let n = path.length; n >= 0; n--) {
    const node = doc.getIn(path.slice(0, n) as (string | number)[], true);
    if (isNode(node) && node.range) {
      const pos = lc.linePos(node.range[0]);
      return { path: formatPath(path), line: pos.line, column: pos.col, message };
    }
  }
  return { path: formatPath(path), message };
}

export function loadFleet(file: string): Fleet {
  return parseFleetOrThrow(file, readFleetText(file));
}

/** The file's text, refused before it is read when it is not a regular file or is too large. */
export function readFleetText(file: string): string {
  let text: string;
  try {
    const st = statSync(file);
    if (!st.isFile()) throw new FleetConfigError(file, [{ path: "(file)", message: "not a regular file" }]);
    if (st.size > MAX_FLEET_FILE_BYTES)
      throw new FleetConfigError(file, [
        { path: "(file)", message: `${st.size} bytes, larger than ${MAX_FLEET_FILE_BYTES}: refused` },
      ]);
    text = readFileSync(file, "utf8");
  } catch (err) {
    if (err instanceof FleetConfigError) throw err;
    throw new FleetConfigError(file, [
      { path: "(file)", message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? "read error"}` },
    ]);
  }
  return text;
}

function parseFleetOrThrow(file: string, text: string): Fleet {
  const result = parseFleet(text);
  if (!result.ok) throw new FleetConfigError(file, result.issues);
  return result.fleet;
}
