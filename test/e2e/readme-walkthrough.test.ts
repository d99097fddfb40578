// README's signed-deprovision walkthrough, run as written: the code block is read from README.md itself, each
// `npx lunafleet …` line runs as the real CLI from the repository root (so `config/demo-keys/alice` is the shipped
// key) against npm start's daemon (rebased twin) on the daemon host, `<job>` replaced by the id `run` printed. What
// each line's comment promises is checked; a README edit that breaks the walkthrough fails here.
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DemoRun, runDemo } from "../../src/cli/demo.ts";
import { approvalAsked } from "../helpers/approvals.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const dataDir = mkdtempSync(join(tmpdir(), "lf-readme-"));
let demo: DemoRun;

beforeAll(async () => {
  demo = await runDemo({
    dataDir,
    rebase: true,
    httpPort: null,
    apiPort: 0,
    concurrency: 4,
    print: () => {},
  });
}, 180_000);
afterAll(async () => {
  await demo?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

/** The walkthrough's command lines, comments stripped. */
function walkthrough(): string[] {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const start = readme.indexOf("A signed deprovision on the demo, on the daemon host");
  expect(start, "README has the walkthrough").toBeGreaterThan(0);
  const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(start))![1]!;
  return block
    .split("\n")
    .map((l) => l.replace(/\s+#\s.*$/, "").trim())
    .filter((l) => l.length > 0);
}

function lunafleet(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith("REDIS_") && !k.startsWith("LUNAFLEET_")),
  );
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [join(root, "bin/lunafleet.js"), ...args, "--data-dir", dataDir],
      { env, cwd: root },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** `npx lunafleet a b 'c d' [| grep 'x']` -> argv and an optional grep pattern. */
function parse(line: string): { args: string[]; grep?: string } {
  const [cmd, filter] = line.split(" | grep ");
  const words = [...cmd!.matchAll(/'([^']*)'|"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]!);
  expect(words.slice(0, 2)).toEqual(["npx", "lunafleet"]);
  const pattern = filter?.trim().replace(/^'(.*)'$/, "$1");
  return { args: words.slice(2), ...(pattern ? { grep: pattern } : {}) };
}

describe("README: a signed deprovision on the demo", () => {
  it("works as written: refused unsigned, signed twice, zeroized, HSM and group deleted, evidence verified", async () => {
    const lines = walkthrough();
    expect(lines).toHaveLength(8);
    let job = "";
    const outputs: { line: string; code: number; out: string }[] = [];
    for (const line of lines) {
      const { args, grep } = parse(line.replaceAll("<job>", job));
      if (args[0] === "job") {
        // `job <job>` is where the walkthrough watches it finish: wait for the worker first (no deadline of its own,
        // which load could beat: the test's timeout is the hang guard).
        while (!["completed", "failed"].includes(await (await demo.daemon.queue.getJob(job))!.getState()))
          await sleep(25);
      }
      const r = await lunafleet(args);
      const out = grep
        ? r.stdout
            .split("\n")
            .filter((l) => l.includes(grep))
            .join("\n")
        : r.stdout;
      outputs.push({ line, code: r.code, out: `${out}\n${r.stderr}` });
      if (args[0] === "run") job = /queued (\S+):/.exec(r.stdout)?.[1] ?? "";
      if (args[0] === "run") await approvalAsked(demo.daemon.redis, job);
    }
    const [run, approvals, unsigned, alice, bob, shown, verified, exported] = outputs;
    expect(run!.code, run!.out).toBe(0);
    expect(job).toMatch(/^deprovision-/);
    expect(approvals!.out).toMatch(new RegExp(`${job} +deprovision +hsm-c1 +700301 +0/2`));
    expect(unsigned!.code).toBe(1);
    expect(unsigned!.out).toMatch(/refused: .*unsigned one never counts/);
    expect(alice!.code, alice!.out).toBe(0);
    expect(alice!.out).toMatch(/signing this statement with config\/demo-keys\/alice:/);
    expect(alice!.out).toMatch(/awaiting-approval — hsm-c1 \(serial 700301\), 1\/2 approvals: alice/);
    expect(bob!.code, bob!.out).toBe(0);
    expect(bob!.out).toMatch(/approved — hsm-c1 \(serial 700301\), 2\/2 approvals: alice at .*, bob at /);
    expect(shown!.out).toContain(`job ${job}: succeeded`);
    expect(verified!.code).toBe(0);
    expect(verified!.out).toMatch(/ok, \d+ records, .*final seal: succeeded \(Redis and file agree\)/);
    const approvedRecords = exported!.out
      .trim()
      .split("\n")
      .filter(
        (l) =>
          l.startsWith("{") && (JSON.parse(l) as { data?: { event?: string } }).data?.event === "approved",
      );
    expect(approvedRecords.map((l) => (JSON.parse(l) as { actor: string }).actor)).toEqual(["alice", "bob"]);
    // What the comments say happened, at the twin: zeroized, the HSM deleted, then its resource group.
    expect(demo.twin.appliances.get("hsm-c1")!.state.zeroized).toBe(true);
    const id = demo.twin.fleet.devices.find((d) => d.name === "hsm-c1")!.azure!.resourceId;
    expect(demo.twin.arm!.hsmState(id)).toMatchObject({
      exists: false,
      deleted: true,
      resourceGroupExists: false,
    });
  }, 300_000);
});
