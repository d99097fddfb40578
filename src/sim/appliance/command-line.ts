// How lunash reads a command line: words are case-insensitive and may be shortened to any unambiguous prefix at
// every level (`par list`, `hsm showP`, `sysc regen`), options likewise (`-p` for `-password` when the command has no
// other option starting with p). A few short forms are real aliases rather than prefixes (`hsm sh` is `hsm show`
// although `showPolicies` also starts with "sh").

export interface OptionSpec {
  /** Canonical spelling without the dash, e.g. "partition". */
  name: string;
  /** A flag takes no value (`-force`). */
  flag?: boolean;
  /** The value is a secret: redacted in the command log and syslog. */
  secret?: boolean;
}

export interface CommandSpec<H> {
  /** Canonical words, e.g. ["client", "assignPartition"]. */
  words: string[];
  /** Extra exact short forms for the last word (e.g. "sh"). */
  aliases?: string[];
  options: OptionSpec[];
  handler: H;
}

export interface Token {
  text: string;
  start: number;
  end: number;
}

/** Split on whitespace; double or single quotes group words (client names may contain spaces). */
export function tokenize(line: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < line.length) {
    while (i < line.length && /\s/.test(line[i]!)) i++;
    if (i >= line.length) break;
    const start = i;
    let text = "";
    while (i < line.length && !/\s/.test(line[i]!)) {
      const ch = line[i]!;
      if (ch === '"' || ch === "'") {
        const close = line.indexOf(ch, i + 1);
        if (close === -1) {
          text += line.slice(i + 1);
          i = line.length;
        } else {
          text += line.slice(i + 1, close);
          i = close + 1;
        }
      } else {
        text += ch;
        i++;
      }
    }
    tokens.push({ text, start, end: i });
  }
  return tokens;
}

interface Node<H> {
  name: string;
  aliases: string[];
  children: Node<H>[];
  command?: CommandSpec<H>;
}

export type Resolution<H> =
  | {
      kind: "ok";
      spec: CommandSpec<H>;
      canonical: string;
      options: Map<string, string | true>;
      /** Index of the first token after the command words. */
      argStart: number;
    }
  | { kind: "empty" }
  | { kind: "unknown"; typed: string }
  | { kind: "ambiguous"; typed: string; candidates: string[] }
  | { kind: "incomplete"; typed: string; candidates: string[] }
  | { kind: "bad-option"; spec: CommandSpec<H>; canonical: string; message: string; argStart: number };

export class CommandTable<H> {
  readonly #root: Node<H> = { name: "", aliases: [], children: [] };

  constructor(specs: CommandSpec<H>[]) {
    for (const spec of specs) this.#add(spec);
  }

  #add(spec: CommandSpec<H>): void {
    let node = this.#root;
    spec.words.forEach((word, i) => {
      let child = node.children.find((c) => c.name.toLowerCase() === word.toLowerCase());
      if (!child) {
        child = { name: word, aliases: [], children: [] };
        node.children.push(child);
      }
      if (i === spec.words.length - 1) {
        child.command = spec;
        child.aliases.push(...(spec.aliases ?? []));
      }
      node = child;
    });
  }

  /** Top-level command group names (for `help`). */
  groups(): string[] {
    return this.#root.children.map((c) => c.name);
  }

  /** All canonical command lines (for `help`). */
  commands(): string[] {
    const out: string[] = [];
    const walk = (n: Node<H>, prefix: string[]) => {
      for (const c of n.children) {
        const words = [...prefix, c.name];
        if (c.command) out.push(words.join(" "));
        walk(c, words);
      }
    };
    walk(this.#root, []);
    return out;
  }

  resolve(tokens: Token[]): Resolution<H> {
    if (tokens.length === 0) return { kind: "empty" };
    let node = this.#root;
    const canonical: string[] = [];
    let i = 0;
    for (; i < tokens.length; i++) {
      const word = tokens[i]!.text;
      if (node.command && (word.startsWith("-") || node.children.length === 0)) break;
      const typed = tokens
        .slice(0, i + 1)
        .map((t) => t.text)
        .join(" ");
      const match = matchWord(node.children, word);
      if (match.kind === "none") return { kind: "unknown", typed };
      if (match.kind === "many")
        return {
          kind: "ambiguous",
          typed,
          candidates: match.nodes.map((n) => [...canonical, n.name].join(" ")),
        };
      node = match.node;
      canonical.push(node.name);
      if (node.command && node.children.length === 0) {
        i++;
        break;
      }
    }
    if (!node.command) {
      return {
        kind: "incomplete",
        typed: tokens.map((t) => t.text).join(" "),
        candidates: node.children.map((c) => [...canonical, c.name].join(" ")),
      };
    }
    const spec = node.command;
    const name = canonical.join(" ");
    const parsed = parseOptions(
      spec.options,
      tokens.slice(i),
      spec.options.some((o) => o.secret),
    );
    if ("error" in parsed)
      return { kind: "bad-option", spec, canonical: name, message: parsed.error, argStart: i };
    return { kind: "ok", spec, canonical: name, options: parsed.options, argStart: i };
  }
}

type WordMatch<H> = { kind: "one"; node: Node<H> } | { kind: "many"; nodes: Node<H>[] } | { kind: "none" };

function matchWord<H>(nodes: Node<H>[], word: string): WordMatch<H> {
  const w = word.toLowerCase();
  if (w === "" || w.startsWith("-")) return { kind: "none" };
  const exact = nodes.find((n) => n.name.toLowerCase() === w || n.aliases.some((a) => a.toLowerCase() === w));
  if (exact) return { kind: "one", node: exact };
  const prefixed = nodes.filter((n) => n.name.toLowerCase().startsWith(w));
  if (prefixed.length === 1) return { kind: "one", node: prefixed[0]! };
  if (prefixed.length > 1) return { kind: "many", nodes: prefixed };
  return { kind: "none" };
}

function parseOptions(
  specs: OptionSpec[],
  tokens: Token[],
  takesSecret: boolean,
): { options: Map<string, string | true> } | { error: string } {
  const options = new Map<string, string | true>();
  for (let i = 0; i < tokens.length; i++) {
    const tok = tokens[i]!.text;
    // A stray word on a command that takes a password may be the password: never repeat it.
    if (!tok.startsWith("-") || tok.length < 2)
      return { error: takesSecret ? "Unexpected argument." : `Unexpected argument: ${tok}` };
    const spec = matchOption(specs, tok.slice(1));
    if (spec === "ambiguous") return { error: `Ambiguous option: ${tok}` };
    if (!spec) return { error: `Unknown option: ${tok}` };
    if (spec.flag) {
      options.set(spec.name, true);
      continue;
    }
    const value = tokens[i + 1];
    if (!value) return { error: `Option -${spec.name} requires a value` };
    options.set(spec.name, value.text);
    i++;
  }
  return { options };
}

function matchOption(specs: OptionSpec[], typed: string): OptionSpec | "ambiguous" | undefined {
  const t = typed.toLowerCase();
  const exact = specs.find((s) => s.name.toLowerCase() === t);
  if (exact) return exact;
  const prefixed = specs.filter((s) => s.name.toLowerCase().startsWith(t));
  if (prefixed.length > 1) return "ambiguous";
  return prefixed[0];
}

const MASK = "********";

/**
 * The command line as the appliance may record it, with secrets replaced by asterisks. When the command is known,
 * its option specs decide: the values of secret options are masked, and for a command that takes a secret every
 * token it does not understand is masked too (`hsm login mypassword`). When the command is not known (a typo),
 * every value after an option starting with "p" is masked, so a mistyped command never leaks a password either.
 */
export function redactCommandLine<H>(line: string, table: CommandTable<H>): string {
  const tokens = tokenize(line);
  const res = table.resolve(tokens);
  const masked = new Set<number>();
  if (res.kind === "ok" || res.kind === "bad-option") {
    const specs = res.spec.options;
    const takesSecret = specs.some((o) => o.secret);
    for (let i = res.argStart; i < tokens.length; i++) {
      const tok = tokens[i]!.text;
      const spec = tok.startsWith("-") ? matchOption(specs, tok.slice(1)) : undefined;
      if (spec === undefined || spec === "ambiguous") {
        if (takesSecret) masked.add(i);
        continue;
      }
      if (spec.flag) continue;
      if (spec.secret) masked.add(i + 1);
      i++;
    }
  } else {
    tokens.forEach((tok, i) => {
      if (/^-p/i.test(tok.text)) masked.add(i + 1);
    });
  }
  let out = line;
  for (const i of [...masked].sort((a, b) => b - a)) {
    const tok = tokens[i];
    if (tok) out = out.slice(0, tok.start) + MASK + out.slice(tok.end);
  }
  return out;
}

/**
 * What the terminal shows of a command line being typed: the same length, with the characters of likely secrets
 * replaced by `*` (the word after any option starting with `-p`, and any plain word after `hsm login`). Decided
 * from the characters before each position only, so it can be applied while the line is typed.
 */
export function maskForEcho(line: string): string {
  let out = "";
  const words: string[] = [];
  let current = "";
  let quote: string | undefined;
  let secret = false;
  const secretWord = (): boolean => {
    const prev = words[words.length - 1];
    // `-p` and any prefix of `-password` hide a password; `-partition` and the like do not.
    if (prev !== undefined && /^-p(a(s(s(w(o(r(d)?)?)?)?)?)?)?$/i.test(prev)) return true;
    const [w0, w1] = words;
    return (
      words.length >= 2 &&
      w0 !== undefined &&
      w1 !== undefined &&
      "hsm".startsWith(w0.toLowerCase()) &&
      w1.length >= 3 &&
      "login".startsWith(w1.toLowerCase()) &&
      !prev?.startsWith("-")
    );
  };
  for (const ch of line) {
    const blank = quote === undefined && /\s/.test(ch);
    if (blank) {
      if (current !== "") words.push(current);
      current = "";
      out += ch;
      continue;
    }
    if (current === "") secret = secretWord() && !(ch === "-" && quote === undefined);
    if (ch === '"' || ch === "'") {
      if (quote === undefined) quote = ch;
      else if (quote === ch) quote = undefined;
    }
    current += ch;
    out += secret ? "*" : ch;
  }
  return out;
}
