// Issue 10's reply discipline, kept by a test instead of a one-off grep: a device's reply is interpreted by the
// command's one parser (which yields a typed error), so runbooks never re-read an error's text and never cast their
// way past a type. Over every runbooks/ source, parsed (so comments, strings and line breaks cannot hide or fake a
// hit), two rules:
//   1. no `as unknown as` (a double cast throws away the parser's / port's type);
//   2. no regex or string match over an error's message (`/x/.test(err.message)`, `err.message.match(...)`,
//      `message.includes(...)`, `String(err).startsWith(...)`): the typed error's fields say what happened.
// Each rule also runs over planted violations, so a checker that finds nothing cannot pass, and over look-alikes
// that are not violations (comments, strings, a message interpolated into a new error), so it does not cry wolf.
// The parser is oxc's, as vite exports it: vitest already runs on it, and TypeScript 7 has no JavaScript API.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { parseSync } from "vite";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "../..");

type Node = { type: string; start: number; end: number; [key: string]: unknown };
const isNode = (v: unknown): v is Node =>
  typeof v === "object" && v !== null && typeof (v as { type?: unknown }).type === "string";

function* walk(node: unknown): Generator<Node> {
  if (Array.isArray(node)) {
    for (const n of node) yield* walk(n);
    return;
  }
  if (!isNode(node)) return;
  yield node;
  for (const [key, value] of Object.entries(node)) if (key !== "parent") yield* walk(value);
}

const child = (n: Node, key: string): Node | undefined => (isNode(n[key]) ? (n[key] as Node) : undefined);
const propertyName = (member: Node): string | undefined => {
  const p = child(member, "property");
  if (!p) return undefined;
  if (p.type === "Identifier" && member.computed !== true) return p.name as string;
  if (p.type === "Literal" && typeof p.value === "string") return p.value;
  return undefined;
};

/** An expression that is an error's text: `x.message`, a bare `message`, `String(x)`, `x.toString()`. */
function isMessageText(n: Node | undefined): boolean {
  if (!n) return false;
  if (
    n.type === "ParenthesizedExpression" ||
    n.type === "TSNonNullExpression" ||
    n.type === "ChainExpression"
  )
    return isMessageText(child(n, "expression"));
  if (n.type === "Identifier") return n.name === "message";
  if (n.type === "MemberExpression") return propertyName(n) === "message";
  if (n.type === "CallExpression") {
    const callee = child(n, "callee");
    if (callee?.type === "Identifier" && callee.name === "String") return true;
    if (callee?.type === "MemberExpression" && propertyName(callee) === "toString") return true;
  }
  return false;
}

/** An expression holding a message anywhere inside (a template literal, a concatenation, `String(err.message)`). */
const holdsMessageText = (n: Node | undefined): boolean => [...walk(n)].some((x) => isMessageText(x));

// Methods that read text by pattern: on a message, each one is the error's text re-interpreted.
const TEXT_MATCHERS = new Set([
  "match",
  "matchAll",
  "search",
  "replace",
  "replaceAll",
  "split",
  "includes",
  "startsWith",
  "endsWith",
  "indexOf",
  "lastIndexOf",
]);

interface Violation {
  line: number;
  rule: "as-unknown-as" | "regex-over-message";
  text: string;
}

function violations(file: string, source: string): Violation[] {
  const parsed = parseSync(file, source, { lang: "ts", sourceType: "module" });
  if (parsed.errors.length > 0)
    throw new Error(`${file}: not parseable: ${parsed.errors.map((e) => e.message).join("; ")}`);
  const lineOf = (offset: number) => source.slice(0, offset).split("\n").length;
  const found: Violation[] = [];
  const add = (n: Node, rule: Violation["rule"]) =>
    found.push({ line: lineOf(n.start), rule, text: source.slice(n.start, n.end).replace(/\s+/g, " ") });
  for (const n of walk(parsed.program)) {
    if (n.type === "TSAsExpression") {
      let inner = child(n, "expression");
      while (inner?.type === "ParenthesizedExpression") inner = child(inner, "expression");
      if (inner?.type === "TSAsExpression" && child(inner, "typeAnnotation")?.type === "TSUnknownKeyword")
        add(n, "as-unknown-as");
    }
    if (n.type !== "CallExpression") continue;
    const callee = child(n, "callee");
    if (callee?.type !== "MemberExpression") continue;
    const method = propertyName(callee);
    const args = (n.arguments as Node[]) ?? [];
    // /re/.test(err.message), re.exec(`${err.message}`)
    if ((method === "test" || method === "exec") && args.some((a) => holdsMessageText(a)))
      add(n, "regex-over-message");
    // err.message.match(/re/), message.includes("..."), String(err).startsWith("...")
    else if (method && TEXT_MATCHERS.has(method) && isMessageText(child(callee, "object")))
      add(n, "regex-over-message");
  }
  return found;
}

const sources = (dir: string): string[] =>
  readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith(".ts") ? [p] : [];
  });

describe("runbooks read replies through their parsers' types", () => {
  it("runbooks/ holds no `as unknown as` and no regex over an error's message", () => {
    const files = sources(join(ROOT, "runbooks")).map((f) => relative(ROOT, f));
    // Not vacuous: the runbooks that handle device errors the most are among the files read.
    expect(files).toEqual(
      expect.arrayContaining([
        "runbooks/ha-sync.ts",
        "runbooks/deprovision.ts",
        "runbooks/lib/cloning-domains.ts",
      ]),
    );
    expect(files.some((f) => f.startsWith("runbooks/ntls-cert-sync/"))).toBe(true);
    const found = files.flatMap((f) =>
      violations(f, readFileSync(join(ROOT, f), "utf8")).map((v) => `${f}:${v.line}: ${v.rule}: ${v.text}`),
    );
    expect(found).toEqual([]);
  });

  // Planted: each snippet breaks one rule exactly once, however it is laid out.
  it.each([
    ["a double cast", "const r = reply as unknown as HsmShow;", "as-unknown-as"],
    ["a double cast over two lines", "const r = (\n  reply as\n  unknown\n) as HsmShow;", "as-unknown-as"],
    ["a regex over err.message", "if (/already exists/i.test(err.message)) retry();", "regex-over-message"],
    ["a regex over a message in a template", `const m = RE.exec(\`\${e.message}\`);`, "regex-over-message"],
    ["a regex over (err as Error).message", "/C0000/.test((err as Error).message);", "regex-over-message"],
    ["match on a message", "const code = err.message.match(/CKR_\\w+/)?.[0];", "regex-over-message"],
    ["match on an optional message", "const code = err?.message?.match(/CKR_\\w+/);", "regex-over-message"],
    [
      "includes on a destructured message",
      "const { message } = err; if (message.includes('busy')) x();",
      "regex-over-message",
    ],
    ["startsWith on String(err)", "if (String(err).startsWith('Error: timeout')) x();", "regex-over-message"],
    ["split on a message", "const first = err.message\n  .split(/\\n/)[0];", "regex-over-message"],
  ])("planted: %s is found", (_what, snippet, rule) => {
    const found = violations("planted.ts", snippet);
    expect(found).toHaveLength(1);
    expect(found[0]!.rule).toBe(rule);
  });

  // Look-alikes: nothing here re-reads an error's text or double-casts.
  it.each([
    ["the words in a comment", "// never write `as unknown as` nor /x/.test(err.message)\nconst a = 1;"],
    ["the words in a string", 'const s = "as unknown as"; const t = "/x/.test(err.message)";'],
    ["a message interpolated into a new error", `throw new Error(\`\${dev}: refused (\${err.message})\`);`],
    ["a regex over a reply line", "if (/^Serial/.test(line)) x();"],
    ["one cast through unknown, no second", "const v: unknown = reply; const n = v as number;"],
    ["a typed error's fields", "if (err instanceof DeviceError && err.code === 'C0000') x();"],
  ])("look-alike: %s is not a violation", (_what, snippet) => {
    expect(violations("look-alike.ts", snippet)).toEqual([]);
  });
});
