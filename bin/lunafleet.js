#!/usr/bin/env node
// Entry point for `lunafleet` (package.json bin). Registers tsx in-process so a checkout runs the TypeScript
// sources without a build step; `npm run build` produces dist/ for installs that prefer compiled JS.
import { register } from "tsx/esm/api";

register();
await import("../src/cli/main.ts");
