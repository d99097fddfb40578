import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { EvidenceLog, evidenceKeys } from "../../src/evidence/index.ts";
import { withRedis } from "../helpers/redis.ts";

const redis = await withRedis();
const bin = fileURLToPath(new URL("../../bin/lunafleet.js", import.meta.url));
const otherDir = mkdtempSync(join(tmpdir(), "lf-evcli-"));
afterAll(() => rmSync(otherDir, { recursive: true, force: true }));

/** Run the real CLI; REDIS_* cleared so it finds the embedded server through the data dir's socket. */
function lunafleet(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("REDIS_")));
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { env }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

async function job(jobId: string): Promise<EvidenceLog> {
  const log = await EvidenceLog.open(redis.client(), redis.dataDir, jobId);
  await log.append("requested", { runbook: "tcp-check", target: "device:hsm-a1" }, "alice");
  await log.append("command", { device: "hsm-a1", command: "hsm show" });
  await log.append("reply", { text: "Command Result : 0 (Success)" });
  await log.append("step", { id: "check", state: "done" });
  await log.append("result", { ok: true });
  return log;
}

describe("lunafleet evidence verify", () => {
  it("exit 0 for intact evidence, 1 with index and reason when tampered, 2 on usage errors", async () => {
    const good = await job("cli-good");
    const badFile = await job("cli-bad-file");
    const badRedis = await job("cli-bad-redis");
    const lines = readFileSync(badFile.filePath, "utf8").trimEnd().split("\n");
    const cutCopy = join(otherDir, "cut.jsonl");
    writeFileSync(cutCopy, `${lines.filter((_, i) => i !== 2).join("\n")}\n`);
    const c = redis.client();
    const key = evidenceKeys(badRedis.jobId).records;
    await c.lset(key, 1, (await c.lindex(key, 1))!.replace("hsm show", "hsm shew"));
    // A file copy with nothing to compare to: the daemon of this data dir is not running.
    mkdirSync(join(otherDir, "evidence"), { recursive: true });
    writeFileSync(join(otherDir, "evidence", "cli-good.jsonl"), readFileSync(good.filePath));

    const [ok, cut, redisTampered, usage, noDaemon] = await Promise.all([
      lunafleet(["evidence", "verify", "cli-good", "--data-dir", redis.dataDir]),
      lunafleet(["evidence", "verify", "--file", cutCopy]),
      lunafleet(["evidence", "verify", "cli-bad-redis", "--data-dir", redis.dataDir]),
      lunafleet(["evidence", "verify"]),
      lunafleet(["evidence", "verify", "cli-good", "--data-dir", otherDir]),
    ]);
    expect(ok).toMatchObject({ code: 0 });
    expect(ok.stdout).toMatch(
      /^evidence cli-good: ok, 5 records, head [0-9a-f]{64} \(Redis and file agree\)/,
    );
    expect(cut.code).toBe(1);
    expect(cut.stdout).toContain("TAMPERED record 2: sequence gap");
    expect(redisTampered.code).toBe(1);
    expect(redisTampered.stdout).toContain("in the redis copy: record 1: hash mismatch");
    expect(usage.code).toBe(2);
    expect(noDaemon.code).toBe(0);
    expect(noDaemon.stderr).toContain("Redis copy not checked");
    expect(noDaemon.stdout).toContain("ok, 5 records");
  });
});
