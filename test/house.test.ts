// House rules a maintainer relies on when reading the code (ARCHITECTURE.md "Rules"), checked over every product file:
// 1. no product file over 400 lines without a reason written at its top (a line starting `// Over 400 lines:` among its
//    first 20 lines) — a long file is a choice, never an accident;
// 2. Lua runs only through the named-script helper (src/redis/client.ts): no raw `eval`/`evalsha` elsewhere, so every
//    script has a name that says what it guarantees;
// 3. no file outside the repository is referenced (no `../shared`, no absolute workstation paths): the repository
//    explains itself.
// Each rule also runs on a planted violation, so a checker that finds nothing cannot pass.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { sourceFilesUnder } from "./helpers/source-files.ts";

const ROOT = join(import.meta.dirname, "..");
const PRODUCT_ROOTS = ["src", "parsers", "runbooks", "bench", "scripts"];
const DOC_FILES = ["README.md", "ARCHITECTURE.md", "parsers/README.md", "parsers/FORMATS.md"];
const MAX_LINES = 400;

const filesUnder = (dir: string): string[] => sourceFilesUnder(ROOT, dir);

const productFiles = PRODUCT_ROOTS.flatMap(filesUnder).map((file) => ({
  file,
  text: readFileSync(join(ROOT, file), "utf8"),
}));

/** Files longer than the limit whose top does not say why. */
function longWithoutReason(files: { file: string; text: string }[]): string[] {
  return files
    .filter(({ text }) => text.split("\n").length > MAX_LINES)
    .filter(({ text }) => !/^\/\/ Over 400 lines: \S/m.test(text.split("\n").slice(0, 20).join("\n")))
    .map(({ file, text }) => `${file} (${text.split("\n").length} lines)`);
}

/** Raw Lua evaluation outside the script helper. */
function rawEval(files: { file: string; text: string }[]): string[] {
  return files
    .filter(({ file }) => file !== "src/redis/client.ts")
    .flatMap(({ file, text }) =>
      text
        .split("\n")
        .map((line, i) => ({ line, i }))
        .filter(({ line }) => /\.(eval|evalsha)\s*\(|["']EVAL(SHA)?["']/i.test(line))
        .map(({ i }) => `${file}:${i + 1}`),
    );
}

/** References to files outside the repository. */
function outsideLinks(files: { file: string; text: string }[]): string[] {
  return files.flatMap(({ file, text }) =>
    text
      .split("\n")
      .map((line, i) => ({ line, i }))
      .filter(({ line }) => /\.\.\/shared\b|\/work\/|\/home\/[a-z]/.test(line))
      .map(({ i }) => `${file}:${i + 1}`),
  );
}

describe("house rules", () => {
  it(`no product file over ${MAX_LINES} lines without a reason at its top`, () => {
    expect(longWithoutReason(productFiles)).toEqual([]);
  });

  it("Lua runs only through the named-script helper", () => {
    expect(rawEval(productFiles)).toEqual([]);
  });

  it("nothing points outside the repository (code, README, architecture and format documents)", () => {
    const docs = DOC_FILES.map((file) => ({ file, text: readFileSync(join(ROOT, file), "utf8") }));
    expect(outsideLinks([...productFiles, ...docs])).toEqual([]);
  });

  it("each checker finds a planted violation", () => {
    const long = Array.from({ length: MAX_LINES + 1 }, (_, i) => `export const x${i} = ${i};`).join("\n");
    expect(longWithoutReason([{ file: "src/planted.ts", text: long }])).toEqual([
      "src/planted.ts (401 lines)",
    ]);
    expect(
      longWithoutReason([
        { file: "src/planted.ts", text: `// Over 400 lines: one table, read top to bottom.\n${long}` },
      ]),
    ).toEqual([]);
    expect(
      rawEval([{ file: "src/coord/planted.ts", text: "await redis.eval(`return 1`, 0);\nconst ok = 1;" }]),
    ).toEqual(["src/coord/planted.ts:1"]);
    expect(rawEval([{ file: "src/redis/client.ts", text: "redis.eval(src, 0)" }])).toEqual([]);
    expect(outsideLinks([{ file: "README.md", text: "see\n../shared/DESIGN.md" }])).toEqual(["README.md:2"]);
  });
});
