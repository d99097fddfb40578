// The fact store's subject index (lunafleet:facts:subjects): a store adds a subject once, not on every observation,
// and adds it again after INDEX_REFRESH_MS, so an index Redis lost fills again while the daemon runs. The clock is
// injected; the Redis is real.
import { describe, expect, it } from "vitest";
import type { Observation } from "../../src/facts/model.ts";
import { RedisFactStore } from "../../src/facts/store.ts";
import { withRedis } from "../helpers/redis.ts";

const redis = await withRedis();

const seen = (subject: string, summary: string, observedAt: string): Observation => ({
  subject,
  fact: "software",
  status: "ok",
  summary,
  observedAt,
  jobId: "patch-verify-test",
  by: "patch-verify",
});

describe("RedisFactStore subject index", () => {
  it("adds a subject once, then again after ten minutes; every observation is stored meanwhile", async () => {
    const r = redis.client();
    let now = 1_000_000;
    const store = new RedisFactStore(r, () => now);
    const sadds: string[][] = [];
    const mon = await (r.duplicate() as unknown as { monitor(): Promise<NodeJS.EventEmitter> }).monitor();
    let sawMarker: () => void = () => {};
    const marker = new Promise<void>((resolve) => {
      sawMarker = resolve;
    });
    mon.on("monitor", (_t: string, args: string[]) => {
      if (args[0]?.toLowerCase() === "sadd") sadds.push(args.slice(2));
      if (args[0]?.toLowerCase() === "echo" && args[1] === "store-test-end") sawMarker();
    });

    await store.record([seen("device:hsm-a1", "7.2.0-220", "2026-12-04T10:00:00.000Z")]);
    expect(await r.smembers("lunafleet:facts:subjects")).toEqual(["device:hsm-a1"]);
    // Redis loses the index (a failover to a replica that had not seen it).
    await r.del("lunafleet:facts:subjects");
    now += 9 * 60_000;
    await store.record([
      seen("device:hsm-a1", "7.2.0-221", "2026-12-04T10:09:00.000Z"),
      seen("device:hsm-a2", "7.2.0-220", "2026-12-04T10:09:00.000Z"),
    ]);
    // Only the subject this store had not indexed yet went out; the observation itself was stored.
    expect(await r.smembers("lunafleet:facts:subjects")).toEqual(["device:hsm-a2"]);
    expect((await store.read("device:hsm-a1")).software?.summary).toBe("7.2.0-221");
    now += 60_000;
    await store.record([seen("device:hsm-a1", "7.2.0-222", "2026-12-04T10:10:00.000Z")]);
    expect((await r.smembers("lunafleet:facts:subjects")).sort()).toEqual(["device:hsm-a1", "device:hsm-a2"]);
    // MONITOR streams commands in the order they ran: once it shows this one, it has shown every SADD before it.
    await r.echo("store-test-end");
    await marker;
    expect(sadds).toEqual([["device:hsm-a1"], ["device:hsm-a2"], ["device:hsm-a1"]]);
    (mon as unknown as { disconnect(): void }).disconnect();
  });
});
