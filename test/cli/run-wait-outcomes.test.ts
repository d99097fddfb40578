// `lunafleet run … --wait` against a running daemon (npm start's, over a rebased twin): the job's outcome in the words
// every command uses, and the documented exit code (src/cli/exit-codes.ts, README "Exit codes"): 0 succeeded or
// nothing-to-do, 5 succeeded-with-findings, 1 failed — a member left down by ha-recover is never green; 4 when
// --timeout stops the waiting on a job awaiting approval (the job goes on), 6 once it is cancelled.
import { execFile, spawn } from "node:child_process";
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

/** A `lunafleet` child left running: its output so far, a promise of output matching a pattern, and its exit code. */
function lunafleetInBackground(args: string[]) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("REDIS_")));
  const child = spawn(process.execPath, [bin, ...args, "--data-dir", dataDir], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const done = new Promise<number>((resolve) => child.once("exit", (code) => resolve(code ?? 1)));
  const waiters: (() => void)[] = [];
  const collect = (b: Buffer) => {
    out += b.toString();
    for (const w of waiters.splice(0)) w();
  };
  child.stdout.on("data", collect);
  child.stderr.on("data", collect);
  /** Resolves once the output matches (each chunk is an event); rejects if the child exits first. */
  const said = (re: RegExp): Promise<RegExpExecArray> =>
    new Promise((resolve, reject) => {
      const check = () => {
        const m = re.exec(out);
        if (m) resolve(m);
        else waiters.push(check);
      };
      void done.then((code) => reject(new Error(`exited ${code} before saying ${re}: ${out}`)));
      check();
    });
  return { out: () => out, said, done };
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
    // The submit line says what the worker will lock.
    expect(r.stdout).toMatch(/^queued \S+: patch-verify on hsm-b3 \(3 steps; locks hsm-b3\)$/m);
    expect(r.stdout).toMatch(/finding: hsm-b3: KB0019789 reboot patch missing: REBOOT-UNSAFE/);
    expect(r.stdout).toMatch(/: succeeded-with-findings\n$/);
    expect(r.code).toBe(5);
  });

  it("a job awaiting approval: --timeout stops waiting with exit 4 and the job goes on; cancelled, --wait exits 6", async () => {
    const waiting = lunafleetInBackground([
      "run",
      "deprovision",
      "hsm-c1",
      "--param",
      "backupsConfirmed=true",
      "--wait",
    ]);
    const id = (await waiting.said(/queued (\S+):/))[1]!;
    // Awaiting approval (what it waits for, how to approve): an event in --wait's output, not a timer.
    await waiting.said(/approve: lunafleet approve \S+ --key /);
    expect(waiting.out()).toMatch(/awaiting-approval: zeroize hsm-c1 \(serial 700301\) .*0\/2 approvals/);

    // A second watcher with a one-second limit: the job still awaits approval when it gives up, exit 4.
    const impatient = await lunafleet(["job", id, "--wait", "--timeout", "1"]);
    expect(impatient.stderr).toBe("");
    expect(impatient.stdout).toMatch(/awaiting-approval: zeroize hsm-c1 \(serial 700301\)/);
    expect(impatient.stdout).toMatch(
      new RegExp(`^${id}: still awaiting-approval; stopped waiting \\(the job goes on\\)$`, "m"),
    );
    expect(impatient.code).toBe(4);
    const status = JSON.parse((await lunafleet(["job", id, "--json"])).stdout) as { state: string };
    expect(status.state).toBe("awaiting-approval");

    // Cancelled while it waits: the first watcher (run --wait) says so and exits 6.
    const cancel = await lunafleet(["job", "cancel", id]);
    expect(cancel.code, cancel.stderr).toBe(0);
    expect(await waiting.done).toBe(6);
    expect(waiting.out()).toMatch(new RegExp(`^${id}: cancelled$`, "m"));
    // The appliance was not touched: hsm-c1 is not zeroized.
    expect(demo.twin.appliances.get("hsm-c1")!.state.zeroized).toBe(false);
    const after = await lunafleet(["job", id, "--wait"]);
    expect(after.stdout).toMatch(new RegExp(`^${id}: cancelled$`, "m"));
    expect(after.code).toBe(6);
  });
});
