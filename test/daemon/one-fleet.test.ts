// One fleet per Redis: a daemon whose fleet digest differs from the one the running daemons run refuses to start,
// naming both fleet files and digests; --replace-fleet starts it anyway, records the replacement as evidence, and the
// daemon that ran the old fleet stops taking jobs. The same fleet again is welcome (more workers).
import { afterAll, describe, expect, it } from "vitest";
import { DEMO_FLEET_FILE } from "../../src/cli/demo.ts";
import { loadFleet } from "../../src/config/load.ts";
import type { Fleet } from "../../src/config/schema.ts";
import { type Daemon, startDaemon } from "../../src/daemon/daemon.ts";
import { FleetConflict, liveDaemons } from "../../src/daemon/fleet-claim.ts";
import { createLogger } from "../../src/daemon/logger.ts";
import { EvidenceLog } from "../../src/evidence/log.ts";
import { fleetDigest } from "../../src/queue/jobs.ts";
import { withRedis } from "../helpers/redis.ts";

const redis = await withRedis();
const started: Daemon[] = [];
afterAll(async () => {
  for (const d of started.reverse()) await d.stop();
});

const start = async (fleet: Fleet, name: string, extra: Partial<Parameters<typeof startDaemon>[0]> = {}) => {
  const d = await startDaemon({
    fleet,
    fleetName: name,
    redisUrl: redis.url,
    dataDir: redis.dataDir,
    concurrency: 1,
    httpPort: null,
    api: null,
    log: createLogger({ level: "silent" }),
    fleetHeartbeatMs: 50,
    workerId: `d-${started.length + 1}`,
    ...extra,
  });
  started.push(d);
  return d;
};

describe("one fleet per Redis", () => {
  it("refuses another fleet naming both files and digests; --replace-fleet replaces it, with evidence", async () => {
    const demo = loadFleet(DEMO_FLEET_FILE);
    const other: Fleet = { ...demo, defaults: { ...demo.defaults, certExpiryWarnDays: 10 } };
    const first = await start(demo, "/etc/lunafleet/prod.yaml");
    // The same fleet: a second daemon is just more workers.
    await start(demo, "/etc/lunafleet/prod.yaml");
    expect((await liveDaemons(redis.client())).map((d) => d.digest)).toEqual([
      fleetDigest(demo),
      fleetDigest(demo),
    ]);

    const refused = await start(other, "/tmp/other.yaml").catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(FleetConflict);
    const message = (refused as Error).message;
    expect(message).toContain(`/etc/lunafleet/prod.yaml (digest ${fleetDigest(demo)}`);
    expect(message).toContain(`this daemon's fleet is /tmp/other.yaml (digest ${fleetDigest(other)})`);
    expect(message).toContain("--replace-fleet");
    // Nothing of the refused daemon's fleet was published.
    expect(
      JSON.parse((await redis.client().get("lunafleet:daemon:fleet"))!).defaults.certExpiryWarnDays,
    ).toBe(30);

    const replacing = await start(other, "/tmp/other.yaml", { replaceFleet: true });
    expect(replacing.fleet).toBe(other);
    const ids = await redis.client().keys("lunafleet:evidence:{fleet-replace-*}*");
    expect(ids.length).toBeGreaterThan(0);
    const evidenceId = /\{(fleet-replace-\d+)\}/.exec(ids[0]!)![1]!;
    const records = await (await EvidenceLog.open(redis.client(), redis.dataDir, evidenceId)).records();
    expect(records[0]).toMatchObject({
      kind: "note",
      data: { event: "fleet-replaced", to: { fleetFile: "/tmp/other.yaml" } },
    });
    expect(JSON.stringify(records[0]!.data)).toContain(fleetDigest(demo));
    // The daemon of the old fleet sees the replacement at its next heartbeat and takes no more jobs.
    // (Awaited with no deadline of its own, which load could beat: the test's timeout is the hang guard.)
    while (!first.worker.worker.isPaused()) await new Promise((r) => setTimeout(r, 20));
  });
});
