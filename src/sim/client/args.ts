// Splitting command lines the way a client host's runbook sends them. The twin is not a general shell: quoting is
// understood (passwords may hold spaces, `-password ""` is an empty value), but pipes, redirections, command lists and
// substitutions are refused rather than half-interpreted.

export type Tokenized = { ok: true; tokens: string[] } | { ok: false; reason: string };

/** Shell-style words with '...' and "..." quoting. `shellMeta` refuses | ; & < > ` $( outside quotes. */
export function tokenize(line: string, opts: { shellMeta: boolean }): Tokenized {
  const tokens: string[] = [];
  let cur = "";
  let inToken = false;
  let quote: "'" | '"' | null = null;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quote) {
      if (ch === quote) quote = null;
      else if (ch === "\\" && quote === '"' && i + 1 < line.length && '"\\$`'.includes(line[i + 1]!)) {
        cur += line[i + 1];
        i++;
      } else cur += ch;
      continue;
    }
    if (ch === "'" || ch === '"') {
      quote = ch;
      inToken = true;
      continue;
    }
    if (ch === " " || ch === "\t") {
      if (inToken) tokens.push(cur);
      cur = "";
      inToken = false;
      continue;
    }
    if (opts.shellMeta && ("|;&<>`".includes(ch) || (ch === "$" && line[i + 1] === "("))) {
      return { ok: false, reason: `'${ch}' is not supported` };
    }
    if (ch === "\\" && i + 1 < line.length) {
      cur += line[i + 1];
      i++;
      inToken = true;
      continue;
    }
    cur += ch;
    inToken = true;
  }
  if (quote) return { ok: false, reason: "unterminated quote" };
  if (inToken) tokens.push(cur);
  return { ok: true, tokens };
}

/** Case-insensitive match of `word` against a name, its aliases, or an unambiguous prefix among `names`. */
export function matchName<T extends { name: string; aliases?: readonly string[] }>(
  word: string,
  names: readonly T[],
): T | undefined {
  const w = word.toLowerCase();
  const exact = names.find(
    (n) => n.name.toLowerCase() === w || n.aliases?.some((a) => a.toLowerCase() === w),
  );
  if (exact) return exact;
  const prefixed = names.filter((n) => n.name.toLowerCase().startsWith(w));
  return prefixed.length === 1 ? prefixed[0] : undefined;
}

export interface OptionSpec {
  /** Option name without the dash, e.g. "slot". */
  name: string;
  aliases?: readonly string[];
  /** "value" takes the next word; "flag" takes none. */
  kind: "value" | "flag";
}

export type ParsedOptions = { ok: true; values: Map<string, string | true> } | { ok: false; error: string };

/** `-name value` / `-flag` options, names case-insensitive, unambiguous prefixes accepted (as lunacm does). */
export function parseOptions(words: readonly string[], spec: readonly OptionSpec[]): ParsedOptions {
  const values = new Map<string, string | true>();
  for (let i = 0; i < words.length; i++) {
    const word = words[i]!;
    if (!word.startsWith("-") || word.length < 2)
      return { ok: false, error: `Unexpected argument '${word}'.` };
    const opt = matchName(word.slice(1), spec);
    if (!opt) return { ok: false, error: `Unknown argument '${word}'.` };
    if (opt.kind === "flag") {
      values.set(opt.name, true);
      continue;
    }
    const value = words[i + 1];
    if (value === undefined) return { ok: false, error: `Argument '-${opt.name}' needs a value.` };
    values.set(opt.name, value);
    i++;
  }
  return { ok: true, values };
}

/** Integer option value within [min, max], or an error line. */
export function intOption(
  raw: string | true | undefined,
  name: string,
  min: number,
  max: number,
): { ok: true; value: number } | { ok: false; error: string } {
  if (raw === undefined || raw === true) return { ok: false, error: `Argument '-${name}' is required.` };
  if (!/^-?\d+$/.test(raw)) return { ok: false, error: `Argument '-${name}' must be a number.` };
  const value = Number(raw);
  if (value < min || value > max)
    return { ok: false, error: `Argument '-${name}' value ${value} is out of range (${min} to ${max}).` };
  return { ok: true, value };
}

const PASSWORD_OPTIONS = /^-(p|pa|pas|pass|passw|passwo|passwor|password)$/i;

/**
 * A command line fit for a log: the value after any `-password`/`-p` option becomes [REDACTED]. Works on the raw
 * text so that quoting cannot smuggle a password past it.
 */
export function redactPasswordOptions(line: string): string {
  const tok = tokenize(line, { shellMeta: false });
  if (!tok.ok) {
    // Cannot split it reliably: keep only the words before the first password option.
    const cut = line.search(/\s-p(a(s(s(w(o(r(d)?)?)?)?)?)?)?(\s|=|$)/i);
    return cut >= 0 ? `${line.slice(0, cut)} -password [REDACTED]` : line;
  }
  const out: string[] = [];
  for (let i = 0; i < tok.tokens.length; i++) {
    const word = tok.tokens[i]!;
    out.push(/\s/.test(word) || word === "" ? JSON.stringify(word) : word);
    if (PASSWORD_OPTIONS.test(word) && i + 1 < tok.tokens.length) {
      out.push("[REDACTED]");
      i++;
    }
  }
  return out.join(" ");
}
