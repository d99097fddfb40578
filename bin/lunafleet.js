#!/usr/bin/env node
// Entry point for `lunafleet` (package.json bin). It runs the compiled JavaScript in dist/ — transpiling the
// TypeScript sources on every start (tsx) cost ~3 s per CLI call. scripts/bootstrap builds dist/; when a source file
// under src/, parsers/ or runbooks/ (or a tsconfig) is newer than the build, this rebuilds it first, once, under a
// lock, so a checkout being edited never runs stale code. LUNAFLEET_TSX=1 runs the sources through tsx instead
// (no build), and so does a checkout without the TypeScript compiler.
import { build, buildIsFresh, distEntry } from "./build.js";

if (process.env.LUNAFLEET_TSX === "1") {
  const { register } = await import("tsx/esm/api");
  register();
  await import("../src/cli/main.ts");
} else {
  if (!buildIsFresh()) build({ quiet: false });
  await import(distEntry());
}
