// Every Redis script goes through the named-script helper (src/redis/client.ts luaScript/runScript): one idiom, a
// name that says what the script guarantees, and the EVALSHA/NOSCRIPT fallback in one place. This test reads every
// product file (src, runbooks, parsers, bench) and fails on a raw eval/evalsha call outside the helper, on a script
// name used twice, and on a name that is not a camelCase phrase. A planted violation proves the checks can fail.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { hashTag, luaScript, runScript } from "../../src/redis/client.ts";
import { withRedis } from "../helpers/redis.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const HELPER = "src/redis/client.ts";

function productFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(ROOT, dir))) {
    if (name === "fixtures" || name === "node_modules") continue;
    const rel = join(dir, name);
    if (statSync(join(ROOT, rel)).isDirectory()) out.push(...productFiles(rel));
    else if (name.endsWith(".ts")) out.push(rel);
  }
  return out;
}

/** Raw script calls: `.eval(`, `.evalsha(`, `.evalRo(`, `defineCommand(` — anything but the helper. */
function rawScriptCalls(source: string): string[] {
  return [...source.matchAll(/\.(eval|evalsha|evalRo|evalshaRo|fcall|defineCommand)\s*\(/g)].map((m) => m[0]);
}

/** The names given to luaScript("<name>", ...). */
function scriptNames(source: string): string[] {
  return [...source.matchAll(/luaScript\(\s*"([^"]*)"/g)].map((m) => m[1] ?? "");
}

const files = ["src", "runbooks", "parsers", "bench"].flatMap(productFiles);

describe("Redis scripts: one named-script idiom", () => {
  it("no raw eval/evalsha outside the helper", () => {
    const offenders = files
      .filter((f) => relative(ROOT, join(ROOT, f)) !== HELPER)
      .flatMap((f) => rawScriptCalls(readFileSync(join(ROOT, f), "utf8")).map((c) => `${f}: ${c}`));
    expect(offenders).toEqual([]);
    // Planted: the checker sees a raw call.
    expect(rawScriptCalls("await this.redis.eval(SCRIPT, 1, key)")).toEqual([".eval("]);
  });

  it("every script has a unique camelCase name that says what it guarantees", () => {
    const names = files.flatMap((f) => scriptNames(readFileSync(join(ROOT, f), "utf8")));
    // The guard ledger's transitions, the locks', the checkpoints', the evidence chain's: all named.
    for (const expected of [
      "beginAttemptIfFencedAndClean",
      "recordOutcomeOfPendingAttempt",
      "failAttemptIfOwnerGone",
      "takeLockIfFree",
      "recordStepResultOnce",
      "appendEvidenceIfHeadMatches",
    ])
      expect(names).toContain(expected);
    const dup = names.filter((n, i) => names.indexOf(n) !== i);
    expect(dup).toEqual([]);
    const badNames = names.filter((n) => !/^[a-z][a-zA-Z]{5,}$/.test(n) || !/[A-Z]/.test(n));
    expect(badNames).toEqual([]);
    // Planted: a name that says nothing is caught.
    expect(scriptNames('luaScript("BEGIN", 1, "")').filter((n) => !/^[a-z][a-zA-Z]{5,}$/.test(n))).toEqual([
      "BEGIN",
    ]);
  });
});

const redis = await withRedis();

describe("runScript", () => {
  it("loads a script the server has not seen (NOSCRIPT -> EVAL), then runs it by hash; names the script in errors", async () => {
    const client = redis.client();
    const setIfAbsent = luaScript(
      "setIfAbsentForTest",
      1,
      "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end redis.call('SET', KEYS[1], ARGV[1]) return 1",
    );
    await client.script("FLUSH");
    expect(await runScript(client, setIfAbsent, ["k"], ["v"])).toBe(1);
    expect(await client.script("EXISTS", setIfAbsent.sha)).toEqual([1]);
    expect(await runScript(client, setIfAbsent, ["k"], ["w"])).toBe(0);
    expect(await client.get("k")).toBe("v");
    await expect(runScript(client, setIfAbsent, [], ["v"])).rejects.toThrow(
      /setIfAbsentForTest: expected 1 keys/,
    );
  });
});

describe("one hash slot per script", () => {
  it("hashTag is what Redis Cluster hashes: the first non-empty {...}, else the whole key", () => {
    expect(hashTag("lunafleet:lock:{device:hsm-a1}")).toBe("device:hsm-a1");
    expect(hashTag("lunafleet:guard:ledger:{device:hsm-a1}:-:hsmSo")).toBe("device:hsm-a1");
    expect(hashTag("a{}b{c}")).toBe("a{}b{c}");
    expect(hashTag("plain")).toBe("plain");
    expect(hashTag("{x}{y}")).toBe("x");
  });

  it("refuses, on any server, a script whose keys are not in one slot", async () => {
    const twoKeys = luaScript("returnOneForTest", 2, "return 1");
    const client = redis.client();
    expect(await runScript(client, twoKeys, ["a:{job-1}:x", "b:{job-1}:y"], [])).toBe(1);
    await expect(runScript(client, twoKeys, ["a:{job-1}:x", "b:{job-2}:y"], [])).rejects.toThrow(
      /returnOneForTest: keys "a:\{job-1\}:x" and "b:\{job-2\}:y" are not in one hash slot/,
    );
  });
});
