// The worker's evidence write path (group commit, src/evidence/log.ts header): write-ahead records commit everything
// before them at once, other records wait for the next batch, close() makes the file whole and fsynced and runs the
// seal hooks, a Redis that lost acknowledged records gets them back, a Redis that took other records is a fork.
// All against a real redis-server and the real data dir.
import { existsSync, readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  buildRecord,
  computeRecordHash,
  EvidenceLog,
  type EvidenceRecord,
  evidenceKeys,
  genesisHash,
  serializeRecord,
  verifyJobEvidence,
} from "../../src/evidence/index.ts";
import { openMirrorCount } from "../../src/evidence/log.ts";
import {
  checkEvidenceSignatures,
  loadOrCreateSigner,
  localTrustedKeys,
  sealEvidence,
} from "../../src/evidence/signing.ts";
import { withRedis } from "../helpers/redis.ts";

const redis = await withRedis();
const dataDir = redis.dataDir;
let uniq = 0;
const newJobId = (name: string) => `job-gc-${name}-${++uniq}`;

const lines = (path: string) =>
  existsSync(path) ? readFileSync(path, "utf8").trimEnd().split("\n").filter(Boolean) : [];

describe("evidence group commit", () => {
  it("keeps a job's file mirror only while one of its logs is open (a long-running worker keeps none per past job)", async () => {
    const client = redis.client();
    const before = openMirrorCount();
    const id = newJobId("mirrors");
    const first = await EvidenceLog.open(client, dataDir, id, { groupCommit: true });
    const second = await EvidenceLog.open(client, dataDir, id, { groupCommit: true });
    expect(openMirrorCount()).toBe(before + 1);
    await first.append("requested", { runbook: "patch-verify" }, "alice");
    await first.close();
    expect(openMirrorCount()).toBe(before + 1);
    await second.close();
    expect(openMirrorCount()).toBe(before);
    for (let i = 0; i < 20; i++) {
      const log = await EvidenceLog.open(client, dataDir, newJobId("many"), { groupCommit: true });
      await log.append("requested", { runbook: "tcp-check" }, "alice");
      await log.close();
    }
    expect(openMirrorCount()).toBe(before);
    expect((await verifyJobEvidence(client, dataDir, id)).ok).toBe(true);
  });

  it("holds records until a write-ahead record, which commits them all in order before it resolves", async () => {
    const client = redis.client();
    const log = await EvidenceLog.open(client, dataDir, newJobId("barrier"), { groupCommit: true });
    await log.append("requested", { runbook: "patch-verify" }, "alice");
    await log.append("plan", { steps: ["hsm-show"] });
    await log.append("step", { step: "hsm-show", event: "started" });
    // Not on the chain yet: nothing precedes an action so far.
    expect(await client.llen(evidenceKeys(log.jobId).records)).toBe(0);
    await log.append("command", { on: "hsm-a1", command: "hsm show" });
    const records = await log.records();
    expect(records.map((r) => r.kind)).toEqual(["requested", "plan", "step", "command"]);
    expect(records.map((r) => r.seq)).toEqual([1, 2, 3, 4]);
    expect(log.head).toEqual({ seq: 4, hash: records[3]!.hash });
    // The file follows in batches: not yet written.
    expect(lines(log.filePath)).toEqual([]);
    await log.append("reply", { raw: "Command Result : 0 (Success)" });
    await log.append("result", { status: "succeeded" });
    const sealed = await log.close();
    expect(sealed).toMatchObject({ jobId: log.jobId, seq: 6 });
    expect(lines(log.filePath)).toEqual((await log.records()).map(serializeRecord));
    expect(await verifyJobEvidence(client, dataDir, log.jobId)).toMatchObject({ ok: true, count: 6 });
    await expect(log.append("note", {})).rejects.toThrow(/append after close/);
  });

  it("commits a batch on its own after batchMs, and throws a failed background commit at the next append", async () => {
    const client = redis.client();
    const log = await EvidenceLog.open(client, dataDir, newJobId("timer"), { groupCommit: true, batchMs: 0 });
    const keys = evidenceKeys(log.jobId);
    const committed = (n: number) =>
      new Promise<void>((resolve) => {
        const poll = async () => {
          if ((await client.llen(keys.records)) === n) resolve();
          else setImmediate(poll);
        };
        void poll();
      });
    await log.append("note", { n: 1 });
    await committed(1);
    expect((await log.records())[0]?.kind).toBe("note");
    // Break the chain's bookkeeping under it: the next background commit fails, and says so at the next append.
    await client.hset(keys.head, "seq", 7);
    await log.append("note", { n: 2 });
    await expect(
      new Promise<void>((_resolve, reject) => {
        const poll = () => log.append("note", { n: 3 }).then(() => setImmediate(poll), reject);
        poll();
      }),
    ).rejects.toThrow(/Redis list and head disagree/);
    expect(await client.llen(keys.records)).toBe(1);
  });

  it("a head-bound record (the daemon's signature) signs the record it really follows, batched ones included", async () => {
    const log = await EvidenceLog.open(redis.client(), dataDir, newJobId("sign"), { groupCommit: true });
    await log.append("result", { status: "succeeded" });
    await log.append("lock", { event: "released" });
    const signer = loadOrCreateSigner(dataDir);
    await sealEvidence(log, signer);
    const sealed = await log.close();
    expect(sealed.seq).toBe(3);
    const records = (await log.records()) as EvidenceRecord[];
    expect(records.map((r) => r.kind)).toEqual(["result", "lock", "signature"]);
    const keys = await localTrustedKeys(dataDir);
    // An intermediate seal (the log is not marked finished): a sealed log, not a finished job's.
    expect(checkEvidenceSignatures(records, keys, { require: "sealed" })).toMatchObject({
      ok: true,
      signatures: 1,
    });
    const file = lines(log.filePath).map((l) => JSON.parse(l) as EvidenceRecord);
    expect(checkEvidenceSignatures(file, keys, { require: "sealed" })).toMatchObject({
      ok: true,
      signatures: 1,
    });
    // Idempotent, and closed for good.
    expect(await log.close()).toEqual(sealed);
  });

  it("puts back records Redis lost (a failover to a replica that lagged), then goes on", async () => {
    const client = redis.client();
    const log = await EvidenceLog.open(client, dataDir, newJobId("rollback"), { groupCommit: true });
    for (let i = 1; i <= 5; i++) await log.append("command", { i });
    const before = await client.lrange(evidenceKeys(log.jobId).records, 0, -1);
    // Redis goes back to record 2 (what a replica that lagged 3 records would hold after a failover).
    const keys = evidenceKeys(log.jobId);
    await client.ltrim(keys.records, 0, 1);
    await client.hset(keys.head, "seq", 2, "hash", JSON.parse(before[1]!).hash);
    await log.append("command", { i: 6 });
    const after = await client.lrange(keys.records, 0, -1);
    expect(after.slice(0, 5)).toEqual(before);
    expect(after).toHaveLength(6);
    expect(await log.verify()).toMatchObject({ ok: true, count: 6 });
  });

  it("a batch whose reply was lost and that was sent again is taken as committed, not appended twice", async () => {
    const client = redis.client();
    // What ioredis does after a dropped connection: the command already ran, its reply is lost, it is sent again.
    const resending = new Proxy(client, {
      get(target, prop, receiver) {
        if (prop !== "evalsha") return Reflect.get(target, prop, receiver);
        return async (...args: Parameters<typeof client.evalsha>) => {
          await target.evalsha(...args);
          return target.evalsha(...args);
        };
      },
    });
    const log = await EvidenceLog.open(resending, dataDir, newJobId("resent"), { groupCommit: true });
    await log.append("step", { step: "a", event: "started" });
    await log.append("command", { command: "hsm show" });
    await log.append("result", { status: "succeeded" });
    await log.close();
    const records = await log.records();
    expect(records.map((r) => r.kind)).toEqual(["step", "command", "result"]);
    expect(await verifyJobEvidence(client, dataDir, log.jobId)).toMatchObject({ ok: true, count: 3 });
  });

  it("refuses to go on when Redis lost records and took different ones (a fork)", async () => {
    const client = redis.client();
    const jobId = newJobId("fork");
    const log = await EvidenceLog.open(client, dataDir, jobId, { groupCommit: true });
    for (let i = 1; i <= 3; i++) await log.append("command", { i });
    const keys = evidenceKeys(jobId);
    const kept = await client.lrange(keys.records, 0, 0);
    const first = JSON.parse(kept[0]!);
    // Redis lost records 2-3, and another writer appended its own record 2 on record 1.
    const { record: other, line } = buildRecord({
      seq: 2,
      jobId,
      at: new Date().toISOString(),
      kind: "note",
      data: { by: "someone else" },
      prevHash: first.hash,
    });
    await client.ltrim(keys.records, 0, 0);
    await client.rpush(keys.records, line);
    await client.hset(keys.head, "seq", 2, "hash", other.hash);
    await expect(log.append("command", { i: 4 })).rejects.toThrow(/Redis lost records and took others/);
  });

  it("buildRecord gives exactly the hash and line of computeRecordHash + serializeRecord", () => {
    const json = fc.jsonValue({ maxDepth: 3 });
    fc.assert(
      fc.property(
        fc.record(
          {
            seq: fc.integer({ min: 1, max: 1e6 }),
            at: fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
            kind: fc.constantFrom("command", "note", "step"),
            actor: fc.string(),
            data: json,
          },
          { requiredKeys: ["seq", "at", "kind", "data"] },
        ),
        (r) => {
          // JSON data as sanitize produces it (no -0, which JSON cannot tell from 0).
          const data = JSON.parse(JSON.stringify(r.data ?? null));
          const body = { ...r, data, jobId: "job-x", prevHash: genesisHash("job-x") };
          const { record, line } = buildRecord(body);
          expect(record.hash).toBe(computeRecordHash(body));
          expect(line).toBe(serializeRecord({ ...body, hash: record.hash }));
        },
      ),
      { numRuns: 300 },
    );
  });
});
