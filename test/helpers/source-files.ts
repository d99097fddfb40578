// The product's source files under a folder, recursively (fixtures, node_modules and tests left out): what the
// boundary and house-rule tests read.
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

export function sourceFilesUnder(root: string, dir: string): string[] {
  const abs = join(root, dir);
  let out: string[] = [];
  for (const name of readdirSync(abs)) {
    if (name === "fixtures" || name === "node_modules") continue;
    const p = join(abs, name);
    if (statSync(p).isDirectory()) out = out.concat(sourceFilesUnder(root, join(dir, name)));
    else if (/\.(ts|js|mjs)$/.test(name) && !name.endsWith(".test.ts")) out.push(join(dir, name));
  }
  return out;
}
