import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { EvidenceLog, evidenceKeys } from "../../src/evidence/index.ts";
import { computeRecordHash, type EvidenceRecord, serializeRecord } from "../../src/evidence/record.ts";
import { loadOrCreateSigner, sealEvidence, sealFinal, signingKeyPaths } from "../../src/evidence/signing.ts";
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
  // The daemon's final seal over the head, as the worker leaves a job that will not run again.
  await sealFinal(log, signer, redis.client(), "succeeded");
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
    expect(ok, ok.stdout + ok.stderr).toMatchObject({ code: 0 });
    expect(ok.stdout).toMatch(
      /^evidence cli-good: ok, 6 records, head [0-9a-f]{64}, 1 daemon signature\(s\) by [0-9a-f]{16}, final seal: succeeded \(Redis and file agree\)/,
    );
    expect(cut.code).toBe(1);
    expect(cut.stdout).toContain("TAMPERED record 2: sequence gap");
    expect(redisTampered.code).toBe(1);
    expect(redisTampered.stdout).toContain("in the redis copy: record 1: hash mismatch");
    expect(usage.code).toBe(2);
    expect(noDaemon.code).toBe(0);
    expect(noDaemon.stderr).toContain("the daemon is not reachable; reading the files only");
    expect(noDaemon.stdout).toContain("ok, 6 records");
    expect(tailCut.code).toBe(1);
    expect(tailCut.stdout).toContain("TAMPERED record 3: unsigned head");
    expect(tailCut.stdout).not.toContain("records 1-");
    expect(emptied.code).toBe(1);
    expect(emptied.stdout).toContain("TAMPERED record 0: empty");
  }, 120_000); // seven real CLI processes at once: ~40 s on a loaded 2-core machine
});

describe("a finished job's copy ends with a final seal", () => {
  it("a copy cut back to an intermediate seal fails on its own; --unfinished accepts it and says what it cannot prove", async () => {
    // An attempt that ends and will be retried (intermediate seal), then the last attempt (final seal).
    const log = await EvidenceLog.open(redis.client(), redis.dataDir, "cli-two-attempts");
    await log.append("requested", { runbook: "tcp-check", target: "device:hsm-a1" }, "alice");
    await log.append("result", { ok: false, attempt: 1 });
    await sealEvidence(log, signer);
    await log.append("step", { id: "check", state: "done", attempt: 2 });
    await log.append("result", { ok: true, attempt: 2 });
    await sealFinal(log, signer, redis.client(), "succeeded");
    const lines = readFileSync(log.filePath, "utf8").trimEnd().split("\n");
    expect(lines).toHaveLength(6);
    const whole = join(otherDir, "whole.jsonl");
    writeFileSync(whole, `${lines.join("\n")}\n`);
    // Cut back exactly to the first attempt's seal: the chain and that signature are intact.
    const cut = join(otherDir, "cut-to-seal.jsonl");
    writeFileSync(cut, `${lines.slice(0, 3).join("\n")}\n`);

    const [full, cutAlone, cutUnfinished, fullUnfinished, viaRedis] = await Promise.all([
      lunafleet(["evidence", "verify", "--file", whole, "--key", pubKey]),
      lunafleet(["evidence", "verify", "--file", cut, "--key", pubKey]),
      lunafleet(["evidence", "verify", "--file", cut, "--key", pubKey, "--unfinished"]),
      lunafleet(["evidence", "verify", "--file", whole, "--key", pubKey, "--unfinished"]),
      lunafleet(["evidence", "verify", "cli-two-attempts", "--data-dir", redis.dataDir]),
    ]);
    expect(full.code, full.stdout).toBe(0);
    expect(full.stdout).toMatch(/ok, 6 records, .*2 daemon signature\(s\).*final seal: succeeded/);
    expect(cutAlone.code).toBe(1);
    expect(cutAlone.stdout).toContain(
      "TAMPERED record 2: not final: the copy ends at an intermediate seal (seq 3), not the final seal of a finished job",
    );
    expect(cutUnfinished.code).toBe(0);
    expect(cutUnfinished.stdout).toMatch(
      /ok, 3 records, .*ends at an intermediate seal: proves these records only, not that none followed/,
    );
    expect(fullUnfinished.code).toBe(0);
    expect(fullUnfinished.stdout).toContain("final seal: succeeded");
    expect(viaRedis.code).toBe(0);
    expect(viaRedis.stdout).toContain("final seal: succeeded (Redis and file agree)");

    // A final seal's outcome is signed: another outcome (the record re-hashed so the chain holds) fails the signature.
    const finalRecord = JSON.parse(lines[5]!) as EvidenceRecord & { data: { final: { outcome: string } } };
    expect(finalRecord.data.final.outcome).toBe("succeeded");
    finalRecord.data.final.outcome = "failed";
    finalRecord.hash = computeRecordHash(finalRecord);
    const relabelled = join(otherDir, "relabelled.jsonl");
    writeFileSync(relabelled, `${[...lines.slice(0, 5), serializeRecord(finalRecord)].join("\n")}\n`);
    const r = await lunafleet(["evidence", "verify", "--file", relabelled, "--key", pubKey]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(
      /TAMPERED record 5: bad signature: seq 6: the signature does not verify with key/,
    );
  }, 120_000);

  it("a log marked finished must end with a final seal even where a growing one is asked for", async () => {
    const log = await EvidenceLog.open(redis.client(), redis.dataDir, "cli-late-record");
    await log.append("result", { ok: true });
    await sealFinal(log, signer, redis.client(), "failed");
    // A later writer (a late approval, refused and recorded) seals again: final, because the log is marked finished.
    await log.append("approval", { event: "refused", reason: "not-awaiting-approval" }, "bob");
    await sealEvidence(log, signer, redis.client());
    const records = await log.records();
    expect(records.map((r) => r.kind)).toEqual(["result", "signature", "approval", "signature"]);
    expect((records[3]!.data as { final?: { outcome: string } }).final).toEqual({ outcome: "failed" });
    const lines = readFileSync(log.filePath, "utf8").trimEnd().split("\n");
    const cut = join(otherDir, "late-cut.jsonl");
    writeFileSync(cut, `${lines.slice(0, 3).join("\n")}\n`);
    const r = await lunafleet(["evidence", "verify", "--file", cut, "--key", pubKey, "--unfinished"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("record 2: unsigned head");
  });
});
