// Secrets: references in the fleet file (`env:NAME`, `file:/path`, or a literal in a twin file) resolve to
// Secret objects whose value leaves only through reveal(). Every resolved value is registered with the
// redactor so that any text leaving the process (logs, transcripts, evidence, errors) can be scrubbed.
import { readFileSync } from "node:fs";
import { inspect } from "node:util";

const REDACTED = "[REDACTED]";

/** Every secret value this process has resolved; longest first so overlapping values redact fully. */
const knownSecretValues = new Set<string>();

export function registerSecretValue(value: string): void {
  // Very short strings would shred ordinary text; the appliance refuses passwords under 8 characters anyway.
  if (value.length >= 4) knownSecretValues.add(value);
}

/** Replace every known secret value in `text` with [REDACTED]. */
export function redact(text: string): string {
  if (knownSecretValues.size === 0 || text.length === 0) return text;
  let out = text;
  for (const value of [...knownSecretValues].sort((a, b) => b.length - a.length)) {
    if (out.includes(value)) out = out.split(value).join(REDACTED);
  }
  return out;
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

export class SecretResolutionError extends Error {
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
