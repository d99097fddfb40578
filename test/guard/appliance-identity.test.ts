// One appliance, one budget: the device lock and the guard ledger are keyed by what identifies the appliance (the
// serial it reports and where it answers, host:port), not by a fleet file's name for it. Two fleet files that call
// one appliance by two names share one lock and one ledger; the listing keeps the names for people.
import { describe, expect, it } from "vitest";
import { parseFleet } from "../../src/config/load.ts";
import { applianceIdentity, deviceLockResource, getDevice } from "../../src/config/model.ts";
import type { Fleet } from "../../src/config/schema.ts";
import { acquireDeviceLocks, LockUnavailableError } from "../../src/coord/locks.ts";
import { LoginLedger, ledgerKeyFor } from "../../src/guard/ledger.ts";
import { GUARD_FLEET_YAML } from "../helpers/guard.ts";
import { withRedis } from "../helpers/redis.ts";

const redis = await withRedis();

function fleetOf(yaml: string): Fleet {
  const parsed = parseFleet(yaml);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
  return parsed.fleet;
}
const fleetA = fleetOf(GUARD_FLEET_YAML);
// The second team's fleet file calls hsm-g1 "pay-primary" and its partition "payments"; same box, same address.
const fleetB = fleetOf(GUARD_FLEET_YAML.replaceAll("hsm-g1", "pay-primary").replaceAll("par-g1", "payments"));

describe("one appliance, one budget", () => {
  it("two names for one appliance take one lock", async () => {
    const a = getDevice(fleetA, "hsm-g1");
    const b = getDevice(fleetB, "pay-primary");
    expect(applianceIdentity(a)).toBe("700501@127.0.0.1:2222");
    expect(deviceLockResource(b)).toBe(deviceLockResource(a));
    // Another appliance (other serial, other address) is another lock.
    expect(deviceLockResource(getDevice(fleetA, "hsm-g2"))).not.toBe(deviceLockResource(a));

    const held = await acquireDeviceLocks(redis.client(), [deviceLockResource(a)], {
      owner: "job-fleet-a",
      ttlMs: 5000,
      waitMs: 0,
    });
    await expect(
      acquireDeviceLocks(redis.client(), [deviceLockResource(b)], {
        owner: "job-fleet-b",
        ttlMs: 5000,
        waitMs: 0,
      }),
    ).rejects.toBeInstanceOf(LockUnavailableError);
    await held.release();
  });

  it("two names for one appliance share one ledger: a quarantine under one name stops the other", async () => {
    const ledger = new LoginLedger(redis.client());
    const viaA = ledgerKeyFor(fleetA, "hsm-g1", "co", "par-g1");
    const viaB = ledgerKeyFor(fleetB, "pay-primary", "co", "payments");
    expect(await ledger.quarantine(viaA, "wrong CO password (job x)", "job-x")).toMatchObject({ ok: true });
    expect(await ledger.get(viaB)).toMatchObject({ quarantined: true, quarantineJob: "job-x" });
    // The other name cannot begin an attempt: same entry, same quarantine.
    expect(await ledger.begin(viaB, "job-y:1", { maxPriorFailures: 0 })).toMatchObject({
      ok: false,
      reason: "credential quarantined",
    });
    // One entry, listed with the names of the last writer and the identity it is keyed by.
    const entries = (await ledger.list()).filter((e) => e.appliance === "700501@127.0.0.1:2222");
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ role: "co", partitionSerial: "1700501000001", quarantined: true });
    expect(["hsm-g1", "pay-primary"]).toContain(entries[0]!.device);
  });
});
