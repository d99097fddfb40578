import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { EvidenceLog, evidenceKeys } from "../../src/evidence/index.ts";
import { loadOrCreateSigner, sealEvidence, signingKeyPaths } from "../../src/evidence/signing.ts";
import { withRedis } from "../helpers/redis.ts";

const redis = await withRedis();
const signer = loadOrCreateSigner(redis.dataDir);
const pubKey = signingKeyPaths(redis.dataDir).pub;
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
  await sealEvidence(log, signer); // the daemon's signature over the head, as the worker leaves it
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

    // The last records removed (the signature with them), and an emptied file: each fails on its own, without Redis.
    const goodLines = readFileSync(good.filePath, "utf8").trimEnd().split("\n");
    const tail = join(otherDir, "tail-cut.jsonl");
    writeFileSync(tail, `${goodLines.slice(0, -2).join("\n")}\n`);
    const empty = join(otherDir, "empty.jsonl");
    writeFileSync(empty, "");
    writeFileSync(join(otherDir, "evidence-signing-key.pub.pem"), readFileSync(pubKey));

    const [ok, cut, redisTampered, usage, noDaemon, tailCut, emptied] = await Promise.all([
      lunafleet(["evidence", "verify", "cli-good", "--data-dir", redis.dataDir]),
      lunafleet(["evidence", "verify", "--file", cutCopy, "--key", pubKey]),
      lunafleet(["evidence", "verify", "cli-bad-redis", "--data-dir", redis.dataDir]),
      lunafleet(["evidence", "verify"]),
      lunafleet(["evidence", "verify", "cli-good", "--data-dir", otherDir]),
      lunafleet(["evidence", "verify", "--file", tail, "--key", pubKey]),
      lunafleet(["evidence", "verify", "--file", empty, "--key", pubKey]),
    ]);
    expect(ok).toMatchObject({ code: 0 });
    expect(ok.stdout).toMatch(
      /^evidence cli-good: ok, 6 records, head [0-9a-f]{64}, 1 daemon signature\(s\) by [0-9a-f]{16} \(Redis and file agree\)/,
    );
    expect(cut.code).toBe(1);
    expect(cut.stdout).toContain("TAMPERED record 2: sequence gap");
    expect(redisTampered.code).toBe(1);
    expect(redisTampered.stdout).toContain("in the redis copy: record 1: hash mismatch");
    expect(usage.code).toBe(2);
    expect(noDaemon.code).toBe(0);
    expect(noDaemon.stderr).toContain("Redis copy not checked");
    expect(noDaemon.stdout).toContain("ok, 6 records");
    expect(tailCut.code).toBe(1);
    expect(tailCut.stdout).toContain("TAMPERED record 3: unsigned head");
    expect(emptied.code).toBe(1);
    expect(emptied.stdout).toContain("TAMPERED record 0: empty");
  });
});
