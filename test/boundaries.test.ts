// The design's boundary rules (ARCHITECTURE.md "Rules"), checked over every product file, recursively:
// 1. layers: a folder imports only folders of a LOWER layer (never sideways, never up), so there are no folder cycles;
// 2. parsers are pure: no src/, no runbooks/, no I/O module;
// 3. runbooks reach devices only through the engine's context (no transport, shell, guard, Redis, queue, twin);
// 4. only the guard mints login tokens / claims the last-attempt exception (the shell only declares the types);
// 5. the twin (src/sim) is imported only by the CLI, bench and tests; the twin and the parsers never import each other.
// Each rule is also run against a planted violation below, so a checker that finds nothing cannot pass.
import { readFileSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { sourceFilesUnder } from "./helpers/source-files.ts";

const ROOT = join(import.meta.dirname, "..");

/** From the ground up. A folder may import only folders of a strictly lower layer. */
const LAYERS: readonly (readonly string[])[] = [
  // src/errors: the root of the error taxonomy (NonRetryable), which errors of every layer extend (config's too).
  ["src/errors"],
  ["parsers", "src/config"],
  // src/signing: approval statements, SSH signature verification, the approver key registry (pure crypto over the
  // fleet file): below coord and guard, which re-verify approvals with it at the moment they act.
  ["src/redis", "src/signing"],
  // src/facts: the fleet state model (every observation with when, by which job, and its status), a Redis-backed
  // store like coord: runbooks write it through the engine's step context, report and metrics read it.
  ["src/coord", "src/facts", "src/evidence", "src/azure", "src/net"],
  // src/identity: principals, roles, API tokens, OIDC validation, failed-authentication limits: over redis and
  // evidence (refusals are recorded), below everything that acts for a principal (guard, queue, API).
  ["src/transport", "src/identity"],
  ["src/shell", "src/sim"],
  ["src/guard"],
  ["src/engine"],
  ["runbooks/lib"],
  ["runbooks"],
  ["src/queue"],
  // src/api: the HTTPS API's routes over queue, coord, guard, evidence and identity; the daemon serves it.
  // src/notify: webhook notifications (awaiting approval, job finished, new fleet problem) over queue, coord, facts
  // and evidence; beside the API, never through it.
  ["src/api", "src/notify"],
  // src/console: the web console's static pages and their routes on the API's server (it calls only the API).
  ["src/console"],
  ["src/daemon"],
  ["src/cli"],
];

/** Product roots scanned. bench/, scripts/ and test/ sit above everything and are not layered. */
const PRODUCT_ROOTS = ["src", "parsers", "runbooks"];

interface ImportEdge {
  from: string; // repo-relative file
  spec: string; // as written
  target: string; // repo-relative resolved path, or the bare package name
  typeOnly: boolean;
  names: string[]; // imported names (without `type `), for the rules that care which
}

const filesUnder = (dir: string): string[] => sourceFilesUnder(ROOT, dir);

function stripComments(src: string): string {
  return src.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`\\])\/\/[^\n]*/g, "$1");
}

function importsOf(file: string, source: string): ImportEdge[] {
  const edges: ImportEdge[] = [];
  const code = stripComments(source);
  const add = (spec: string, typeOnly: boolean, clause = "") => {
    const target = spec.startsWith(".") ? normalize(join(dirname(file), spec)) : spec;
    const names = clause.trim().startsWith("*")
      ? ["*"]
      : [...clause.matchAll(/(?:type\s+)?([A-Za-z_$][\w$]*)(?:\s+as\s+[\w$]+)?/g)].map((n) => n[1]!);
    edges.push({ from: file, spec, target, typeOnly, names });
  };
  for (const m of code.matchAll(/^\s*(import|export)\s+(type\s+)?([^;]*?)\s*from\s*["']([^"']+)["']/gms)) {
    const clause = m[3] ?? "";
    // `import { type A, type B } from` is type-only too.
    const allTypeNames =
      /^\{[\s\S]*\}$/.test(clause.trim()) &&
      clause
        .replace(/[{}]/g, "")
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean)
        .every((s) => s.startsWith("type "));
    add(m[4]!, Boolean(m[2]) || allTypeNames, clause);
  }
  for (const m of code.matchAll(/^\s*import\s*["']([^"']+)["']/gm)) add(m[1]!, false);
  for (const m of code.matchAll(/import\(\s*["']([^"']+)["']\s*\)/g)) add(m[1]!, false);
  return edges;
}

function folderOf(path: string): string | undefined {
  const parts = path.split("/");
  if (parts[0] === "parsers") return "parsers";
  if (parts[0] === "runbooks") return parts[1] === "lib" ? "runbooks/lib" : "runbooks";
  if (parts[0] === "src" && parts.length > 2) return `src/${parts[1]}`;
  return undefined;
}

function layerOf(folder: string): number {
  return LAYERS.findIndex((l) => l.includes(folder));
}

/** Rule 1: every cross-folder import goes strictly down. */
function upwardImports(edges: readonly ImportEdge[]): string[] {
  const out: string[] = [];
  for (const e of edges) {
    const a = folderOf(e.from);
    const b = folderOf(e.target);
    if (!a || !b || a === b) continue;
    if (layerOf(a) < 0) out.push(`${e.from}: folder ${a} has no layer in LAYERS`);
    else if (layerOf(b) < 0) out.push(`${e.from} -> ${e.spec}: folder ${b} has no layer in LAYERS`);
    else if (layerOf(b) >= layerOf(a)) out.push(`${e.from} -> ${e.spec} (${a} may not import ${b})`);
  }
  return out;
}

/** Folder cycles (independent of LAYERS, so a wrong table cannot hide one). */
function folderCycles(edges: readonly ImportEdge[]): string[][] {
  const graph = new Map<string, Set<string>>();
  for (const e of edges) {
    const a = folderOf(e.from);
    const b = folderOf(e.target);
    if (!a || !b || a === b) continue;
    if (!graph.has(a)) graph.set(a, new Set());
    graph.get(a)!.add(b);
  }
  const cycles: string[][] = [];
  const state = new Map<string, "visiting" | "done">();
  const stack: string[] = [];
  const visit = (n: string) => {
    state.set(n, "visiting");
    stack.push(n);
    for (const m of graph.get(n) ?? []) {
      if (state.get(m) === "visiting") cycles.push([...stack.slice(stack.indexOf(m)), m]);
      else if (!state.has(m)) visit(m);
    }
    stack.pop();
    state.set(n, "done");
  };
  for (const n of graph.keys()) if (!state.has(n)) visit(n);
  return cycles;
}

const IO_MODULES = /^(node:)?(fs|fs\/promises|net|tls|http|https|child_process|dgram|dns|worker_threads)$/;
const DEVICE_PACKAGES = /^(ssh2|node-pty|ioredis|bullmq)$/;

/** Rule 2: parsers import only parsers (and no I/O). */
function impureParserImports(edges: readonly ImportEdge[]): string[] {
  return edges
    .filter((e) => folderOf(e.from) === "parsers")
    .filter(
      (e) =>
        IO_MODULES.test(e.target) ||
        DEVICE_PACKAGES.test(e.target) ||
        (e.spec.startsWith(".") && folderOf(e.target) !== "parsers"),
    )
    .map((e) => `${e.from} -> ${e.spec}`);
}

/**
 * Rule 3: runbooks (and runbooks/lib) take devices, Redis and the guard only through the engine's context. They may
 * import the engine, config, parsers (types and pure helpers), runbooks/lib, the pure Azure modules (errors, resource
 * ids, Key Vault errors and scopes) and TYPES of anything below them; never a module that talks to a device, Redis or a queue.
 */
const RUNBOOK_VALUE_ALLOWED = [
  /^src\/engine\//,
  /^src\/config\//,
  /^parsers\//,
  /^runbooks\//,
  // Managed HSM's failure classes and id/scope parsing are pure too (no client, no network).
  /^src\/azure\/(errors|resource-id|key-vault-errors|key-vault-ids)\.ts$/,
  // The fleet state model's vocabulary (subjects, statuses): pure, no Redis; runbooks write facts only via ctx.facts.
  /^src\/facts\/model\.ts$/,
];
function runbookBypasses(edges: readonly ImportEdge[]): string[] {
  return edges
    .filter((e) => e.from.startsWith("runbooks/"))
    .filter((e) => {
      if (DEVICE_PACKAGES.test(e.target) || IO_MODULES.test(e.target)) return true;
      if (!e.spec.startsWith(".")) return false;
      if (/^src\/(sim|queue|redis|coord|transport)\//.test(e.target)) return true; // not even types
      if (e.typeOnly) return false;
      return !RUNBOOK_VALUE_ALLOWED.some((re) => re.test(e.target));
    })
    .map((e) => `${e.from} -> ${e.spec}`);
}

/**
 * Rule 4: who may import the login-token issuer and the last-attempt exception. The shell checks tokens (types,
 * isLoginToken) but never mints; the guard mints; only the sanctioned zeroize claims the exception's issuer.
 */
const MINTERS = new Set(["issueLoginToken", "claimLastAttemptExceptionIssuer"]);
function loginTokenImports(edges: readonly ImportEdge[]): string[] {
  return edges
    .filter((e) => /\/(login-token|last-attempt-exception)(\.ts)?$/.test(e.target))
    .filter((e) => {
      if (e.from.startsWith("src/shell/"))
        return e.names.some((n) => MINTERS.has(n)) || e.names.includes("*");
      if (e.target.endsWith("last-attempt-exception.ts")) return e.from !== "src/guard/sanctioned-zeroize.ts";
      return !e.from.startsWith("src/guard/");
    })
    .map((e) => `${e.from} -> ${e.spec}`);
}

/** Rule 5: the twin is imported only by src/cli (and bench/tests, not scanned); twin and parsers are independent. */
function twinLeaks(edges: readonly ImportEdge[]): string[] {
  return edges
    .filter((e) => e.spec.startsWith("."))
    .filter((e) => {
      const a = folderOf(e.from);
      const b = folderOf(e.target);
      if (b === "src/sim" && a !== "src/sim" && a !== "src/cli") return true;
      if (a === "src/sim" && b === "parsers") return true;
      if (a === "parsers" && b === "src/sim") return true;
      return false;
    })
    .map((e) => `${e.from} -> ${e.spec}`);
}

const productFiles = PRODUCT_ROOTS.flatMap((r) => filesUnder(r));
const productEdges = productFiles.flatMap((f) => importsOf(f, readFileSync(join(ROOT, f), "utf8")));

describe("design boundaries over the whole product tree", () => {
  it("scans the real tree (every folder has a layer)", () => {
    expect(productFiles.length).toBeGreaterThan(150);
    const folders = new Set(productFiles.map((f) => folderOf(f)).filter((f): f is string => Boolean(f)));
    expect([...folders].filter((f) => layerOf(f) < 0)).toEqual([]);
    expect(productEdges.filter((e) => e.spec.startsWith(".")).length).toBeGreaterThan(500);
  });

  it("no import runs back up or sideways between folders", () => {
    expect(upwardImports(productEdges)).toEqual([]);
  });

  it("no folder cycles", () => {
    expect(folderCycles(productEdges)).toEqual([]);
  });

  it("parsers are pure", () => {
    expect(impureParserImports(productEdges)).toEqual([]);
  });

  it("runbooks reach devices, Redis and the guard only through the engine's context", () => {
    expect(runbookBypasses(productEdges)).toEqual([]);
  });

  it("only the guard mints login tokens; only the sanctioned zeroize claims the last-attempt exception", () => {
    expect(loginTokenImports(productEdges)).toEqual([]);
  });

  it("the twin is imported only by the CLI (bench and tests aside); twin and parsers never import each other", () => {
    expect(twinLeaks(productEdges)).toEqual([]);
  });
});

describe("the checkers catch planted violations", () => {
  const planted = (file: string, line: string) => importsOf(file, line);

  it("an upward import and the cycle it makes", () => {
    const edges = [
      ...planted("src/guard/x.ts", 'import { Queue } from "../queue/jobs.ts";'),
      ...planted("src/queue/jobs.ts", 'import { guard } from "../guard/guard.ts";'),
    ];
    expect(upwardImports(edges)).toEqual([
      "src/guard/x.ts -> ../queue/jobs.ts (src/guard may not import src/queue)",
    ]);
    expect(folderCycles(edges)).toEqual([["src/guard", "src/queue", "src/guard"]]);
  });

  it("a sideways import and a folder with no layer", () => {
    expect(upwardImports(planted("src/coord/a.ts", 'import { x } from "../evidence/log.ts";'))).toHaveLength(
      1,
    );
    expect(upwardImports(planted("src/nowhere/a.ts", 'import { x } from "../config/load.ts";'))).toEqual([
      "src/nowhere/a.ts: folder src/nowhere has no layer in LAYERS",
    ]);
  });

  it("an impure parser", () => {
    const edges = [
      ...planted("parsers/lunash/x.ts", 'import { readFileSync } from "node:fs";'),
      ...planted("parsers/lunash/y.ts", 'import type { Fleet } from "../../src/config/schema.ts";'),
      ...planted("parsers/lunash/z.ts", 'import { section } from "./sections.ts";'),
    ];
    expect(impureParserImports(edges)).toEqual([
      "parsers/lunash/x.ts -> node:fs",
      "parsers/lunash/y.ts -> ../../src/config/schema.ts",
    ]);
  });

  it("a runbook that reaches past the context", () => {
    const edges = [
      ...planted("runbooks/a.ts", 'import { Client } from "ssh2";'),
      ...planted("runbooks/lib/b.ts", 'import type { SshPool } from "../../src/transport/pool.ts";'),
      ...planted("runbooks/c.ts", 'import { Guard } from "../src/guard/guard.ts";'),
      ...planted("runbooks/d.ts", 'import type { JobGuard } from "../src/guard/job-guard.ts";'),
      ...planted("runbooks/e.ts", 'import { defineRunbook } from "../src/engine/runbook.ts";'),
    ];
    expect(runbookBypasses(edges)).toEqual([
      "runbooks/a.ts -> ssh2",
      "runbooks/lib/b.ts -> ../../src/transport/pool.ts",
      "runbooks/c.ts -> ../src/guard/guard.ts",
    ]);
  });

  it("a login token minted outside the guard", () => {
    const edges = [
      ...planted("src/engine/x.ts", 'import { issueLoginToken } from "../shell/login-token.ts";'),
      ...planted("src/shell/y.ts", 'import { issueLoginToken } from "./login-token.ts";'),
      ...planted("src/shell/z.ts", 'import type { LoginToken } from "./login-token.ts";'),
      ...planted("src/guard/guard.ts", 'import { claim } from "../shell/last-attempt-exception.ts";'),
    ];
    expect(loginTokenImports(edges)).toEqual([
      "src/engine/x.ts -> ../shell/login-token.ts",
      "src/shell/y.ts -> ./login-token.ts",
      "src/guard/guard.ts -> ../shell/last-attempt-exception.ts",
    ]);
  });

  it("the twin imported by the product, and twin/parsers sharing code", () => {
    const edges = [
      ...planted("src/daemon/x.ts", 'import { startTwin } from "../sim/twin.ts";'),
      ...planted("src/sim/y.ts", 'import { parseHsmShow } from "../../parsers/lunash/hsm-show.ts";'),
      ...planted("src/cli/z.ts", 'import { startTwin } from "../sim/twin.ts";'),
    ];
    expect(twinLeaks(edges)).toEqual([
      "src/daemon/x.ts -> ../sim/twin.ts",
      "src/sim/y.ts -> ../../parsers/lunash/hsm-show.ts",
    ]);
  });

  it("relative paths resolve against the importing file", () => {
    expect(relative(ROOT, join(ROOT, "src/a/../b/c.ts"))).toBe("src/b/c.ts");
    expect(importsOf("src/guard/g.ts", 'export { x } from "../shell/policy.ts";')[0]!.target).toBe(
      "src/shell/policy.ts",
    );
  });
});
