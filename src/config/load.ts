// Load and validate a fleet file. Every problem is reported with its YAML path (devices[2].port) and, where the
// node exists in the file, its line and column; values are never echoed, because some of them are passwords.
import { readFileSync } from "node:fs";
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

export type ParseFleetResult = { ok: true; fleet: Fleet } | { ok: false; issues: ConfigIssue[] };

/** Parse and validate fleet YAML text. Pure apart from the cron parser; never throws on bad input. */
export function parseFleet(text: string): ParseFleetResult {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      issues: doc.errors.map((e) => {
        const pos = e.linePos?.[0];
        // The YAML library's message can quote the offending line; keep only its first sentence.
        const message = `YAML syntax: ${e.message.split("\n")[0]}`;
        return { path: "(document)", line: pos?.line, column: pos?.col, message };
      }),
    };
  }
  const data: unknown = doc.toJS();
  const result = safeParseFleet(data);
  if (result.success) return { ok: true, fleet: result.data };
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
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new FleetConfigError(file, [
      { path: "(file)", message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}` },
    ]);
  }
  const result = parseFleet(text);
  if (!result.ok) throw new FleetConfigError(file, result.issues);
  return result.fleet;
}
