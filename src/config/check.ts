// `lunafleet config check`: prove a fleet file can work, not only that it parses. Beyond the schema (load.ts):
// every `env:` reference names a variable that is set, every `file:` reference a readable, non-empty file (values
// are never printed, nor kept), and a production file (not `twin: true`) holds no `<…>` placeholder left from a
// template. `--offline` (a file checked away from the daemon's host) skips the secrets, never the placeholders.
// Each issue carries its YAML path and, where the node exists, its line and column.
import { readFileSync } from "node:fs";
import { isNode } from "yaml";
import { type ConfigIssue, FleetConfigError, formatPath, parseFleet, readFleetText } from "./load.ts";
import type { Fleet } from "./schema.ts";

export interface FleetCheckOptions {
  /** Skip the secrets (env: set, file: readable): the file is checked away from where the daemon runs. */
  offline?: boolean;
  env?: NodeJS.ProcessEnv;
}

export interface FleetCheck {
  /** The validated fleet, when the file passed the schema. */
  fleet?: Fleet;
  issues: ConfigIssue[];
  /** Secret references checked (0 with offline). */
  secretsChecked: number;
}

const PLACEHOLDER = /<[^<>\s]{1,64}>/;

export function checkFleetFile(file: string, opts: FleetCheckOptions = {}): FleetCheck {
  let text: string;
  try {
    text = readFleetText(file);
  } catch (err) {
    if (err instanceof FleetConfigError) return { issues: err.issues, secretsChecked: 0 };
    throw err;
  }
  const parsed = parseFleet(text);
  if (!parsed.ok) return { issues: parsed.issues, secretsChecked: 0 };
  const fleet = parsed.fleet;
  // The document the schema was checked on (parsed once: YAML parsing is most of a check's time).
  const { doc, lineCounter, data } = parsed.source;
  const at = (path: (string | number)[]): Pick<ConfigIssue, "line" | "column"> => {
    const node = doc.getIn(path, true);
    if (isNode(node) && node.range) {
      const pos = lineCounter.linePos(node.range[0]);
      return { line: pos.line, column: pos.col };
    }
    return {};
  };
  const env = opts.env ?? process.env;
  const issues: ConfigIssue[] = [];
  let secretsChecked = 0;
  walk(data, [], (path, value) => {
    // Located only when there is an issue to report: finding a node walks the document from its root.
    const where = () => ({ path: formatPath(path), ...at(path) });
    if (!fleet.twin && PLACEHOLDER.test(value))
      issues.push({ ...where(), message: "a <…> placeholder is still in the file: put the real value in" });
    if (opts.offline) return;
    if (/^env:[A-Za-z_][A-Za-z0-9_]*$/.test(value)) {
      secretsChecked++;
      const name = value.slice(4);
      if (env[name] === undefined || env[name] === "")
        issues.push({ ...where(), message: `environment variable ${name} is not set (or empty)` });
    } else if (value.startsWith("file:/")) {
      secretsChecked++;
      const path = value.slice(5);
      try {
        // Read to prove it can be; the content is dropped here and never printed.
        if (readFileSync(path).length === 0)
          issues.push({ ...where(), message: `secret file ${path} is empty` });
      } catch (err) {
        issues.push({
          ...where(),
          message: `secret file ${path} cannot be read (${(err as NodeJS.ErrnoException).code ?? "read error"})`,
        });
      }
    }
  });
  return { fleet, issues, secretsChecked };
}

function walk(
  value: unknown,
  path: (string | number)[],
  visit: (path: (string | number)[], s: string) => void,
): void {
  if (typeof value === "string") visit(path, value);
  else if (Array.isArray(value)) for (const [i, v] of value.entries()) walk(v, [...path, i], visit);
  else if (value && typeof value === "object")
    for (const [k, v] of Object.entries(value)) walk(v, [...path, k], visit);
}
