// The prompt-driven driver over real SSH against a small lunash-speaking server: each failure stops the step with an
// error naming device, command and cause, and the server's input log proves nothing further was typed.
import { afterEach, describe, expect, it } from "vitest";
import { parsers } from "../../parsers/index.ts";
import { Secret } from "../../src/config/secret.ts";
import {
  CommandRefused,
  CommandTimeout,
  DeviceError,
  ParseFailed,
  UnexpectedPrompt,
} from "../../src/shell/errors.ts";
import { JobShells } from "../../src/shell/job-shells.ts";
import { issueLoginToken } from "../../src/shell/login-token.ts";
import { lunashPlatform } from "../../src/shell/platform.ts";
import { sendCommand } from "../../src/shell/reply.ts";
import { ShellSession } from "../../src/shell/session.ts";
import { ConnectionLost } from "../../src/transport/errors.ts";
import { SshPool } from "../../src/transport/pool.ts";
import { FakeLunash, type FakeOptions, OK_FOOTER, targetFor } from "../transport/fake-lunash.ts";

const SO_PASSWORD = "HsmSo-session-secret-7";
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const CAUTION = [
  "",
  "CAUTION:  Are you sure you wish to delete client named:",
  "            app-1",
  "",
  "          Type 'proceed' to delete the client, or 'quit'",
  "          to quit now.",
  "          > ",
].join("\r\n");

const LAST = [
  "",
  "Caution:  This is your LAST available HSM Admin login attempt.",
  "          If the wrong HSM Admin password is provided the HSM will",
  "          be ZEROIZED!!!",
  "",
  "          Type 'proceed' if you are certain you have the right",
  "          HSM Admin login credentials or 'quit' to quit now.",
  "          > ",
].join("\r\n");

const replies: FakeOptions["replies"] = {
  "ntls show": "\r\nNTLS bound to network device: eth0   IP Address: 10.0.0.5 (eth0)",
  "status date": "Sat Mar  7 10:00:00 UTC 2026",
  "client show -client nobody": (io) =>
    io.write(
      "\r\nError:  'client show' failed. (C000040A : RC_OBJECT_NOT_IN_LIST)\r\n\r\nError:  Specified client does not exist.\r\n\r\n\r\nCommand Result : 65535 (Luna Shell execution)\r\n",
    ),
  "syslog tail -logname messages -entries 5": () => "hang",
  "status sensors": (io) => {
    io.write("Fan 1: 5200 rpm\r\nFan 2: ");
    setTimeout(() => io.drop(), 50);
    return "hang";
  },
  "status sysstat show": (io) => io.write("\x00\x1b[2J\ufffd\ufffd#@!garbled\r\n"),
  "status disk": async (io) => {
    await io.ask("\r\nAre you sure you want to continue (y/n)? ");
  },
  "client delete -client app-1": async (io) => {
    const a = await io.ask(CAUTION);
    io.write(
      a === "proceed"
        ? "\r\n'client delete' successful.\r\n" + OK_FOOTER
        : "\r\nCommand aborted.\r\n" + OK_FOOTER,
    );
  },
  "hsm login": async (io) => {
    const pw = await io.ask("\r\n  Please enter the HSM Administrators' password:\r\n  > ");
    io.write(
      pw === SO_PASSWORD
        ? "\r\n\r\n'hsm login' successful.\r\n" + OK_FOOTER
        : "\r\nError:  'hsm login' failed. (A00000 : LUNA_RET_UM_PIN_INCORRECT)\r\n\r\nCommand Result : 65535 (Luna Shell execution)\r\n",
    );
  },
  "ntls information show": async (io) => {
    await io.ask("\r\n  Please enter the HSM Administrators' password:\r\n  > ");
  },
  "audit login": async (io) => {
    const a = await io.ask(LAST);
    if (a !== "proceed") io.write("\r\nCommand aborted.\r\n" + OK_FOOTER);
  },
};

async function setup(opts: FakeOptions = {}) {
  const server = await new FakeLunash({ replies, ...opts }).start();
  const pool = new SshPool();
  const target = targetFor(server, {
    hostKey: server.fingerprint,
    timeouts: { connectMs: 2000, authMs: 2000, commandMs: 1500, keepaliveMs: 15_000 },
  });
  const sessions = new JobShells({
    lease: pool.lease(),
    targets: { device: () => target, clientHost: () => target },
    unknownPromptMs: 300,
  });
  cleanups.push(
    () => server.stop(),
    () => pool.closeAll(),
    () => sessions.close(),
  );
  const sh = await sessions.lunash(target.name);
  return { server, pool, sessions, target, sh };
}

function expectNames(err: Error, command: string, cause: RegExp) {
  expect(err.message).toContain("hsm-fake");
  expect(err.message).toContain(`'${command}'`);
  expect(err.message).toMatch(cause);
}

describe("ShellSession over SSH", () => {
  it("opens on the banner and prompt, runs commands, strips echo and CR, reuses the shell", async () => {
    const { server, sh, sessions, target } = await setup();
    expect(sh.prompt).toBe("[hsm-fake] lunash:>");
    expect(sh.bannerVersion).toBe("7.2.0-220");
    const r = await sh.run("ntls show");
    // The driver frames the reply and reports the footer it saw; it reads nothing into it.
    expect(r.footer).toBe("Command Result : 0 (Success)");
    expect(r.raw).toContain("NTLS bound to network device: eth0");
    expect(r.raw).not.toContain("\r");
    expect(r.raw.split("\n")[0]).not.toBe("ntls show");
    expect(r.raw.trimEnd().endsWith("Command Result : 0 (Success)")).toBe(true);
    expect(await sessions.lunash(target.name)).toBe(sh);
    await sh.run("status date");
    expect(server.shells).toBe(1);
    expect(server.auths).toHaveLength(1);
    expect(server.inputs).toEqual(["ntls show", "status date"]);
  });

  it("the command's parser reads a device error into a typed error (code, name, message, warnings)", async () => {
    const { sh } = await setup();
    const framed = await sh.run("client show -client nobody");
    expect(framed.footer).toBe("Command Result : 65535 (Luna Shell execution)");
    const { reply } = await sendCommand(sh, "client show -client nobody", parsers.clientShow);
    expect(reply.ok).toBe(false);
    if (!reply.ok) {
      expect(reply.error).toBeInstanceOf(DeviceError);
      expect(reply.error.report).toEqual({
        code: "C000040A",
        name: "RC_OBJECT_NOT_IN_LIST",
        message: "Specified client does not exist.",
        warnings: [],
      });
      expect(reply.error.message).toContain("hsm-fake 'client show -client nobody'");
    }
    expect(sh.usable).toBe(true);
  });

  it("a command whose reply no parser reads is not sent", async () => {
    const { server, sh } = await setup();
    const err = await sendCommand(sh, "status date", parsers.hsmShow).catch((e) => e);
    expect(err).toBeInstanceOf(CommandRefused);
    expect(err.rule).toBe("reply-without-parser");
    expect(server.inputs).toEqual([]);
  });

  it("command timeout: a silent device stops the step and nothing more is typed", async () => {
    const { server, sh } = await setup();
    const cmd = "syslog tail -logname messages -entries 5";
    const err = await sh.run(cmd, { timeoutMs: 400 }).catch((e) => e);
    expect(err).toBeInstanceOf(CommandTimeout);
    expectNames(err, cmd, /no prompt within 400 ms/);
    expect(err.retryable).toBe(false);
    expect(sh.usable).toBe(false);
    await expect(sh.run("status date")).rejects.toBeInstanceOf(ConnectionLost);
    await server.noShellOpen(); // the session closed its shell: every input it typed has arrived
    expect(server.inputs).toEqual([cmd]);
  });

  it("connection dropped mid-command: ConnectionLost naming the command; the pool reconnects for the next step", async () => {
    const { server, sh, sessions, target } = await setup();
    const err = await sh.run("status sensors").catch((e) => e);
    expect(err).toBeInstanceOf(ConnectionLost);
    expectNames(err, "status sensors", /connection lost mid-command/);
    expect(err.retryable).toBe(true); // read-only: nothing changed
    expect(server.inputs).toEqual(["status sensors"]);
    const sh2 = await sessions.lunash(target.name);
    expect(sh2).not.toBe(sh);
    expect(sh2.generation).toBeGreaterThan(sh.generation ?? 0);
    expect((await sh2.run("status date")).footer).toBe("Command Result : 0 (Success)");
    expect(server.inputs).toEqual(["status sensors", "status date"]); // nothing replayed
  });

  it("garbled output without the footer: ParseFailed, nothing guessed", async () => {
    const { sh } = await setup();
    const err = await sh.run("status sysstat show").catch((e) => e);
    expect(err).toBeInstanceOf(ParseFailed);
    expectNames(err, "status sysstat show", /no 'Command Result' footer/);
    expect(err.raw).toContain("garbled");
  });

  it("unknown prompt: stops, types nothing, closes the shell", async () => {
    const { server, sh } = await setup();
    const err = await sh.run("status disk").catch((e) => e);
    expect(err).toBeInstanceOf(UnexpectedPrompt);
    expectNames(err, "status disk", /unknown prompt.*Are you sure you want to continue \(y\/n\)\?/);
    expect(err.retryable).toBe(false);
    expect(sh.usable).toBe(false);
    await server.noShellOpen(); // the session closed its shell: every input it typed has arrived
    expect(server.inputs).toEqual(["status disk"]);
  });

  it("undeclared confirmation: answers 'quit', never 'proceed'; declared: answers 'proceed' once", async () => {
    const { server, sh, sessions, target } = await setup();
    const err = await sh.run("client delete -client app-1").catch((e) => e);
    expect(err).toBeInstanceOf(UnexpectedPrompt);
    expectNames(
      err,
      "client delete -client app-1",
      /'proceed' confirmation the step did not declare \(answered 'quit'\)/,
    );
    await server.noShellOpen(); // the session closed its shell: every input it typed has arrived
    expect(server.inputs).toEqual(["client delete -client app-1", "quit"]);

    const sh2 = await sessions.lunash(target.name);
    const r = await sh2.run("client delete -client app-1", { confirm: "proceed" });
    expect(r.confirmed).toEqual(["proceed"]);
    expect(r.raw).toContain("'client delete' successful.");
    expect(server.inputs.slice(2)).toEqual(["client delete -client app-1", "proceed"]);
  });

  it("login: refused without a token (nothing sent), once with a token, refused on reuse; no password in transcripts", async () => {
    const { server, sh } = await setup();
    const refused = await sh.run("hsm login").catch((e) => e);
    expect(refused).toBeInstanceOf(CommandRefused);
    expect(refused.rule).toBe("login-requires-token");
    expect(server.inputs).toEqual([]);

    const secret = new Secret(SO_PASSWORD, "literal");
    const token = issueLoginToken({
      target: "hsm-fake",
      command: "hsm login",
      role: "hsmSo",
      secret,
      attemptId: "t1",
    });
    const { output, reply } = await sendCommand(sh, "hsm login", parsers.hsmLogin, { token });
    expect(reply).toEqual({
      ok: true,
      value: { loggedIn: true, warnedAttemptsLeft: null, proceedConfirmed: false },
    });
    expect(output.raw).toContain("'hsm login' successful.");
    expect(token.used).toBe(true);
    expect(server.passwordsSeen).toEqual([SO_PASSWORD]);
    expect(server.inputs).toEqual(["hsm login", "<password>"]);

    const again = await sh.run("hsm login", { token }).catch((e) => e);
    expect(again).toBeInstanceOf(CommandRefused);
    expect(again.rule).toBe("login-token-used");
    expect(server.inputs).toHaveLength(2);

    const text = sh.transcript.toText();
    expect(text).toContain(">>> hsm login");
    expect(text).toContain(">>> [REDACTED]");
    expect(text).not.toContain(SO_PASSWORD);
    expect(JSON.stringify(sh.transcript.entries)).not.toContain(SO_PASSWORD);
    expect(output.raw).not.toContain(SO_PASSWORD);
  });

  it("a password prompt for a non-login command is never answered", async () => {
    const { server, sh } = await setup();
    const err = await sh.run("ntls information show").catch((e) => e);
    expect(err).toBeInstanceOf(UnexpectedPrompt);
    expectNames(
      err,
      "ntls information show",
      /login password prompt the step holds no \(unused\) LoginToken/,
    );
    await server.noShellOpen(); // the session closed its shell: every input it typed has arrived
    expect(server.inputs).toEqual(["ntls information show"]);
    expect(server.passwordsSeen).toEqual([]);
  });

  it("the LAST-attempt caution is never answered 'proceed', even with a token and confirm declared", async () => {
    const { server, sh } = await setup();
    const secret = new Secret("Audit-secret-pw-3", "literal");
    const token = issueLoginToken({
      target: "hsm-fake",
      command: "audit login",
      role: "auditor",
      secret,
      attemptId: "t2",
    });
    const err = await sh.run("audit login", { token, confirm: "proceed" }).catch((e) => e);
    expect(err).toBeInstanceOf(UnexpectedPrompt);
    expectNames(err, "audit login", /last-attempt-caution/);
    await server.noShellOpen(); // the session closed its shell: every input it typed has arrived
    expect(server.inputs).toEqual(["audit login", "quit"]);
    expect(server.passwordsSeen).toEqual([]);
  });

  it("a refused command leaves the session usable and sends nothing", async () => {
    const { server, sh } = await setup();
    await expect(sh.run("hsm zer")).rejects.toBeInstanceOf(CommandRefused);
    await expect(sh.run("net int -dev eth0 -ip 1.2.3.4")).rejects.toMatchObject({ rule: "network-change" });
    expect(sh.usable).toBe(true);
    expect(server.inputs).toEqual([]);
  });

  it("a prompt that changes identity mid-session stops the step", async () => {
    const { sh } = await setup({
      replies: {
        ...replies,
        // Only the foreign prompt comes back ("hang": the fake writes no prompt of its own after it), so the test
        // does not depend on how the two would be split into chunks.
        "status time": (io) => {
          io.write("10:00\r\n" + OK_FOOTER + "[other-hsm] lunash:>");
          return "hang";
        },
      },
    });
    const err = await sh.run("status time").catch((e) => e);
    expect(err).toBeInstanceOf(UnexpectedPrompt);
    expect(err.message).toMatch(/prompt changed from '\[hsm-fake\] lunash:>' to '\[other-hsm\] lunash:>'/);
  });

  it("tolerant where devices vary: a prompt with a trailing blank and ANSI colour, CRLF, a banner in other words", async () => {
    const { server, sh } = await setup({
      banner: "\x1b[1mSafeNet Luna SA 7 appliance\x1b[0m\r\nAuthorised use only.",
      promptStyle: { before: "\x1b[1;32m", after: "\x1b[0m " },
    });
    expect(sh.prompt).toBe("[hsm-fake] lunash:>");
    expect(sh.bannerVersion).toBeUndefined();
    const r = await sh.run("ntls show");
    expect(r.footer).toBe("Command Result : 0 (Success)");
    expect(r.raw).not.toMatch(/\r|\x1b/);
    expect((await sh.run("status date")).raw).toContain("Sat Mar  7");
    expect(server.inputs).toEqual(["ntls show", "status date"]);
  });

  it("closed where it matters: 'login as:' inside the shell stops the command with the reason, nothing typed", async () => {
    const { server, sh } = await setup({
      replies: {
        ...replies,
        "status time": (io) => {
          io.write("\r\nlogin as: ");
          return "hang";
        },
      },
    });
    const err = await sh.run("status time").catch((e) => e);
    expect(err).toBeInstanceOf(UnexpectedPrompt);
    expectNames(err, "status time", /user-name prompt inside the shell/);
    expect(sh.usable).toBe(false);
    expect(server.inputs).toEqual(["status time"]);
  });

  it("ShellSession.open fails closed on a forced password change instead of a prompt", async () => {
    const server = await new FakeLunash({
      banner: "You must change your password.\r\nNew password: ",
      noPrompt: true,
    }).start();
    cleanups.push(() => server.stop());
    const pool = new SshPool();
    cleanups.push(() => pool.closeAll());
    const conn = await pool.connection(targetFor(server, { hostKey: server.fingerprint }));
    const ch = await conn.openShell();
    const err = await ShellSession.open(ch, {
      target: "hsm-fake",
      platform: lunashPlatform,
      commandTimeoutMs: 1500,
      unknownPromptMs: 300,
    }).catch((e) => e);
    expect(err).toBeInstanceOf(UnexpectedPrompt);
    expect(err.message).toMatch(/password prompt.*New password:/);
  });
});
