// `lunafleet run … --wait` against a running daemon (npm start's, over a rebased twin): the job's outcome in the words
// every command uses, and the documented exit code (src/cli/exit-codes.ts, README "Exit codes"): 0 succeeded or
// nothing-to-do, 5 succeeded-with-findings, 1 failed — a member left down by ha-recover is never green.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DemoRun, runDemo } from "../../src/cli/demo.ts";

const dataDir = mkdtempSync(join(tmpdir(), "lf-runwait-"));
const bin = fileURLToPath(new URL("../../bin/lunafleet.js", import.meta.url));
/** The requester is the OS account's principal (the demo fleet lists no OS account: os:<user>). */
const me = `os:${userInfo().username}`;
let demo: DemoRun;

beforeAll(async () => {
  demo = await runDemo({ dataDir, rebase: true, httpPort: null, concurrency: 4, print: () => {} });
});
afterAll(async () => {
  await demo?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

function lunafleet(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("REDIS_")));
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args, "--data-dir", dataDir], { env }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe("run --wait: outcomes and exit codes", () => {
  it("ha-recover leaving a member down: failed, exit 1; recovered: succeeded, exit 0; again: nothing-to-do, exit 0", async () => {
    const host = demo.twin.clientHosts.get("client-b")!.host;
    host.setMemberRecoverFails("hsm-b2", "par-tok", true);
    // --as only asserts who you are: naming someone else is refused before anything is queued.
    const asAlice = await lunafleet(["run", "ha-recover", "ha-tokens", "--wait", "--as", "alice"]);
    expect(asAlice.code).toBe(1);
    expect(asAlice.stderr).toMatch(/--as alice: you are authenticated as os:\S+ \(OS account /);
    expect(asAlice.stdout).toBe("");
    const down = await lunafleet(["run", "ha-recover", "ha-tokens", "--wait", "--as", me]);
    expect(down.stdout).toMatch(/finding: ha-tokens: hsm-b2\/par-tok still down after hagroup recover/);
    expect(down.stdout).toMatch(/: failed: GoalNotMet: /);
    expect(down.stdout).not.toMatch(/succeeded/);
    expect(down.code).toBe(1);

    host.setMemberRecoverFails("hsm-b2", "par-tok", false);
    const up = await lunafleet(["run", "ha-recover", "ha-tokens", "--wait"]);
    expect(up.stdout).toMatch(/: succeeded\n$/);
    expect(up.code).toBe(0);
    const again = await lunafleet(["run", "ha-recover", "ha-tokens", "--wait"]);
    expect(again.stdout).toMatch(/: nothing-to-do\n$/);
    expect(again.code).toBe(0);

    // `jobs` uses the same words, and the requester is who asked.
    const jobs = await lunafleet(["jobs", "--json", "--limit", "10"]);
    const rows = JSON.parse(jobs.stdout) as { runbook: string; state: string; actor: string }[];
    const ha = rows.filter((r) => r.runbook === "ha-recover").map((r) => r.state);
    expect(ha).toEqual(["nothing-to-do", "succeeded", "failed"]);
    expect(rows.find((r) => r.state === "failed")?.actor).toBe(me);
  });

  it("a check that finds something: succeeded-with-findings, exit 5", async () => {
    const r = await lunafleet(["run", "patch-verify", "hsm-b3", "--wait"]);
    expect(r.stdout).toMatch(/finding: hsm-b3: KB0019789 reboot patch missing: REBOOT-UNSAFE/);
    expect(r.stdout).toMatch(/: succeeded-with-findings\n$/);
    expect(r.code).toBe(5);
  });
});
