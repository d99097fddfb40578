// HSM SO login on the twin appliance: the counter that zeroizes at three, the cautions before the last attempts,
// and that no password is ever shown or recorded.
import { describe, expect, it } from "vitest";
import { hsmSoAttemptsLeft } from "../../src/sim/state.ts";
import { Driver, demoAppliance } from "./lunash-harness.ts";

const SO_PASSWORD = "HsmSo-A1-secret"; // hsm-a1's literal SO password in config/demo.yaml
const WRONG = ["Wrong-Pass-one", "Wrong-Pass-two", "Wrong-Pass-three"];

async function wrongLogin(d: Driver, password: string, needsProceed: boolean): Promise<string> {
  let out = await d.sendUntil("hsm login", "  > ");
  if (needsProceed) out += await d.sendUntil("proceed", "  > ");
  return out + (await d.send(password));
}

describe("lunash hsm login", () => {
  it("zeroizes on the third wrong SO password, with 30000F and a success footer, and hsm show says so", async () => {
    const state = await demoAppliance();
    const d = await Driver.open(state);

    const first = await wrongLogin(d, WRONG[0]!, false);
    expect(first).toContain("  Please enter the HSM Administrators' password:\n  > **************\n");
    expect(first).toContain("Error:  'hsm login' failed. (A00000 : LUNA_RET_UM_PIN_INCORRECT)");
    expect(first).toMatch(/Command Result : 65535 \(Luna Shell execution\)\n\[hsm-a1\] lunash:>$/);
    expect(first).not.toContain("TWO");
    expect(hsmSoAttemptsLeft(state)).toBe(2);

    const second = await wrongLogin(d, WRONG[1]!, false);
    expect(second).toContain("Caution:  You have only TWO HSM Admin logins attempts left (including");
    expect(second).toContain("A00000 : LUNA_RET_UM_PIN_INCORRECT");
    expect(hsmSoAttemptsLeft(state)).toBe(1);

    const third = await wrongLogin(d, WRONG[2]!, true);
    expect(third).toContain("Caution:  This is your LAST available HSM Admin login attempt.");
    expect(third).toContain("Error:  'hsm login' failed. (30000F : LUNA_RET_SO_LOGIN_FAILURE_THRESHOLD)");
    expect(third).toContain("Error:    The HSM is in the factory reset (zeroized) state.");
    expect(third).toMatch(/\n\n\nCommand Result : 0 \(Success\)\n\[hsm-a1\] lunash:>$/);
    expect(state.zeroized).toBe(true);
    expect(state.partitions).toEqual([]);

    const show = await d.send("hsm show");
    expect(show).toMatch(/^ {3}HSM Admin login attempts left: {6}HSM IS ZEROIZED !!!!$/m);
    expect(show).toContain("   There are no partitions.");
    expect(show).toContain("Command Result : 0 (Success)");

    // A zeroized HSM has no SO to log in as: refused, nothing counted, no prompt.
    const after = await d.send("hsm login");
    expect(after).not.toContain("Please enter");
    expect(after).toContain("Command Result : 65535");
  });

  it("shows the TWO caution only at two attempts left, without asking for proceed", async () => {
    const state = await demoAppliance();
    state.soFailures = 1;
    const d = await Driver.open(state);
    const out = await d.sendUntil("hsm login", "  > ");
    expect(out).toBe(
      [
        "hsm login",
        "",
        "Caution:  You have only TWO HSM Admin logins attempts left (including",
        "          this one). If you fail two more consecutive login attempts",
        "          (i.e. with no successful logins in between) the HSM will",
        "          be ZEROIZED!!!",
        "",
        "  Please enter the HSM Administrators' password:",
        "  > ",
      ].join("\n"),
    );
    await d.send(SO_PASSWORD);
    expect(state.soLoggedIn).toBe(true);
  });

  it("requires the literal proceed at the LAST attempt; quit (or anything else) aborts without counting", async () => {
    const state = await demoAppliance();
    state.soFailures = 2;
    const d = await Driver.open(state);

    const asked = await d.sendUntil("hsm login", "          > ");
    expect(asked).toContain("          Type 'proceed' if you are certain you have the right\n");
    expect(asked).toContain("          HSM Admin login credentials or 'quit' to quit now.\n          > ");
    expect(asked).not.toContain("Please enter");

    const quit = await d.send("quit");
    expect(quit).not.toContain("Please enter");
    expect(quit).toContain("Command Result : 65535 (Luna Shell execution)");
    expect(state.soFailures).toBe(2);
    expect(state.zeroized).toBe(false);

    await d.sendUntil("hsm login", "          > ");
    await d.send("Proceed please");
    expect(state.soFailures).toBe(2);

    // The attempt itself, with the right password after proceed, resets the counter.
    await d.sendUntil("hsm login", "          > ");
    await d.sendUntil("proceed", "  > ");
    const ok = await d.send(SO_PASSWORD);
    expect(ok).toContain("'hsm login' successful.");
    expect(ok).toContain("Command Result : 0 (Success)");
    expect(state.soFailures).toBe(0);
    expect(hsmSoAttemptsLeft(state)).toBe(3);
  });

  it("resets the failure counter on a correct login, and hsm show reports the attempts left", async () => {
    const state = await demoAppliance();
    const d = await Driver.open(state);
    await wrongLogin(d, WRONG[0]!, false);
    expect(await d.send("hsm show")).toContain(
      "   HSM Admin login attempts left:      2 before HSM zeroization!",
    );
    await d.sendUntil("hsm login", "  > ");
    await d.send(SO_PASSWORD);
    const show = await d.send("hsm show");
    expect(show).toContain("   HSM Admin login attempts left:      3 before HSM zeroization!");
    expect(show).toContain("   HSM Admin login status:             Logged In");
    const out = await d.send("hsm logout");
    expect(out).toContain("'hsm logout' successful.");
    expect(state.soLoggedIn).toBe(false);
  });

  it("an empty password or Ctrl-C at the password prompt is not an attempt", async () => {
    const state = await demoAppliance();
    const d = await Driver.open(state, { pty: true });
    await d.sendUntil("hsm login", "  > ");
    await d.send("");
    expect(state.soFailures).toBe(0);
    await d.sendUntil("hsm login", "  > ");
    d.shell.input("abc\x03");
    await d.untilPrompt();
    expect(state.soFailures).toBe(0);
  });

  it("never shows or records a password: not typed at the prompt, not given with -password", async () => {
    const state = await demoAppliance();
    const d = await Driver.open(state, { pty: true });
    await d.sendUntil("hsm login", "  > ");
    // Typed character by character, as a person would, with a backspace in the middle.
    d.shell.input("Wrong-Pass-oneX\x7f");
    d.shell.input("\r");
    await d.untilPrompt();
    await d.send(`hsm login -password ${WRONG[1]}`);
    // Two failures so far: the LAST caution asks for proceed even when the password is on the command line.
    await d.sendUntil(`hsm login -p ${SO_PASSWORD}`, "          > ");
    await d.send("proceed");
    await d.send(`hsm login ${WRONG[2]}`); // a mistyped command must not leak the password either
    await d.send(`hsm lgin -password ${WRONG[2]}`);
    expect(state.soLoggedIn).toBe(true);
    const everything = [d.io.text, JSON.stringify(state.commandLog), state.syslog.join("\n")].join("\n");
    for (const secret of [SO_PASSWORD, ...WRONG, "Wrong-Pass-oneX"]) expect(everything).not.toContain(secret);
    expect(d.io.text).toContain("  > ***************\b \b\r\n");
    expect(d.io.text).toContain("lunash:>hsm login -password **************\r\n");
    expect(state.commandLog.map((c) => c.command)).toEqual([
      "hsm login",
      "hsm login -password ********",
      "hsm login -p ********",
      "hsm login ********",
      "hsm lgin -password ********",
    ]);
  });
});
