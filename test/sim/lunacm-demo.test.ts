import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseFleet } from "../../src/config/load.ts";
import { createApplianceState } from "../../src/sim/appliance/factory.ts";
import { createClientHostTwin } from "../../src/sim/client/index.ts";
import type { ApplianceState } from "../../src/sim/state.ts";
import { exec, lunacmQ } from "./lunacm-fixture.ts";

describe("client hosts of the demo fleet", () => {
  it("show the problems the demo plants: a stale server certificate, a down member, a foreign cloning domain", async () => {
    const parsed = parseFleet(readFileSync(new URL("../../config/demo.yaml", import.meta.url), "utf8"));
    if (!parsed.ok) throw new Error("demo fleet does not parse");
    const fleet = parsed.fleet;
    const appliances = new Map<string, ApplianceState>();
    for (const dev of fleet.devices) appliances.set(dev.name, await createApplianceState(fleet, dev));
    const a = await createClientHostTwin(
      fleet,
      fleet.clientHosts.find((c) => c.name === "client-a")!,
      appliances,
    );
    const b = await createClientHostTwin(
      fleet,
      fleet.clientHosts.find((c) => c.name === "client-b")!,
      appliances,
    );

    // client-a cannot reach hsm-a1 (stale server.pem): its member fails out, and recover cannot help.
    expect(a.linkTo("hsm-a1")).toEqual({ ok: false, fault: "server-cert-untrusted" });
    expect(lunacmQ(a, "hagroup listgroups").output).toMatch(/ {5}- {4}1700101000001 +par-pay +down/);
    expect(lunacmQ(a, "hagroup recover").exitCode).toBe(1);
    // Synchronize between the reachable members hsm-a2 (payments) and hsm-a3 (legacy-lab) warns.
    expect(
      lunacmQ(a, "hagroup synchronize -group ha-payments -password CryptoOff-A2-secret").output,
    ).toContain(
      "Warning: Synchronize may fail.  The members in slot 0 and slot 1 have conflicting settings for private key cloning.",
    );
    expect(exec(a, "vtl verify").output).toContain("Unable to communicate with server 127.0.1.1");

    // client-b: hsm-b2's member starts down and comes back with recover.
    expect(lunacmQ(b, "hagroup listgroups").output).toMatch(/ {5}1 {4}1700202000001 +par-tok +down/);
    expect(lunacmQ(b, "hagroup recover -group ha-tokens").exitCode).toBe(0);
    expect(lunacmQ(b, "hagroup listgroups").output).toMatch(/ {5}1 {4}1700202000001 +par-tok +alive/);
    expect(b.haSettings).toEqual({ retryCount: 0, intervalSeconds: 60 });
  });
});
