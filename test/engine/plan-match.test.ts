// The plan = run matcher (src/engine/plan-match.ts) on its own: what it accepts and what it flags as unplanned.
import { describe, expect, it } from "vitest";
import { type SentCommand, unplannedAzureResources, unplannedCommands } from "../../src/engine/plan-match.ts";
import type { PlannedCommand } from "../../src/engine/runbook.ts";

const plan = (...commands: PlannedCommand[]) => ({ steps: [{ commands }] });
const lunacm = (command: string, on = "client-b"): SentCommand => ({ via: "lunacm", on, command });

describe("unplannedCommands", () => {
  it("matches word for word on the same channel and target; the trailing note and extra blanks do not count", () => {
    const p = plan({
      via: "lunacm",
      on: "client-b",
      command: "hagroup recover -group ha-tokens   (only if down)",
    });
    expect(unplannedCommands(p, [lunacm("hagroup  recover -group ha-tokens")])).toEqual([]);
    expect(unplannedCommands(p, [lunacm("hagroup recover -group ha-payments")])).toHaveLength(1);
    expect(unplannedCommands(p, [lunacm("hagroup recover -group ha-tokens", "client-a")])).toHaveLength(1);
    expect(
      unplannedCommands(p, [{ via: "host", on: "client-b", command: "hagroup recover -group ha-tokens" }]),
    ).toHaveLength(1);
  });

  it("a <placeholder> stands for the one word the run fills in, and only there", () => {
    const p = plan({ via: "lunacm", on: "client-b", command: "slot set -slot <slot of hsm-b1/par-tok>" });
    expect(unplannedCommands(p, [lunacm("slot set -slot 4")])).toEqual([]);
    expect(unplannedCommands(p, [lunacm("slot set -slot 4 -password x")])).toHaveLength(1); // one word, no more
    expect(unplannedCommands(p, [lunacm("slot list")])).toHaveLength(1);
  });

  it("a planned guard login stands for the guard's own reads and the login, on the session and the device", () => {
    const p = plan({
      via: "lunacm",
      on: "client-b",
      command: "role login -name co   (login guard)",
      guard: { device: "hsm-b1", role: "co", partition: "par-tok" },
    });
    const guardSends = [
      lunacm("slot list"),
      lunacm("slot set -slot 3"),
      lunacm("partition showinfo"),
      lunacm("role show -name co"),
      { via: "lunash" as const, on: "hsm-b1", command: "hsm showPolicies" },
      lunacm("role login -name co"),
    ];
    expect(unplannedCommands(p, guardSends)).toEqual([]);
    expect(
      unplannedCommands(p, [{ via: "lunash" as const, on: "hsm-b2", command: "hsm showPolicies" }]),
    ).toHaveLength(1);
    expect(unplannedCommands(p, [lunacm("role login -name po")])).toHaveLength(1);
  });

  it("shell quoting is not part of the command: the device logs the words it received", () => {
    const p = plan({ via: "host", on: "client-a", command: "cat > /tmp/x.pem <<'END'   (the certificate)" });
    expect(
      unplannedCommands(p, [{ via: "host", on: "client-a", command: "cat > /tmp/x.pem <<END" }]),
    ).toEqual([]);
  });
});

describe("unplannedAzureResources", () => {
  const rg = "/subscriptions/s1/resourceGroups/rg-x";
  const p = plan(
    { via: "azure", on: "https://pool.example/", command: "GET keys (prose)" },
    { via: "azure", on: rg, command: "DELETE, then poll" },
  );
  it("a resource the plan names, one under it, or one named relative to the subscription", () => {
    expect(
      unplannedAzureResources(p, [
        "https://pool.example/",
        "https://pool.example/keys/k1",
        "resourceGroups/rg-x",
        rg,
      ]),
    ).toEqual([]);
  });
  it("anything else is unplanned", () => {
    expect(
      unplannedAzureResources(p, ["resourceGroups/rg-y", "https://other.example/keys/k1", "rg-x"]),
    ).toEqual(["resourceGroups/rg-y", "https://other.example/keys/k1", "rg-x"]);
  });
});
