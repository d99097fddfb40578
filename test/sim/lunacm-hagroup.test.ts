import { describe, expect, it } from "vitest";
import { buildHarness, CO_PASSWORD, interactive, lunacmQ } from "./lunacm-fixture.ts";

const SYNC_WARNING =
  "Warning: Synchronize may fail.  The members in slot 0 and slot 2 have conflicting settings for private key cloning.";

describe("lunacm hagroup on a client host twin", () => {
  it("lists the group in the §15 layout with the planted down member", async () => {
    const { twin } = await buildHarness({ membersDown: ["hsm-t2/par-pay"] });
    const r = lunacmQ(twin, "hagroup listgroups");
    expect(r.exitCode).toBe(0);
    expect(r.output).toBe(
      [
        "                   HA Group Label:  ha-pay",
        "                  HA Group Number:  11900001000001",
        "                 HA Group Slot ID:  3",
        "                  Synchronization:  enabled",
        "                    Group Members:  1900001000001, 1900002000001, 1900003000001",
        "                       Needs sync:  yes",
        "                  Standby Members:  <none>",
        "",
        "Slot #    Member S/N                      Member Label    Status",
        "======    ==========                      ============    ======",
        "     0    1900001000001                   par-pay         alive",
        "     1    1900002000001                   par-pay         down",
        "     2    1900003000001                   par-pay         alive",
        "",
        "Command Result : No Error",
        "",
      ].join("\n"),
    );
  });

  it("recover brings a down member back when its appliance is reachable", async () => {
    const { twin } = await buildHarness({ membersDown: ["hsm-t2/par-pay"] });
    const r = lunacmQ(twin, "hagroup recover -group ha-pay");
    expect(r.output).toContain("Command Result : No Error");
    expect(r.exitCode).toBe(0);
    expect(lunacmQ(twin, "hagroup listgroups").output).toMatch(/ {5}1 {4}1900002000001 +par-pay +alive/);
    expect(twin.haGroups[0]!.members.every((m) => !m.down)).toBe(true);
  });

  it("recover leaves down a member whose appliance is unreachable or has a persistent fault", async () => {
    const { twin, appliances } = await buildHarness();
    appliances.get("hsm-t3")!.ntls.listening = false;
    // Noticing the lost appliance takes the member down; it stays down even after NTLS is back, until recover.
    expect(lunacmQ(twin, "hagroup listgroups").output).toMatch(/ {5}- {4}1900003000001 +par-pay +down/);
    let r = lunacmQ(twin, "hagroup recover");
    expect(r.exitCode).toBe(1);
    expect(r.output).toContain(
      "member 1900003000001 of group ha-pay could not be recovered: connection refused",
    );
    expect(r.output).toContain("Command Result : 0x30 (CKR_DEVICE_ERROR)");

    appliances.get("hsm-t3")!.ntls.listening = true;
    expect(lunacmQ(twin, "hagroup listgroups").output).toMatch(/ {5}2 {4}1900003000001 +par-pay +down/);
    twin.setMemberRecoverFails("hsm-t3", "par-pay", true);
    r = lunacmQ(twin, "hagroup recover -group ha-pay");
    expect(r.exitCode).toBe(1);
    expect(twin.haGroups[0]!.members[2]!.down).toBe(true);

    twin.setMemberRecoverFails("hsm-t3", "par-pay", false);
    r = lunacmQ(twin, "hagroup recover -group ha-pay");
    expect(r.exitCode).toBe(0);
    expect(twin.haGroups[0]!.members[2]!.down).toBe(false);
  });

  it("retry and interval take the Luna ranges, start from the host's values and show in -show", async () => {
    const { twin } = await buildHarness({ retryCount: 0 });
    expect(lunacmQ(twin, "hagroup retry -show").output).toContain("Maximum Auto Recovery Retry: 0");
    expect(lunacmQ(twin, "hagroup retry -count 3").exitCode).toBe(0);
    expect(lunacmQ(twin, "hagroup interval -interval 120").exitCode).toBe(0);
    expect(twin.haSettings).toEqual({ retryCount: 3, intervalSeconds: 120 });
    expect(lunacmQ(twin, "hagroup retry -show").output).toMatch(
      /HA Auto Recovery: enabled\n.*Maximum Auto Recovery Retry: 3/,
    );
    expect(lunacmQ(twin, "hagroup interval -show").output).toContain(
      "Auto Recovery Poll Interval: 120 seconds",
    );
    expect(lunacmQ(twin, "hagroup retry -count -1").exitCode).toBe(0);

    for (const bad of [
      "hagroup retry -count 501",
      "hagroup retry -count -2",
      "hagroup interval -interval 59",
      "hagroup interval -interval 1201",
    ]) {
      const r = lunacmQ(twin, bad);
      expect(r.exitCode).toBe(1);
      expect(r.output).toContain("Command Result : 0x7 (CKR_ARGUMENTS_BAD)");
    }
    expect(twin.haSettings).toEqual({ retryCount: -1, intervalSeconds: 120 });
  });

  it("synchronize with a foreign cloning domain warns, copies nothing and logs in nowhere", async () => {
    const { twin, appliances } = await buildHarness();
    const r = lunacmQ(twin, `hagroup synchronize -group ha-pay -password ${CO_PASSWORD}`);
    expect(r.output.split("\n")).toContain(SYNC_WARNING);
    expect(r.exitCode).toBe(1);
    expect([1, 2, 3].map((n) => appliances.get(`hsm-t${n}`)!.partitions[0]!.objects)).toEqual([5, 2, 2]);
    expect(appliances.get("hsm-t1")!.partitions[0]!.failures.co).toBe(0);
  });

  it("synchronize across one cloning domain copies the objects to every live member", async () => {
    const { twin, appliances } = await buildHarness();
    expect(lunacmQ(twin, "hagroup removemember -group ha-pay -serialnumber 1900003000001").exitCode).toBe(0);
    const r = lunacmQ(twin, `hagroup synchronize -group ha-pay -password ${CO_PASSWORD}`);
    expect(r.output).not.toContain("Warning");
    expect(r.exitCode).toBe(0);
    expect([1, 2, 3].map((n) => appliances.get(`hsm-t${n}`)!.partitions[0]!.objects)).toEqual([5, 5, 2]);
    expect(lunacmQ(twin, "hagroup listgroups").output).toContain("Needs sync:  no");
  });

  it("a wrong synchronize password counts as a failed CO login and copies nothing", async () => {
    const { twin, appliances } = await buildHarness();
    lunacmQ(twin, "hagroup removemember -group ha-pay -slot 2");
    const r = lunacmQ(twin, "hagroup synchronize -group ha-pay -password Wrong-Password-1");
    expect(r.output).toContain("Command Result : 0xa0 (CKR_PIN_INCORRECT)");
    expect(appliances.get("hsm-t1")!.partitions[0]!.failures.co).toBe(1);
    expect(appliances.get("hsm-t2")!.partitions[0]!.objects).toBe(2);
  });

  it("synchronize in an interactive session prompts for the password without echoing it", async () => {
    const { twin } = await buildHarness();
    const s = interactive(twin, true);
    s.send("lunacm");
    const prompt = s.send("hagroup synchronize -group ha-pay");
    expect(prompt).toContain("Enter the password: ");
    const after = s.send(CO_PASSWORD);
    expect(after).toContain("*".repeat(CO_PASSWORD.length));
    expect(after).toContain(SYNC_WARNING);
    expect(s.io.output).not.toContain(CO_PASSWORD);
    expect(JSON.stringify(twin.commandLog)).not.toContain(CO_PASSWORD);
    expect(twin.commandLog.map((e) => e.command)).toContain("hagroup synchronize -group ha-pay");
  });

  it("a session logged in as CO on every live member synchronizes without a prompt; otherwise it still prompts", async () => {
    const { twin, appliances } = await buildHarness();
    expect(lunacmQ(twin, "hagroup removemember -group ha-pay -serialnumber 1900003000001").exitCode).toBe(0);
    const s = interactive(twin, true);
    s.send("lunacm");
    // Logged in on one member only: the prompt is still there, and a wrong password counts on the other member.
    s.send("slot set -slot 0");
    expect(s.send(`role login -name co -password ${CO_PASSWORD}`)).toContain("Command Result : No Error");
    expect(s.send("hagroup synchronize -group ha-pay")).toMatch(/Enter the password: $/);
    expect(s.send("Wrong-Password-1")).toContain("0xa0 (CKR_PIN_INCORRECT)");
    expect(appliances.get("hsm-t1")!.partitions[0]!.failures.co).toBe(0);
    expect(appliances.get("hsm-t2")!.partitions[0]!.failures.co).toBe(1);
    expect(appliances.get("hsm-t2")!.partitions[0]!.objects).toBe(2);
    // Logged in on both: no prompt, the objects are copied.
    s.send("slot set -slot 1");
    expect(s.send(`role login -name co -password ${CO_PASSWORD}`)).toContain("Command Result : No Error");
    const synced = s.send("hagroup synchronize -group ha-pay");
    expect(synced).not.toContain("Enter the password");
    expect(synced).toContain("Command Result : No Error");
    expect([1, 2].map((n) => appliances.get(`hsm-t${n}`)!.partitions[0]!.objects)).toEqual([5, 5]);
    // Logged out again: the prompt is back.
    s.send("role logout");
    expect(s.send("hagroup synchronize -group ha-pay")).toMatch(/Enter the password: $/);
  });

  it("creategroup and addmember check the CO password, number the group from its first member, and warn on a foreign domain", async () => {
    const { twin, appliances } = await buildHarness();
    let r = lunacmQ(twin, `hagroup creategroup -label ha-new -slot 1 -password ${CO_PASSWORD}`);
    expect(r.output).toContain("HA Group Number: 11900002000001");
    expect(r.exitCode).toBe(0);
    r = lunacmQ(twin, `hagroup addmember -group ha-new -slot 2 -password ${CO_PASSWORD}`);
    expect(r.output).toContain(
      "Warning: Synchronize may fail.  The members in slot 1 and slot 2 have conflicting settings for private key cloning.",
    );
    expect(twin.haGroups.find((g) => g.label === "ha-new")!.members.map((m) => m.serial)).toEqual([
      "1900002000001",
      "1900003000001",
    ]);
    r = lunacmQ(twin, "hagroup addmember -group ha-new -slot 0 -password Not-The-Password");
    expect(r.output).toContain("0xa0 (CKR_PIN_INCORRECT)");
    expect(appliances.get("hsm-t1")!.partitions[0]!.failures.co).toBe(1);
  });

  it("slot list shows a Net Token Slot per reachable partition and the HA virtual slot", async () => {
    const { twin, appliances } = await buildHarness();
    let out = lunacmQ(twin, "slot list").output;
    expect(out.match(/Slot Description -> {5}Net Token Slot/g)).toHaveLength(3);
    expect(out).toContain("        Slot Description ->     HA Virtual Card Slot");
    expect(out).toContain("        HSM Serial Number ->    11900001000001");
    appliances.get("hsm-t2")!.power = "hung";
    out = lunacmQ(twin, "slot list").output;
    expect(out.match(/Net Token Slot/g)).toHaveLength(2);
    expect(out).not.toContain("1900002000001");
  });
});
