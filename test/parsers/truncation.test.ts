// A cut-off or damaged capture must never read as a different answer. For every fixture that parses:
// - every prefix cut at a line boundary either fails with a ParseError, or parses with `footerSeen: false` (so the
//   caller knows rows may be missing), and single-record parsers still agree on the fields a decision rests on;
// - for the records the login guard reads, every prefix cut at any character does the same;
// - random damage (lines dropped, duplicated, characters replaced) only ever yields a ParseError, a device error or a
//   value that fits the parser's schema — never an exception of another kind.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DeviceErrorReported, ParseError } from "../../parsers/common.ts";
import { type CommandParser, PARSERS, parseCommandOutput } from "../../parsers/index.ts";

const ROOT = join(import.meta.dirname, "../../parsers/fixtures");

// Fields the guard and the runbooks decide on, per single-record parser. List parsers are covered by footerSeen.
const CRITICAL: Record<string, string[]> = {
  "hsm-show": ["serial", "zeroized", "adminLoggedIn", "adminLoginAttemptsLeft", "partitions", "fipsApproved"],
  "partition-show": [
    "serial",
    "name",
    "psoLoginAttemptsLeft",
    "coLoginAttemptsLeft",
    "coLockedOut",
    "ownerLoginAttemptsLeft",
    "ownerLockedOut",
  ],
  "hsm-login": ["loggedIn"],
  "client-fingerprint": ["fingerprint"],
  "client-show": ["clientId"],
};
const CHARACTER_CUTS = new Set(["hsm-show", "partition-show", "hsm-login", "client-fingerprint"]);

function goodCases(parser: CommandParser): { name: string; raw: string; value: Record<string, unknown> }[] {
  const dir = join(ROOT, parser.slug);
  return readdirSync(dir)
    .filter((f) => f.endsWith(".json") && !/\.(device-)?error\.json$/.test(f))
    .map((f) => ({
      name: f.slice(0, -5),
      raw: readFileSync(join(dir, `${f.slice(0, -5)}.txt`), "utf8"),
      value: JSON.parse(readFileSync(join(dir, f), "utf8")) as Record<string, unknown>,
    }));
}

function attempt(parser: CommandParser, raw: string): { value: Record<string, unknown> } | { refused: true } {
  try {
    return { value: parser.parse(raw) as Record<string, unknown> };
  } catch (err) {
    if (err instanceof ParseError || err instanceof DeviceErrorReported) return { refused: true };
    throw err;
  }
}

function pick(value: Record<string, unknown>, fields: string[]): Record<string, unknown> {
  return Object.fromEntries(fields.map((f) => [f, value[f]]));
}

for (const parser of PARSERS) {
  describe(`${parser.slug}: truncated and damaged captures`, () => {
    const critical = CRITICAL[parser.slug];
    for (const c of goodCases(parser)) {
      it(`${c.name}: every line-boundary cut is refused or flagged`, () => {
        const lines = c.raw.split("\n");
        for (let k = 1; k < lines.length; k++) {
          const prefix = `${lines.slice(0, k).join("\n")}\n`;
          const r = attempt(parser, prefix);
          if ("refused" in r) continue;
          const cut = parseCommandOutput(parser.shell, parser.command, prefix);
          expect(cut.ok).toBe(true);
          // Only a prefix that still ends with the footer may claim to be whole, and then it must be the whole answer.
          if (cut.ok && cut.footerSeen) expect(cut.value, `prefix of ${k} lines`).toEqual(c.value);
          if (critical)
            expect(pick(r.value, critical), `prefix of ${k} lines`).toEqual(pick(c.value, critical));
        }
      });
      if (CHARACTER_CUTS.has(parser.slug)) {
        it(`${c.name}: every character cut is refused or keeps the critical fields`, () => {
          for (let n = 1; n < c.raw.length; n++) {
            const r = attempt(parser, c.raw.slice(0, n));
            if ("refused" in r) continue;
            expect(pick(r.value, critical ?? []), `cut at ${n}`).toEqual(pick(c.value, critical ?? []));
          }
        });
      }
    }

    it("random damage yields a ParseError, a device error or a schema-valid value", () => {
      const sources = goodCases(parser).map((c) => c.raw);
      if (sources.length === 0) return;
      const damage = fc.record({
        source: fc.integer({ min: 0, max: sources.length - 1 }),
        edits: fc.array(
          fc.record({
            kind: fc.constantFrom("drop", "dup", "char", "swap"),
            at: fc.nat(),
            ch: fc.constantFrom("", " ", ":", "0", "9", "=", "-", ">", "\r", "\t", "x", '"', ","),
          }),
          { minLength: 1, maxLength: 4 },
        ),
      });
      fc.assert(
        fc.property(damage, ({ source, edits }) => {
          const lines = (sources[source] ?? "").split("\n");
          for (const e of edits) {
            const i = e.at % lines.length;
            const line = lines[i] ?? "";
            if (e.kind === "drop") lines.splice(i, 1);
            else if (e.kind === "dup") lines.splice(i, 0, line);
            else if (e.kind === "swap" && i + 1 < lines.length)
              [lines[i], lines[i + 1]] = [lines[i + 1] ?? "", line];
            else if (line.length > 0) {
              const j = e.at % line.length;
              lines[i] = line.slice(0, j) + e.ch + line.slice(j + 1);
            }
            if (lines.length === 0) lines.push("");
          }
          const r = attempt(parser, lines.join("\n"));
          if ("value" in r) expect(parser.schema.safeParse(r.value).success).toBe(true);
        }),
        { numRuns: 150, seed: 0x1a2b },
      );
    });
  });
}
