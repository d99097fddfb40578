import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const owner = fileURLToPath(new URL("./fixtures/embedded-redis-owner.ts", import.meta.url));
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Start an owner process; resolve with its redis pid and a promise of its own exit. */
async function startOwner(mode: "signal" | "exit") {
  const dir = mkdtempSync(join(tmpdir(), "lf-own-"));
  dirs.push(dir);
  const child = spawn(process.execPath, ["--import", "tsx", owner, dir, mode], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once("exit", (code, signal) => r({ code, signal })),
  );
  const redisPid = await new Promise<number>((resolve, reject) => {
    child.stdout.on("data", (d: Buffer) => {
      const m = /redis (\d+)/.exec(d.toString());
      if (m) resolve(Number(m[1]));
    });
    exited.then(() => reject(new Error("owner exited before starting redis")));
  });
  return { child, redisPid, exited };
}

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (!alive(pid)) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return !alive(pid);
}

describe.concurrent("embedded redis-server dies with its owner", () => {
  it("on SIGTERM to the owner (which still dies of the signal)", async () => {
    const { child, redisPid, exited } = await startOwner("signal");
    expect(alive(redisPid)).toBe(true);
    child.kill("SIGTERM");
    expect(await exited).toEqual({ code: null, signal: "SIGTERM" });
    expect(await waitGone(redisPid, 5000)).toBe(true);
  });

  it("on process.exit of the owner", async () => {
    const { redisPid, exited } = await startOwner("exit");
    expect((await exited).code).toBe(0);
    expect(await waitGone(redisPid, 5000)).toBe(true);
  });
});
