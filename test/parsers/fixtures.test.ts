// Walks every parsers/fixtures/<slug>/ directory: each <case>.txt is a raw capture as an operator would paste it.
// <case>.json is the exact expected result (deep equality, also checked against the parser's exported schema);
// <case>.error.json ({ "reasonIncludes": "..." }) marks a capture the parser must refuse with that reason;
// <case>.device-error.json is the { code, name, message, warnings } the device reported through that parser.
// The error-block (lunash) and command-result (lunacm) directories hold device errors: their .json is the { code, name, message } the device reported.
// Every capture goes through the registry too, so abbreviations, framing and dispatch are exercised on real text.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DeviceErrorReported, ParseError, type Shell } from "../../parsers/common.ts";
import {
  detectCommand,
  findParser,
  interpret,
  PARSERS,
  parseCommandOutput,
  resolveCommand,
  VOCABULARY,
} from "../../parsers/index.ts";
import * as lunacmCommandResult from "../../parsers/lunacm/command-result.ts";
import * as lunashErrorBlock from "../../parsers/lunash/error-block.ts";

const ROOT = join(import.meta.dirname, "../../parsers/fixtures");

const ERROR_DIRS: Record<string, { shell: Shell; parse(raw: string): unknown }> = {
  "error-block": { shell: "lunash", parse: lunashErrorBlock.parse },
  "command-result": { shell: "lunacm", parse: lunacmCommandResult.parse },
};

const dirs = readdirSync(ROOT, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort();

interface Case {
  name: string;
  raw: string;
  expected?: unknown;
  deviceError?: unknown;
  reasonIncludes?: string;
}

function cases(dir: string): Case[] {
  const files = readdirSync(join(ROOT, dir));
  const txts = files.filter((f) => f.endsWith(".txt")).sort();
  for (const f of files) {
    const base = f.replace(/\.device-error\.json$|\.error\.json$|\.json$|\.txt$/, "");
    if (!txts.includes(`${base}.txt`)) throw new Error(`${dir}/${f} has no ${base}.txt`);
  }
  return txts.map((txt) => {
    const name = txt.slice(0, -4);
    const raw = readFileSync(join(ROOT, dir, txt), "utf8");
    const hasJson = files.includes(`${name}.json`);
    const hasError = files.includes(`${name}.error.json`);
    const hasDevice = files.includes(`${name}.device-error.json`);
    if ([hasJson, hasError, hasDevice].filter(Boolean).length !== 1)
      throw new Error(`${dir}/${name}: needs exactly one of .json, .error.json or .device-error.json`);
    const read = (suffix: string) => JSON.parse(readFileSync(join(ROOT, dir, `${name}${suffix}`), "utf8"));
    if (hasJson) return { name, raw, expected: read(".json") };
    if (hasDevice) return { name, raw, deviceError: read(".device-error.json") };
    const spec = JSON.parse(readFileSync(join(ROOT, dir, `${name}.error.json`), "utf8")) as {
      reasonIncludes?: unknown;
    };
    if (typeof spec.reasonIncludes !== "string" || spec.reasonIncludes === "") {
      throw new Error(`${dir}/${name}.error.json needs a non-empty reasonIncludes`);
    }
    return { name, raw, reasonIncludes: spec.reasonIncludes };
  });
}

/** The command the capture's echo line names, resolved; falls back to the parser's own command. */
function commandOf(raw: string, shell: Shell, fallback: string): string {
  const echoed = detectCommand(raw);
  if (!echoed || echoed.shell !== shell) return fallback;
  const r = resolveCommand(shell, echoed.command);
  return r.ok ? echoed.command : fallback;
}

it("every fixture directory belongs to a parser and every parser has fixtures", () => {
  const known = new Set([...PARSERS.map((p) => p.slug), ...Object.keys(ERROR_DIRS)]);
  expect(dirs.filter((d) => !known.has(d))).toEqual([]);
  expect([...known].filter((k) => !dirs.includes(k))).toEqual([]);
});

for (const dir of dirs) {
  const errorDir = ERROR_DIRS[dir];
  describe(`fixtures/${dir}`, () => {
    const all = cases(dir);
    it("has cases", () => expect(all.length).toBeGreaterThan(0));
    for (const c of all) {
      if (errorDir) {
        it(`${c.name}: device error`, () => {
          if (c.expected === undefined) {
            expect(() => errorDir.parse(c.raw)).toThrow(ParseError);
            try {
              errorDir.parse(c.raw);
            } catch (err) {
              expect((err as ParseError).reason).toContain(c.reasonIncludes);
            }
            return;
          }
          expect(errorDir.parse(c.raw)).toEqual(c.expected);
          const echoed = detectCommand(c.raw);
          expect(echoed, "device-error fixtures must carry their echoed command").not.toBeNull();
          const r = parseCommandOutput(errorDir.shell, echoed?.command ?? "", c.raw);
          expect(r).toMatchObject({ ok: false, deviceError: c.expected });
        });
        continue;
      }
      const parser = PARSERS.find((p) => p.slug === dir);
      if (!parser) continue;
      const command = commandOf(c.raw, parser.shell, parser.command);
      if (c.deviceError !== undefined) {
        it(`${c.name}: the device's error, warnings kept`, () => {
          expect(interpret(parser, c.raw)).toEqual({ ok: false, deviceError: c.deviceError });
          expect(parseCommandOutput(parser.shell, command, c.raw)).toMatchObject({
            ok: false,
            deviceError: c.deviceError,
          });
        });
      } else if (c.expected !== undefined) {
        it(`${c.name}: parses to the expected value`, () => {
          const value = parser.parse(c.raw);
          expect(value).toEqual(c.expected);
          expect(parser.schema.parse(value)).toEqual(c.expected);
          expect(parseCommandOutput(parser.shell, command, c.raw)).toEqual({
            ok: true,
            command: parser.command,
            value: c.expected,
            footerSeen: /^\s*Command Result\s*:/m.test(c.raw),
          });
        });
      } else {
        it(`${c.name}: is refused (${c.reasonIncludes})`, () => {
          let thrown: unknown;
          try {
            parser.parse(c.raw);
          } catch (err) {
            thrown = err;
          }
          expect(thrown).toBeInstanceOf(ParseError);
          expect(thrown).not.toBeInstanceOf(DeviceErrorReported);
          expect((thrown as ParseError).reason).toContain(c.reasonIncludes);
          expect((thrown as ParseError).raw).toBe(c.raw);
          const r = parseCommandOutput(parser.shell, parser.command, c.raw);
          expect(r.ok).toBe(false);
          expect(r).toHaveProperty("parseError.reason", expect.stringContaining(c.reasonIncludes ?? ""));
        });
      }
    }
  });
}

it("each registered parser is found by its canonical command", () => {
  for (const p of PARSERS) expect(findParser(p.shell, p.command)).toBe(p);
});

it("the vocabulary and the parsers name each other: one parser per command, one command per parser", () => {
  const named = VOCABULARY.filter((e) => e.parser !== undefined).map(
    (e) => `${e.shell} ${e.words} ${e.parser}`,
  );
  expect(named.sort()).toEqual(PARSERS.map((p) => `${p.shell} ${p.command} ${p.slug}`).sort());
});

it("parsers/FORMATS.md lists every parser with its grade (the one place the assumed formats are written down)", () => {
  const text = readFileSync(join(ROOT, "..", "FORMATS.md"), "utf8");
  const missing = PARSERS.filter((p) => !new RegExp(`\\|\\s*${p.slug}\\s*\\|`).test(text)).map((p) => p.slug);
  expect(missing).toEqual([]);
});
