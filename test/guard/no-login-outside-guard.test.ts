// Grep test: only src/guard sends login commands. Every file under src/ and runbooks/ is scanned for the login
// command strings and for imports of the login-token / last-attempt-exception modules.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = process.cwd();
/**
 * A sendable login command: a string or template literal that IS a login command line (the command words, then only
 * options and their values), e.g. "hsm login", `role login -name ${r}`. Prose that merely mentions one ("hsm login
 * ×(attempts left) …" in a plan description, comments) is not a command and is not flagged; comments are stripped.
 */
const LOGIN_COMMAND =
  /^\s*(hsm|audit|partition|role)\s+login(\s+-[A-Za-z]+(\s+(\$\{[^}]*\}|[^\s-]\S*))?)*\s*$/i;

function stripComments(src: string): string {
  return src.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`\\])\/\/[^\n]*/g, "$1");
}

function literals(src: string): string[] {
  const out: string[] = [];
  for (const m of stripComments(src).matchAll(/(["'`])((?:\\.|(?!\1)[^\\\n])*)\1/g)) out.push(m[2] ?? "");
  return out;
}

const sendsLogin = (src: string): boolean => literals(src).some((l) => LOGIN_COMMAND.test(l));

/**
 * Allowed to contain the strings, and why:
 * - src/guard: the guard is the one sender.
 * - src/shell: the command policy and platform tables name login commands in order to REFUSE them without a
 *   LoginToken (policy.ts, platform.ts, login-token.ts comments, session.ts) — they recognise, never send.
 * - src/sim: the twin RENDERS the appliance/lunacm side of a login (it is the device, not a client).
 * - parsers/ (not under src/) PARSE login output; listed for completeness.
 */
const STRING_ALLOWED = [/^src\/guard\//, /^src\/shell\//, /^src\/sim\//, /^parsers\//];
/** Only the guard may import the token issuer; only the sanctioned zeroize the last-attempt exception. */
const TOKEN_IMPORT_ALLOWED = [/^src\/guard\//, /^src\/shell\//];
const EXCEPTION_IMPORT_ALLOWED = [/^src\/guard\/sanctioned-zeroize\.ts$/, /^src\/shell\//];

function files(dir: string): string[] {
  let out: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const n of names) {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) out = out.concat(files(p));
    else if (/\.(ts|js|mjs)$/.test(n)) out.push(relative(ROOT, p));
  }
  return out;
}

const scanned = [...files(join(ROOT, "src")), ...files(join(ROOT, "runbooks"))];

describe("only src/guard sends login commands", () => {
  it("scans a real tree", () => {
    expect(scanned.length).toBeGreaterThan(50);
    expect(scanned).toContain("src/guard/guard.ts");
  });

  it("no login command string outside src/guard (the shell policy, twin and parsers only recognise/render them)", () => {
    const offenders = scanned
      .filter((f) => !STRING_ALLOWED.some((re) => re.test(f)))
      .filter((f) => sendsLogin(readFileSync(f, "utf8")));
    expect(offenders).toEqual([]);
  });

  it("no import of login-token.ts outside src/guard and src/shell", () => {
    const offenders = scanned
      .filter((f) => !TOKEN_IMPORT_ALLOWED.some((re) => re.test(f)))
      .filter((f) =>
        /from\s+["'][^"']*login-token(\.ts)?["']|import\(["'][^"']*login-token/.test(readFileSync(f, "utf8")),
      );
    expect(offenders).toEqual([]);
  });

  it("no import of last-attempt-exception.ts outside src/guard/sanctioned-zeroize.ts", () => {
    const offenders = scanned
      .filter((f) => !EXCEPTION_IMPORT_ALLOWED.some((re) => re.test(f)))
      .filter((f) => /last-attempt-exception/.test(readFileSync(f, "utf8")));
    expect(offenders).toEqual([]);
  });

  it("the scanner catches a sender and ignores prose (self-test)", () => {
    expect(sendsLogin('await shell.run("hsm login")')).toBe(true);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the file body under test contains a template literal
    expect(sendsLogin("await shell.run(`role login -name ${r}`)")).toBe(true);
    expect(sendsLogin("const c = 'audit login';")).toBe(true);
    expect(sendsLogin('await shell.run("hsm show")')).toBe(false);
    expect(sendsLogin('commands: ["hsm login ×(attempts left) with random wrong passwords"]')).toBe(false);
    expect(sendsLogin("// the guard sends 'hsm login'\nconst x = 1;")).toBe(false);
    // The guard itself is flagged by the scanner (so the allow-list is what keeps it legal).
    expect(sendsLogin(readFileSync("src/guard/guard.ts", "utf8"))).toBe(true);
  });
});
