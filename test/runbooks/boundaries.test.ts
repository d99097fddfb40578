// DESIGN "Boundaries": runbooks reach devices only through the engine's context. They never import ssh2, node-pty,
// ioredis, bullmq or src/transport (nor the twin), directly or through a module of their own.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const dir = join(import.meta.dirname, "../../runbooks");
const FORBIDDEN = [
  /^ssh2$/,
  /^node-pty$/,
  /^ioredis$/,
  /^bullmq$/,
  /\/src\/transport\//,
  /\/src\/sim\//,
  /\/src\/queue\//,
];

function importsOf(source: string): string[] {
  return [
    ...source.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+"([^"]+)"/gms),
    ...source.matchAll(/import\("([^"]+)"\)/g),
  ].map((m) => m[1]!);
}

describe("runbooks/ boundaries", () => {
  const files = readdirSync(dir).filter((f) => f.endsWith(".ts"));

  it("has the runbooks it registers", () => {
    expect(files).toEqual(expect.arrayContaining(["index.ts", "patch-verify.ts", "tcp-check.ts"]));
  });

  it.each(files)("%s imports nothing that talks to devices, Redis or queues directly", (file) => {
    const imports = importsOf(readFileSync(join(dir, file), "utf8"));
    expect(imports.length).toBeGreaterThan(0);
    const bad = imports.filter((i) => FORBIDDEN.some((re) => re.test(i.replace(/^(\.\.\/)+/, "/"))));
    expect(bad).toEqual([]);
  });

  it("the check itself catches a forbidden import", () => {
    const bad = importsOf(
      'import { Client } from "ssh2";\nimport { x } from "../src/transport/pool.ts";',
    ).filter((i) => FORBIDDEN.some((re) => re.test(i.replace(/^(\.\.\/)+/, "/"))));
    expect(bad).toEqual(["ssh2", "../src/transport/pool.ts"]);
  });
});
