import { describe, expect, it } from "vitest";
import { buildHarness, CO_PASSWORD, interactive, lunacmQ } from "./lunacm-fixture.ts";

const WRONG = "Wrong-Password-9";

describe("lunacm partition roles on a client host twin", () => {
  it("CO with HSM policy 15 = 0: ten wrong passwords lock it out for good; the right one is refused after", async () => {
    const { twin, appliances } = await buildHarness({ policy15: 0 });
    const partition = appliances.get("hsm-t1")!.partitions[0]!;
    for (let i = 1; i <= 9; i++) {
      const r = lunacmQ(twin, `role login -name co -password ${WRONG}`);
      expect(r.output).toContain("Command Result : 0xa0 (CKR_PIN_INCORRECT)");
      expect(r.exitCode).toBe(1);
      expect(lunacmQ(twin, "role show -name co").output).toContain(`Login Attempts Left:    ${10 - i}`);
    }
    const tenth = lunacmQ(twin, `role login -name co -password ${WRONG}`);
    expect(tenth.output).toContain("Command Result : 0xa4 (CKR_PIN_LOCKED)");
    expect(partition.coLockout).toBe("permanent");

    const eleventh = lunacmQ(twin, `role login -name co -password ${CO_PASSWORD}`);
    expect(eleventh.output).toContain("Command Result : 0xa4 (CKR_PIN_LOCKED)");
    expect(partition.loggedIn).toBeUndefined();

    const show = lunacmQ(twin, "role show -name co").output;
    expect(show).toContain("Status:                 Locked out");
    expect(show).toContain("Permanent Lockout:      yes");
    expect(show).toContain("Login Attempts Left:    0");
    const info = lunacmQ(twin, "partition showinfo").output;
    expect(info).toContain("Locked Out -> yes (permanent)");
    expect(info).toContain("Login Attempts Left -> 0 (permanently locked out)");
  });

  it("CO with HSM policy 15 = 1: the lockout is not permanent", async () => {
    const { twin, appliances } = await buildHarness({ policy15: 1 });
    for (let i = 0; i < 10; i++) lunacmQ(twin, `role login -name co -password ${WRONG}`);
    expect(appliances.get("hsm-t1")!.partitions[0]!.coLockout).toBe("locked");
    const show = lunacmQ(twin, "role show -name co").output;
    expect(show).toContain("Status:                 Locked out");
    expect(show).toContain("Permanent Lockout:      no");
    expect(lunacmQ(twin, `role login -name co -password ${CO_PASSWORD}`).output).toContain(
      "0xa4 (CKR_PIN_LOCKED)",
    );
  });

  it("a success resets the counter, and role show and showinfo report it", async () => {
    const { twin, appliances } = await buildHarness();
    lunacmQ(twin, `role login -name co -password ${WRONG}`);
    lunacmQ(twin, `role login -name co -password ${WRONG}`);
    expect(lunacmQ(twin, "partition showinfo").output).toContain("Login Attempts Left -> 8 before lockout");
    const s = interactive(twin);
    s.send("lunacm");
    expect(s.send(`role login -name co -password ${CO_PASSWORD}`)).toContain("Command Result : No Error");
    expect(appliances.get("hsm-t1")!.partitions[0]!.failures.co).toBe(0);
    expect(s.send("role show -name co")).toContain("Status:                 Logged in");
    expect(s.send("role login -name co")).toContain("0x100 (CKR_USER_ALREADY_LOGGED_IN)");
    expect(s.send("role logout")).toContain("Command Result : No Error");
    expect(appliances.get("hsm-t1")!.partitions[0]!.loggedIn).toBeUndefined();
    expect(s.send("role logout")).toContain("0x101 (CKR_USER_NOT_LOGGED_IN)");
  });

  it("the password prompt is masked, empty input does not count, and nothing secret is logged", async () => {
    const { twin, appliances } = await buildHarness();
    const s = interactive(twin, true);
    expect(s.opening).toMatch(/\[root@client-t ~\]# $/);
    const banner = s.send("lunacm");
    expect(banner).toContain(
      "lunacm (64-bit) v10.7.2-16. Copyright (c) 2024 Thales Group. All rights reserved.",
    );
    expect(banner).toContain("Available HSMs:");
    expect(banner).toContain("Current Slot Id: 0");
    expect(banner.endsWith("lunacm:>")).toBe(true);
    expect(s.send("role login -name co")).toContain("Enter the password: ");
    expect(s.send("")).toContain("Command Result : 0xb (User Cancelled Operation)");
    expect(appliances.get("hsm-t1")!.partitions[0]!.failures.co).toBe(0);
    s.send("role login -name co");
    const reply = s.send(WRONG);
    expect(reply).toContain("*".repeat(WRONG.length));
    expect(reply).toContain("Command Result : 0xa0 (CKR_PIN_INCORRECT)");
    s.send(`role login -name co -password ${CO_PASSWORD}`);
    expect(s.send("exit")).toMatch(/\[root@client-t ~\]# $/);
    s.send(`lunacm -q role login -name co -password "${CO_PASSWORD}"`);
    for (const secret of [WRONG, CO_PASSWORD]) {
      expect(s.io.output).not.toContain(secret);
      expect(JSON.stringify(twin.commandLog)).not.toContain(secret);
    }
    expect(twin.commandLog.map((e) => e.command)).toContain("role login -name co -password [REDACTED]");
    // Leaving lunacm ended its session: nobody stays logged in on the appliance.
    expect(appliances.get("hsm-t1")!.partitions[0]!.loggedIn).toBeUndefined();
  });

  it("slot set moves the current slot; unknown commands and slots fail with their codes", async () => {
    const { twin } = await buildHarness();
    const s = interactive(twin);
    s.send("lunacm");
    expect(s.send("slot set -slot 1")).toContain(
      "Current Slot Id: 1 (Luna User Slot 7.0.3 (PW) Signing With Cloning Mode)",
    );
    expect(s.send("par si")).toContain("Partition Serial Number -> 1900002000001");
    expect(s.send("slot set -slot 9")).toContain("Command Result : 0x3 (CKR_SLOT_ID_INVALID)");
    expect(s.send("frobnicate now")).toContain("Command Result : 0x1 Unknown command");
    expect(lunacmQ(twin, "frobnicate").exitCode).toBe(1);
  });

  it("Partition SO: the tenth wrong password zeroizes the partition", async () => {
    const { twin, appliances } = await buildHarness();
    for (let i = 0; i < 9; i++) lunacmQ(twin, `role login -name po -password ${WRONG}`);
    expect(lunacmQ(twin, "partition showinfo").output).toContain(
      "Login Attempts Left -> 1 before partition zeroization",
    );
    const r = lunacmQ(twin, `role login -name po -password ${WRONG}`);
    expect(r.output).toContain("the partition has been zeroized");
    expect(appliances.get("hsm-t1")!.partitions[0]!.zeroized).toBe(true);
    expect(lunacmQ(twin, "partition showinfo").output).toContain("Partition Status -> Zeroized");
  });
});
