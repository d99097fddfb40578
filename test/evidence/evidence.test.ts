import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Secret } from "../../src/config/secret.ts";
import {
  computeRecordHash,
  EvidenceLog,
  EvidenceTamperedError,
  evidenceKeys,
  genesisHash,
  serializeRecord,
  verifyEvidence,
  verifyEvidenceFile,
  verifyJobEvidence,
} from "../../src/evidence/index.ts";
import { withRedis } from "../helpers/redis.ts";

const redis = await withRedis();
const dataDir = redis.dataDir;
let uniq = 0;
const newJobId = (name: string) => `job-${name}-${++uniq}`;

const HSM_SHOW = `
	Appliance Details:
	==================
	Software Version:               7.8.4-24

	HSM Details:
	============
	HSM Label:                      hsm-a1
	Serial #:                       1238712
	Firmware:                       7.8.4
	HSM Model:                      Luna K7
	HSM Part Number:                808-000073-002
	Authentication Method:          Password
	HSM Admin login status:         Not Logged In
	HSM Admin login attempts left:  3 before HSM zeroization!
	Partitions created on HSM:
	=============================
	Partition:      1238712014, Name: par-a1

Command Result : 0 (Success)
`;

/** A realistic job: what the engine will write for a patch-verify run on one device. */
async function writeRealisticJob(log: EvidenceLog): Promise<void> {
  await log.append("requested", { runbook: "patch-verify", target: "device:hsm-a1", by: "alice" }, "alice");
  await log.append("param", { name: "expectKb", value: "KB0019789" });
  await log.append("lock", { resources: ["device:hsm-a1"], fencingToken: 42 });
  await log.append("step", { id: "read-hsm", state: "started" });
  await log.append("command", { device: "hsm-a1", shell: "lunash", command: "hsm show" }, "worker:1");
  await log.append("reply", { device: "hsm-a1", command: "hsm show", text: HSM_SHOW, ms: 412 });
  await log.append("parse", { command: "hsm show", serial: "1238712", firmware: "7.8.4", soAttemptsLeft: 3 });
  await log.append("step", { id: "read-hsm", state: "done" });
  await log.append("result", { ok: true, summary: "hsm-a1 firmware 7.8.4 has KB0019789" });
}

function fileLines(log: EvidenceLog): string[] {
  return readFileSync(log.filePath, "utf8").trimEnd().split("\n");
}

/** Write a tampered copy of the job's file next to it and verify that copy. */
async function verifyTampered(log: EvidenceLog, tamper: (lines: string[]) => string[]) {
  const path = join(dataDir, `tampered-${log.jobId}-${++uniq}.jsonl`);
  writeFileSync(path, `${tamper(fileLines(log)).join("\n")}\n`);
  return verifyEvidenceFile(path, log.jobId);
}

describe("evidence log", () => {
  it("a realistic job's record verifies, in Redis, in the file, and the two agree", async () => {
    const log = await EvidenceLog.open(redis.client(), dataDir, newJobId("real"));
    await writeRealisticJob(log);
    const records = await log.records();
    expect(records.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(records[0]!.prevHash).toBe(genesisHash(log.jobId));
    for (let i = 1; i < records.length; i++) expect(records[i]!.prevHash).toBe(records[i - 1]!.hash);
    for (const r of records) expect(r.hash).toBe(computeRecordHash(r));
    expect(records[4]).toMatchObject({ kind: "command", actor: "worker:1", data: { command: "hsm show" } });
    expect(records[2]!.data).toEqual({ resources: ["device:hsm-a1"], fencingToken: 42 }); // a lock counter is public

    const headHash = records[8]!.hash;
    expect(verifyEvidence(records)).toEqual({ ok: true, count: 9, headHash, jobId: log.jobId });
    expect(await verifyEvidenceFile(log.filePath)).toEqual({
      ok: true,
      count: 9,
      headHash,
      jobId: log.jobId,
    });
    expect(await log.verify()).toEqual({ ok: true, count: 9, headHash, jobId: log.jobId });
    expect(fileLines(log)).toEqual(records.map(serializeRecord));
    expect(log.head).toEqual({ seq: 9, hash: headHash });
  });

  it("detects one changed byte, a removed record, swapped records, a torn line, a forged record", async () => {
    const log = await EvidenceLog.open(redis.client(), dataDir, newJobId("tamper"));
    await writeRealisticJob(log);

    // One byte of the recorded device reply (record 5): the serial number.
    const changed = await verifyTampered(log, (l) =>
      l.map((x, i) => (i === 5 ? x.replace("1238712", "1238713") : x)),
    );
    expect(changed).toMatchObject({ ok: false, index: 5, problem: "hash mismatch" });

    const removed = await verifyTampered(log, (l) => l.filter((_, i) => i !== 3));
    expect(removed).toMatchObject({ ok: false, index: 3, problem: "sequence gap" });

    const swapped = await verifyTampered(log, (l) => [l[0]!, l[1]!, l[3]!, l[2]!, ...l.slice(4)]);
    expect(swapped).toMatchObject({ ok: false, index: 2, problem: "reordered" });

    const torn = await verifyTampered(log, (l) => l.map((x, i) => (i === 7 ? x.slice(0, 40) : x)));
    expect(torn).toMatchObject({ ok: false, index: 7, problem: "unparseable" });

    const dup = await verifyTampered(log, (l) => [...l.slice(0, 5), l[4]!, ...l.slice(5)]);
    expect(dup).toMatchObject({ ok: false, index: 5, problem: "duplicate" });

    // A forger who rewrites record 6 and recomputes its hash still breaks the chain at record 7.
    const forged = await verifyTampered(log, (l) =>
      l.map((x, i) => {
        if (i !== 6) return x;
        const rec = JSON.parse(x);
        rec.data.firmware = "7.9.0";
        rec.hash = computeRecordHash(rec);
        return serializeRecord(rec);
      }),
    );
    expect(forged).toMatchObject({ ok: false, index: 7, problem: "broken chain" });

    const firstGone = await verifyTampered(log, (l) => l.slice(1));
    expect(firstGone).toMatchObject({ ok: false, index: 0, problem: "sequence gap" });

    // Dropping the tail leaves a valid prefix on its own, but not against the Redis copy.
    writeFileSync(log.filePath, `${fileLines(log).slice(0, 8).join("\n")}\n`);
    expect(await verifyEvidenceFile(log.filePath)).toMatchObject({ ok: true, count: 8 });
    expect(await verifyJobEvidence(redis.client(), dataDir, log.jobId)).toMatchObject({
      ok: false,
      index: 8,
      problem: "missing records",
      where: "both",
    });
  });

  it("detects a tampered Redis copy, and refuses to append to it", async () => {
    const client = redis.client();
    const log = await EvidenceLog.open(client, dataDir, newJobId("redis-tamper"));
    await writeRealisticJob(log);
    const keys = evidenceKeys(log.jobId);
    const line = (await client.lindex(keys.records, 3))!;
    await client.lset(keys.records, 3, line.replace('"started"', '"skipped"'));
    expect(await verifyJobEvidence(client, dataDir, log.jobId)).toMatchObject({
      ok: false,
      index: 3,
      problem: "hash mismatch",
      where: "redis",
    });
    const err = await EvidenceLog.open(client, dataDir, log.jobId).catch((e) => e);
    expect(err).toBeInstanceOf(EvidenceTamperedError);
    expect(err.message).toContain("record 3: hash mismatch");
  });

  it("concurrent appenders on two connections never fork the chain", async () => {
    const jobId = newJobId("concurrent");
    const a = await EvidenceLog.open(redis.client(), dataDir, jobId);
    const b = await EvidenceLog.open(redis.client(), dataDir, jobId);
    // Fire everything at once: both logs start from the same head, and each log has many appends in flight.
    await Promise.all([
      ...Array.from({ length: 20 }, (_, i) => a.append("note", { i }, "writer-a")),
      ...Array.from({ length: 20 }, (_, i) => b.append("note", { i }, "writer-b")),
    ]);
    const records = await a.records();
    expect(records).toHaveLength(40);
    expect(records.map((r) => r.seq)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(verifyEvidence(records, jobId)).toMatchObject({ ok: true, count: 40 });
    // Both writers made it in, each of its 20 records exactly once.
    for (const actor of ["writer-a", "writer-b"]) {
      const mine = records.filter((r) => r.actor === actor).map((r) => (r.data as { i: number }).i);
      expect(mine.sort((x, y) => x - y)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    }
    expect(await a.verify()).toMatchObject({ ok: true, count: 40 });
    expect(fileLines(a)).toEqual(records.map(serializeRecord));
  });

  it("open and verify read the list and its head together: a writer between two of their reads breaks nothing", async () => {
    const jobId = newJobId("interleaved");
    const writer = await EvidenceLog.open(redis.client(), dataDir, jobId);
    for (let i = 0; i < 3; i++) await writer.append("note", { i }, "writer");
    // The reader's connection runs its read commands one after another and lets the writer append one record
    // between any two: a reader that took the list and the head in two commands (even sent together) sees a head
    // one ahead of its list.
    const reads = new Set(["lrange", "hmget", "hget", "hgetall", "llen", "evalsha", "eval"]);
    const target = redis.client();
    let previous: Promise<unknown> | undefined;
    const interleaved = new Proxy(target, {
      get(t, prop) {
        const value = Reflect.get(t, prop, t) as unknown;
        if (typeof value !== "function") return value;
        if (!reads.has(String(prop))) return value.bind(t);
        return (...args: unknown[]) => {
          const before = previous;
          const call = (async () => {
            if (before) {
              await before.catch(() => {});
              await writer.append("note", { between: String(prop) }, "writer");
            }
            return (value as (...a: unknown[]) => unknown).apply(t, args);
          })();
          previous = call;
          return call;
        };
      },
    });
    const reader = await EvidenceLog.open(interleaved, dataDir, jobId);
    expect(reader.knownRecords().length).toBeGreaterThanOrEqual(3);
    previous = undefined;
    expect(await verifyJobEvidence(interleaved, dataDir, jobId)).toMatchObject({ ok: true });
    expect(await writer.verify()).toMatchObject({ ok: true });
  });

  it("never stores a secret: registered values, secret-named fields, actors, errors", async () => {
    const soPassword = new Secret("Hsm-S0-Passw0rd!", "env:HSM_SO_PASSWORD");
    const log = await EvidenceLog.open(redis.client(), dataDir, newJobId("secrets"));
    await log.append("command", {
      device: "hsm-a1",
      command: "hsm show",
      echo: `typed ${soPassword.reveal()} by mistake`,
    });
    await log.append("guard", {
      role: "so",
      password: "unregistered-Pw-991",
      soPin: "4711-0815",
      outcome: "ok",
    });
    await log.append("note", {
      nested: [{ auth: { apiKey: "AKIA-not-registered", client_secret: "cs-123456" } }],
    });
    await log.append("error", {
      error: new Error(`login failed with ${soPassword.reveal()}`),
      secret: soPassword,
    });
    await log.append("approval", { approved: true }, `alice ${soPassword.reveal()}`);
    await log.append("result", { ok: true });

    const fileText = readFileSync(log.filePath, "utf8");
    const redisText = (await redis.client().lrange(evidenceKeys(log.jobId).records, 0, -1)).join("\n");
    for (const text of [fileText, redisText]) {
      for (const secret of [
        "Hsm-S0-Passw0rd!",
        "unregistered-Pw-991",
        "4711-0815",
        "AKIA-not-registered",
        "cs-123456",
      ]) {
        expect(text).not.toContain(secret);
      }
      expect(text).toContain("[REDACTED]");
    }
    const records = await log.records();
    expect(records[0]!.data).toMatchObject({ echo: "typed [REDACTED] by mistake" });
    expect(records[1]!.data).toEqual({
      role: "so",
      password: "[REDACTED]",
      soPin: "[REDACTED]",
      outcome: "ok",
    });
    expect(records[3]!.data).toMatchObject({ error: { message: "login failed with [REDACTED]" } });
    expect(records[4]!.actor).toBe("alice [REDACTED]");
    expect(await log.verify()).toMatchObject({ ok: true, count: 6 });
  });

  it("brings a lagging copy level on open, and refuses copies that diverge", async () => {
    const client = redis.client();
    const jobId = newJobId("reconcile");
    const log = await EvidenceLog.open(client, dataDir, jobId);
    await writeRealisticJob(log);
    const full = fileLines(log);
    const keys = evidenceKeys(jobId);

    // The process died between the Redis append and the file write: the file lacks the last two records.
    writeFileSync(log.filePath, `${full.slice(0, 7).join("\n")}\n`);
    const reopened = await EvidenceLog.open(client, dataDir, jobId);
    expect(fileLines(reopened)).toEqual(full);

    // Redis lost its last records (e.g. the last second of AOF after a host crash): restored from the file.
    await client.ltrim(keys.records, 0, 5);
    await client.hset(keys.head, "seq", 6, "hash", JSON.parse(full[5]!).hash);
    const restored = await EvidenceLog.open(client, dataDir, jobId);
    expect((await restored.records()).map(serializeRecord)).toEqual(full);
    expect(restored.head.seq).toBe(9);
    await restored.append("note", { after: "restore" });
    expect(await restored.verify()).toMatchObject({ ok: true, count: 10 });

    // Diverged: a different valid record 10 in the file than in Redis.
    const other = JSON.parse(fileLines(restored)[9]!);
    other.data = { after: "something else" };
    other.hash = computeRecordHash(other);
    writeFileSync(log.filePath, `${[...full, serializeRecord(other)].join("\n")}\n`);
    const err = await EvidenceLog.open(client, dataDir, jobId).catch((e) => e);
    expect(err).toBeInstanceOf(EvidenceTamperedError);
    expect(err.verification).toMatchObject({ index: 9, problem: "copies differ" });
  });

  it("keeps the chain across a Redis restart mid-run", async () => {
    const log = await EvidenceLog.open(redis.client(), dataDir, newJobId("restart"));
    await log.append("step", { id: "one", state: "done" });
    await redis.restart();
    await log.append("step", { id: "two", state: "done" });
    await log.append("result", { ok: true });
    expect(await log.verify()).toMatchObject({ ok: true, count: 3 });
  });
});
