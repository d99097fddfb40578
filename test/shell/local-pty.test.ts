// A `local: true` client host: lunacm under node-pty, driven by the same ShellSession as an SSH shell.
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { UnexpectedPrompt } from "../../src/shell/errors.ts";
import { JobShells } from "../../src/shell/job-shells.ts";
import { SshPool } from "../../src/transport/pool.ts";

const standin = resolve(import.meta.dirname, "fixtures/lunacm-standin.mjs");
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

function setup() {
  const log = join(mkdtempSync(join(tmpdir(), "lf-pty-")), "input.log");
  const pool = new SshPool();
  const target = { kind: "local" as const, name: "client-local", commandTimeoutMs: 5000 };
  const sessions = new JobShells({
    lease: pool.lease(),
    targets: {
      device: () => {
        throw new Error("no devices here");
      },
      clientHost: () => target,
    },
    unknownPromptMs: 500,
    localLunacm: { file: process.execPath, args: [standin, log] },
  });
  cleanups.push(
    () => sessions.close(),
    () => pool.closeAll(),
  );
  return { sessions, target, inputs: () => readFileSync(log, "utf8").split("\n").filter(Boolean) };
}

describe("local lunacm under node-pty", () => {
  it("opens on the lunacm prompt, runs commands, answers a declared confirmation", async () => {
    const { sessions, target, inputs } = setup();
    const cm = await sessions.lunacm(target.name);
    expect(cm.prompt).toBe("lunacm:>");
    expect(cm.bannerVersion).toBe("10.7.2-16");
    const r = await cm.run("slot list");
    expect(r.footer).toBe("Command Result : No Error");
    expect(r.raw).toContain("Label ->                par-local");
    const c = await cm.run("hagroup recover -group g", { confirm: "proceed" });
    expect(c.footer).toBe("Command Result : No Error");
    expect(c.confirmed).toEqual(["proceed"]);
    const u = await cm.run("bogus");
    expect(u.footer).toMatch(/^Command Result : 0x1\b/);
    expect(inputs()).toEqual(["slot list", "hagroup recover -group g", "<answer>", "bogus"]);
  });

  it("an undeclared confirmation is declined with 'quit' and the session is abandoned", async () => {
    const { sessions, target, inputs } = setup();
    const cm = await sessions.lunacm(target.name);
    const err = await cm.run("hagroup recover -group g").catch((e) => e);
    expect(err).toBeInstanceOf(UnexpectedPrompt);
    expect(err.message).toContain("client-local 'hagroup recover -group g'");
    expect(cm.usable).toBe(false);
    // The stand-in logs each line it reads: wait for the answer to arrive (an event, not a delay), then close.
    for (const deadline = Date.now() + 10_000; inputs().length < 2 && Date.now() < deadline; )
      await new Promise((r) => setTimeout(r, 10));
    await sessions.close();
    expect(inputs()).toEqual(["hagroup recover -group g", "<answer>"]); // the answer was 'quit' (see transcript)
    expect(cm.transcript.toText()).toContain(">>> quit");
    expect(cm.transcript.toText()).not.toContain(">>> proceed");
  });
});
