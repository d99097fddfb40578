import { describe, expect, it } from "vitest";
import { Secret } from "../../src/config/secret.ts";
import { RedisCheckpointStore } from "../../src/engine/checkpoints.ts";
import { CheckpointConflict } from "../../src/engine/errors.ts";
import { withRedis } from "../helpers/redis.ts";

const redis = await withRedis();
const timing = (title: string) => ({
  title,
  startedAt: "2026-01-01T00:00:00.000Z",
  finishedAt: "2026-01-01T00:00:01.000Z",
});

describe("RedisCheckpointStore", () => {
  it("records finished steps in order and reads them back", async () => {
    const store = new RedisCheckpointStore(redis.client());
    await store.recordStepResult("job-1", "b", { n: 2 }, timing("B"));
    await store.recordStepResult("job-1", "a:hsm-a1", { n: 1, list: [1, "x", null] }, timing("A"));
    const done = await store.finishedSteps("job-1");
    expect([...done.keys()]).toEqual(["b", "a:hsm-a1"]);
    expect(done.get("a:hsm-a1")).toEqual({
      stepId: "a:hsm-a1",
      ...timing("A"),
      result: { n: 1, list: [1, "x", null] },
    });
    expect((await store.finishedSteps("job-other")).size).toBe(0);
  });

  it("refuses to overwrite a finished step, and keeps the first result", async () => {
    const store = new RedisCheckpointStore(redis.client());
    await store.recordStepResult("job-2", "s", { v: "first" }, timing("S"));
    await expect(store.recordStepResult("job-2", "s", { v: "second" }, timing("S"))).rejects.toBeInstanceOf(
      CheckpointConflict,
    );
    const done = await store.finishedSteps("job-2");
    expect(done.get("s")?.result).toEqual({ v: "first" });
    expect(done.size).toBe(1);
  });

  it("takes the very same record again (a command resent after a dropped connection), once in the order", async () => {
    const store = new RedisCheckpointStore(redis.client());
    await store.recordStepResult("job-2b", "s", { v: "only" }, timing("S"));
    await store.recordStepResult("job-2b", "s", { v: "only" }, timing("S"));
    const order = await redis.client().lrange("lunafleet:job:{job-2b}:checkpoint-order", 0, -1);
    expect(order).toEqual(["s"]);
    // Another finish time is another run of the step: refused.
    await expect(
      store.recordStepResult(
        "job-2b",
        "s",
        { v: "only" },
        { ...timing("S"), finishedAt: "2026-01-01T00:00:02.000Z" },
      ),
    ).rejects.toBeInstanceOf(CheckpointConflict);
  });

  it("lets exactly one of many concurrent writers finish a step", async () => {
    const stores = Array.from({ length: 8 }, () => new RedisCheckpointStore(redis.client()));
    const outcomes = await Promise.allSettled(
      stores.map((s, i) => s.recordStepResult("job-3", "race", { writer: i }, timing("race"))),
    );
    expect(outcomes.filter((o) => o.status === "fulfilled")).toHaveLength(1);
    expect(outcomes.filter((o) => o.status === "rejected")).toHaveLength(7);
    const order = await redis.client().lrange("lunafleet:job:{job-3}:checkpoint-order", 0, -1);
    expect(order).toEqual(["race"]);
  });

  it("stores results redacted: no secret value reaches Redis", async () => {
    const secret = new Secret("Ckpt-Secret-Value-42", "literal");
    const store = new RedisCheckpointStore(redis.client());
    await store.recordStepResult(
      "job-4",
      "s",
      { secret, echoed: `password was ${secret.reveal()}`, nested: [{ v: secret.reveal() }] },
      timing("S"),
    );
    const raw = await redis.client().hget("lunafleet:job:{job-4}:checkpoints", "s");
    expect(raw).not.toContain("Ckpt-Secret-Value-42");
    const done = await store.finishedSteps("job-4");
    expect(done.get("s")?.result).toEqual({
      secret: "[REDACTED]",
      echoed: "password was [REDACTED]",
      nested: [{ v: "[REDACTED]" }],
    });
  });

  it("survives a Redis restart (AOF) and can be deleted", async () => {
    const store = new RedisCheckpointStore(redis.client());
    await store.recordStepResult("job-5", "s", { ok: true }, timing("S"));
    await redis.restart();
    const after = new RedisCheckpointStore(redis.client());
    expect((await after.finishedSteps("job-5")).get("s")?.result).toEqual({ ok: true });
    await after.deleteJob("job-5");
    expect((await after.finishedSteps("job-5")).size).toBe(0);
  });
});
