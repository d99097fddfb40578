// Builds the compiled CLI (tsc -p tsconfig.build.json) into .build/<id>/ and points the `dist` symlink at it.
// Used by bin/lunafleet.js (rebuild when sources changed) and scripts/bootstrap (`node bin/build.js`).
//
// Why a symlink swap: several CLI processes (tests run many at once) may find the build stale together. Each waits
// for one lock; the first builds into a fresh directory and replaces the `dist` symlink with rename(2), which is
// atomic, so a process that is importing from the old build keeps a complete tree and never sees a half-written one.
// Freshness is by modification time: the newest file or directory (a deleted file changes its directory's mtime)
// under the compiled roots, against the stamp the build wrote.
import { execFileSync } from "node:child_process";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const ROOTS = ["src", "parsers", "runbooks"];
const CONFIG_FILES = ["tsconfig.json", "tsconfig.build.json", "package.json"];
const dist = join(root, "dist");
const builds = join(root, ".build");
const STAMP = "build-stamp";

export function distEntry() {
  return join(dist, "src/cli/main.js");
}

function newestMtime() {
  let newest = 0;
  const visit = (path) => {
    const st = statSync(path);
    if (st.mtimeMs > newest) newest = st.mtimeMs;
    if (!st.isDirectory()) return;
    for (const name of readdirSync(path)) {
      if (name === "fixtures" || name === "node_modules") continue;
      visit(join(path, name));
    }
  };
  for (const r of ROOTS) visit(join(root, r));
  for (const f of CONFIG_FILES) if (existsSync(join(root, f))) visit(join(root, f));
  return newest;
}

function isLink(path) {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

export function buildIsFresh() {
  const stamp = join(dist, STAMP);
  if (!existsSync(stamp) || !existsSync(distEntry())) return false;
  return statSync(stamp).mtimeMs >= newestMtime();
}

const sleep = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

function withLock(fn) {
  mkdirSync(builds, { recursive: true });
  const lock = join(builds, "lock");
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (err) {
      if (err.code !== "EEXIST") throw err;
      // A lock older than any build could take was left by a killed process.
      try {
        if (Date.now() - statSync(lock).mtimeMs > 120_000) rmSync(lock, { recursive: true, force: true });
      } catch {}
      if (Date.now() > deadline) throw new Error(`lunafleet: timed out waiting for the build lock ${lock}`);
      sleep(100);
    }
  }
  try {
    return fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

export function build({ quiet = true } = {}) {
  return withLock(() => {
    if (buildIsFresh()) return; // another process built it while we waited
    const started = newestMtime();
    const id = `${Date.now()}-${process.pid}`;
    const out = join(builds, id);
    if (!quiet) process.stderr.write("lunafleet: sources changed since the last build; compiling (once)…\n");
    const tsc = join(root, "node_modules/typescript/bin/tsc");
    try {
      execFileSync(process.execPath, [tsc, "-p", join(root, "tsconfig.build.json"), "--outDir", out], {
        cwd: root,
        stdio: ["ignore", "ignore", "pipe"],
      });
    } catch (err) {
      // tsc exits non-zero on type errors but still emits; only a missing output is a failed build.
      if (!existsSync(join(out, "src/cli/main.js"))) {
        rmSync(out, { recursive: true, force: true });
        throw new Error(
          `lunafleet: compiling the CLI failed: ${String(err.stderr ?? err.message).slice(0, 2000)}`,
        );
      }
    }
    // Runtime assets the code finds relative to its own module (config/demo.yaml) resolve inside the build.
    symlinkSync(join(root, "config"), join(out, "config"));
    // The web console's static files (src/console/routes.ts serves them from beside its compiled module).
    symlinkSync(join(root, "src/console/web"), join(out, "src/console/web"));
    // The stamp is the time the sources were read, so an edit made during the build makes the next call rebuild.
    writeFileSync(join(out, STAMP), "");
    // Rounded up to the millisecond: Date-based times would truncate the sources' sub-millisecond mtimes.
    const stampSeconds = Math.ceil(started) / 1000;
    utimesSync(join(out, STAMP), stampSeconds, stampSeconds);
    const tmpLink = join(builds, `dist-${id}`);
    symlinkSync(out, tmpLink);
    let previous;
    if (existsSync(dist) || isLink(dist)) {
      if (lstatSync(dist).isSymbolicLink()) previous = readlinkSync(dist);
      else rmSync(dist, { recursive: true, force: true }); // a dist/ from an older `npm run build`
    }
    renameSync(tmpLink, dist);
    // Older builds go, except the one just replaced: a process started a moment ago may still be importing from it.
    for (const name of readdirSync(builds)) {
      const p = join(builds, name);
      if (name === "lock" || p === out || p === previous) continue;
      rmSync(p, { recursive: true, force: true });
    }
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    build({ quiet: true });
  } catch (err) {
    console.error(err.message);
    process.exit(1);
  }
}
