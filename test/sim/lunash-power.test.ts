// Reboot (KB0019789 patched or not), power cycle, and NTLS certificate regeneration on the twin appliance.
import { X509Certificate } from "node:crypto";
import { afterEach, describe, expect, it, vi } from "vitest";
import { powerCycle } from "../../src/sim/appliance/lunash.ts";
import { Driver, demoAppliance, waitFor } from "./lunash-harness.ts";

const BOOT_MS = 60;

// The reboot tests run the appliance on fake timers: its boot (a timer of BOOT_MS) completes when the test's clock
// has moved that far (the harness's waitFor moves it), and "it never comes back" is shown by moving that clock far
// past any boot, not by sleeping and hoping the machine was not too loaded to have booted in the meantime.
afterEach(() => {
  vi.useRealTimers();
});

async function reboot(d: Driver): Promise<string> {
  const caution = await d.sendUntil("sysconf appliance reboot", "          > ");
  expect(caution).toContain("Type 'proceed' to reboot the appliance, or 'quit'");
  d.shell.input("proceed\r");
  await waitFor(() => d.io.ended, "the session to close after the reboot");
  return d.io.text;
}

describe("lunash reboot and power", () => {
  it("a patched appliance closes the session, reboots and comes back", async () => {
    const state = await demoAppliance("hsm-b1");
    state.soLoggedIn = true;
    vi.useFakeTimers();
    const d = await Driver.open(state, { bootMs: BOOT_MS });
    const bystander = await Driver.open(state, { bootMs: BOOT_MS });
    const text = await reboot(d);
    expect(text).toContain("The system is going down for reboot NOW!");
    expect(text).toContain("Reboot commencing");
    expect(text).toMatch(/Command Result : 0 \(Success\)\n$/);
    expect(d.io.closed).toBe(true);
    expect(bystander.io.destroyed).toBe(true);
    expect(state.power).toBe("rebooting");
    expect(state.ntls.listening).toBe(false);
    expect(state.soLoggedIn).toBe(false);
    await waitFor(() => state.power === "on", "the appliance to come back");
    expect(state.ntls.listening).toBe(true);
    const again = await Driver.open(state);
    expect(await again.send("hsm show")).toContain("Command Result : 0 (Success)");
  });

  it("an appliance without the reboot patch hangs until a power cycle", async () => {
    const state = await demoAppliance("hsm-b3");
    expect(state.rebootPatch).toBe(false);
    vi.useFakeTimers();
    const d = await Driver.open(state, { bootMs: BOOT_MS });
    await reboot(d);
    await waitFor(() => state.power === "hung", "the hang");
    // A boot still pending would bring it back within BOOT_MS of the appliance's time: a day of it passes, and it
    // stays hung.
    await vi.advanceTimersByTimeAsync(86_400_000);
    expect(state.power).toBe("hung");
    // A hung appliance does not answer: the session is cut at once, with no banner.
    const dead = new Driver((d as Driver).host);
    dead.shell.start();
    expect(dead.io.destroyed).toBe(true);
    expect(dead.io.text).toBe("");

    powerCycle(state);
    expect(state.power).toBe("on");
    expect(state.ntls.listening).toBe(true);
    const back = await Driver.open(state);
    expect(await back.send("package list")).not.toContain("reboot-patch");
  });

  it("quit at the reboot caution leaves the appliance up", async () => {
    const state = await demoAppliance("hsm-b1");
    const d = await Driver.open(state, { bootMs: BOOT_MS });
    await d.sendUntil("sysc appl reboot", "          > ");
    expect(await d.send("quit")).toContain("Command Result : 65535");
    expect(state.power).toBe("on");
  });

  it("sysconf regenCert makes a new real certificate and clients' copies go stale", async () => {
    const state = await demoAppliance("hsm-a2"); // demo: certificate valid for 5 days
    const before = state.ntls.certPem;
    const generation = state.ntls.certGeneration;
    const daysLeft = (state.ntls.notAfter.getTime() - Date.now()) / 86_400_000;
    expect(daysLeft).toBeGreaterThan(4.9);
    expect(daysLeft).toBeLessThan(5.1);

    const d = await Driver.open(state);
    const warning = await d.sendUntil("sysconf regenCert", "> ");
    expect(warning).toContain(
      "WARNING !!  This command will overwrite the current server certificate and private key.",
    );
    expect(await d.send("quit")).toContain("Command Result : 65535");
    expect(state.ntls.certPem).toBe(before);

    await d.sendUntil("sysconf regenCert", "> ");
    const done = await d.send("proceed");
    expect(done).toContain("Proceeding...\n'sysconf regenCert' successful. NTLS must be (re)started");
    expect(done).toContain("Command Result : 0 (Success)");
    expect(state.ntls.certPem).not.toBe(before);
    expect(state.ntls.certGeneration).toBe(generation + 1);
    const cert = new X509Certificate(state.ntls.certPem);
    expect(cert.subject).toBe("CN=hsm-a2");
    expect(new Date(cert.validTo).getTime()).toBe(state.ntls.notAfter.getTime());
    expect(state.ntls.notAfter.getTime() - Date.now()).toBeGreaterThan(3000 * 86_400_000);
  });
});
