import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { EvidenceLog, serializeRecord } from "../../src/evidence/index.ts";
import { withRedis } from "../helpers/redis.ts";

const redis = await withRedis();
const writer = fileURLToPath(new URL("./fixtures/evidence-writer.ts", import.meta.url));

function run(args: string[]): Promise<void> {
  const child = spawn(process.execPath, ["--import", "tsx", writer, ...args], {
    env: { ...process.env, REDIS_URL: redis.url },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  return new Promise((resolve, reject) =>
    child.once("exit", (code) =>
      code === 0 ? resolve() : reject(new Error(`writer exit ${code}: ${stderr}`)),
    ),
  );
}

describe("evidence written by several processes at once", () => {
  it("Redis chain and the shared JSONL file stay identical and intact", async () => {
    const jobId = "job-multiproc";
    const c = redis.client();
    const done = Promise.all([
      run([redis.dataDir, jobId, "15", "worker:1"]),
      run([redis.dataDir, jobId, "15", "operator:alice"]),
    ]);
    while (Number(await c.get(`lf:test:ready:${jobId}`)) < 2) await new Promise((r) => setTimeout(r, 10));
    const local = await EvidenceLog.open(redis.client(), redis.dataDir, jobId);
    await c.set(`lf:test:go:${jobId}`, "1");
    await Promise.all([done, ...Array.from({ length: 10 }, (_, i) => local.append("note", { i }, "here"))]);

    const records = await local.records();
    expect(records).toHaveLength(40);
    const byActor = (a: string) => records.filter((r) => r.actor === a).length;
    expect([byActor("worker:1"), byActor("operator:alice"), byActor("here")]).toEqual([15, 15, 10]);
    expect(await local.verify()).toMatchObject({ ok: true, count: 40 });
    expect(readFileSync(local.filePath, "utf8")).toBe(records.map((r) => `${serializeRecord(r)}\n`).join(""));
  });
});
