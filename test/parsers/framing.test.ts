// Framing and command resolution shared by every parser: what is cut away (echo, prompt, footer, escapes), what is
// refused (two commands, text after the footer, garbled footers, the other shell), and how abbreviations resolve.
import { describe, expect, it } from "vitest";
import { frameCapture, matchPromptLine, normalizeText, ParseError } from "../../parsers/common.ts";
import { detectCommand, findDeviceError, parseCommandOutput } from "../../parsers/index.ts";
import { resolveCommand } from "../../parsers/vocabulary.ts";

function reasonOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof ParseError) return err.reason;
    throw err;
  }
  throw new Error("expected a ParseError");
}

describe("normalizeText", () => {
  it("drops ANSI sequences, applies backspaces, turns CRLF and lone CR into LF, trims line ends", () => {
    const raw = "\x1b[1;32m[h] lunash:>\x1b[0mhsm shoX\x08w   \r\r\nline\rnext\x07\r\n\x1b]0;title\x07end";
    expect(normalizeText(raw)).toBe("[h] lunash:>hsm show\nline\nnext\nend");
  });
});

describe("matchPromptLine", () => {
  it.each([
    ["[hsm-lab1] lunash:>hsm show", { shell: "lunash", host: "hsm-lab1", command: "hsm show" }],
    ["[local_host] lunash:>", { shell: "lunash", host: "local_host", command: "" }],
    ["lunash:>par list", { shell: "lunash", host: null, command: "par list" }],
    ["lunacm:>slot list", { shell: "lunacm", host: null, command: "slot list" }],
    ["$ vtl verify", { shell: "host", host: null, command: "vtl verify" }],
    [
      "[root@c ~]# lunacm -q hagroup listgroups",
      { shell: "lunacm", host: null, command: "hagroup listgroups" },
    ],
    ["C:\\LunaClient>vtl listServers", { shell: "host", host: null, command: "vtl listServers" }],
  ])("%s", (line, expected) => {
    expect(matchPromptLine(line)).toEqual(expected);
  });

  it.each([
    "vtl (64-bit) v10.7.2-16. Copyright (c) 2024 Thales Group. All rights reserved.",
    "  > ********",
    "Type 'proceed' to continue, or 'quit' to quit now ->proceed",
    "Mar  2 10:12:01 hsm-lab1 -lunash: Command: syslog tail : admin : 10.0.0.5/51022",
  ])("is not a prompt: %s", (line) => {
    expect(matchPromptLine(line)).toBeNull();
  });
});

describe("frameCapture", () => {
  it("keeps the body between echo and footer, reads host and footer, ignores the banner before the echo", () => {
    const c = frameCapture(
      "Luna Network HSM Command Line Shell v7.8.5-20. Copyright (c) 2024 Thales Group.\n\n[h1] lunash:>client list\n\nregistered client 1: a\n\n\nCommand Result : 0 (Success)\n[h1] lunash:>",
      "lunash",
    );
    expect(c).toMatchObject({
      host: "h1",
      echoedCommand: "client list",
      lines: ["registered client 1: a"],
      footer: { shell: "lunash", code: 0, text: "Success" },
    });
  });

  it("reads lunacm footers, success and failure", () => {
    expect(frameCapture("lunacm:>x\nCommand Result : No Error\n", "lunacm").footer).toEqual({
      shell: "lunacm",
      ok: true,
    });
    expect(frameCapture("Command Result : 0xb (User Cancelled Operation)\n", "lunacm").footer).toEqual({
      shell: "lunacm",
      ok: false,
      code: "0xb",
      text: "User Cancelled Operation",
    });
  });

  it.each([
    [
      "[h] lunash:>hsm show\nx\nCommand Result : 0 (Success)\n[h] lunash:>par list\ny\n",
      "more than one command",
    ],
    [
      "x\nCommand Result : 0 (Success)\nCommand Result : 0 (Success)\n",
      "more than one Command Result footer",
    ],
    ["x\nCommand Result : 0 (Success)\ny\n", "text after the Command Result footer"],
    ["x\nCommand Result : 0 (Succ\n", "unreadable lunash footer"],
    ["x\n[h] lunash:>\nmore\n", "text after the closing prompt"],
    ["lunacm:>slot list\nx\n", "capture shows a lunacm prompt, expected lunash"],
    ["[h] lunash:>hsm show\nSerial #:  7001", "capture ends mid-line"],
  ])("refuses %j", (raw, reason) => {
    expect(reasonOf(() => frameCapture(raw, "lunash"))).toContain(reason);
  });

  it("accepts a capture without a final newline when a footer or a closing prompt ends it", () => {
    expect(frameCapture("x\nCommand Result : 0 (Success)", "lunash").lines).toEqual(["x"]);
    expect(frameCapture("[h] lunash:>a b\nx\n[h] lunash:>", "lunash").lines).toEqual(["x"]);
  });
});

describe("resolveCommand", () => {
  it.each([
    ["lunash", "hsm sh", "hsm show"],
    ["lunash", "HSM SHOW", "hsm show"],
    ["lunash", "hsm showP", "hsm showPolicies"],
    ["lunash", "par list", "partition list"],
    ["lunash", "partition sh -partition p1", "partition show"],
    ["lunash", "client fing -client c", "client fingerprint"],
    ["lunash", "syslog tail -logname messages -entries 50", "syslog tail"],
    ["lunash", "ntls info show", "ntls information show"],
    ["lunacm", "par si", "partition showinfo"],
    ["lunacm", "haGroup listGroups", "hagroup listgroups"],
    ["lunacm", "hagroup sync -group g", "hagroup synchronize"],
    ["host", "vtl listServers", "vtl listServers"],
    ["lunacm", "slot set -slot 1", "slot set"],
  ] as const)("%s %s -> %s", (shell, cmd, canonical) => {
    expect(resolveCommand(shell, cmd)).toMatchObject({ ok: true, canonical });
  });

  it.each([
    ["lunash", "hsm sho", "ambiguous"],
    ["lunash", "hsm", "incomplete"],
    ["lunash", "hsm frobnicate", "not a known word"],
    ["lunash", "", "empty"],
    ["lunash", "p list", "ambiguous"],
  ] as const)("%s %j fails (%s)", (shell, cmd, reason) => {
    const r = resolveCommand(shell, cmd);
    expect(r.ok).toBe(false);
    expect(r.ok ? "" : r.reason).toContain(reason);
  });
});

describe("parseCommandOutput", () => {
  it("never throws: unknown commands, commands without a parser, garbage", () => {
    expect(parseCommandOutput("lunash", "hsm frobnicate", "x\n")).toMatchObject({
      ok: false,
      parseError: { reason: expect.stringContaining("not a known word"), raw: "x\n" },
    });
    expect(parseCommandOutput("lunash", "status date", "done\nCommand Result : 0 (Success)\n")).toMatchObject(
      {
        ok: false,
        command: "status date",
        parseError: { reason: expect.stringContaining("no parser") },
      },
    );
    expect(parseCommandOutput("lunash", "hsm show", "\u0000\u0001garbage")).toMatchObject({ ok: false });
  });

  it("reports a device error before reading any field (an hsm show that failed)", () => {
    const raw =
      "[h] lunash:>hsm show\n\nError:  'hsm show' failed. (C0000022 : SOME_NAME)\n\nCommand Result : 65535 (Luna Shell execution)\n";
    expect(parseCommandOutput("lunash", "hsm show", raw)).toEqual({
      ok: false,
      command: "hsm show",
      deviceError: { code: "C0000022", name: "SOME_NAME", message: "SOME_NAME", warnings: [] },
    });
  });

  it("a non-zero footer alone is a device error even for commands without a parser", () => {
    expect(findDeviceError("lunash", "oops\nCommand Result : 65535 (Luna Shell execution)\n")).toEqual({
      code: "65535",
      name: "Luna Shell execution",
      message: "oops",
      warnings: [],
    });
  });

  it("refuses a capture whose echoed command is not the one asked for", () => {
    const r = parseCommandOutput("lunash", "hsm show", "[h] lunash:>client list\nregistered client 1: a\n");
    expect(r).toMatchObject({ ok: false, parseError: { reason: expect.stringContaining("'client list'") } });
  });
});

describe("detectCommand", () => {
  it("reads shell, command and host from the first echoed prompt line", () => {
    expect(detectCommand("banner\n[hsm-lab1] lunash:>hsm showP\n...")).toEqual({
      shell: "lunash",
      command: "hsm showP",
      host: "hsm-lab1",
    });
    expect(detectCommand("lunacm:>\nlunacm:>slot list\n")).toEqual({
      shell: "lunacm",
      command: "slot list",
      host: null,
    });
    expect(detectCommand("no prompt here\n")).toBeNull();
  });
});

describe("secrets in command lines and transcripts stay out of reasons", () => {
  const SECRET = "Sup3r-Secret!";
  it("option values are never quoted in resolution or framing reasons", () => {
    const two = `[h] lunash:>hsm login -password ${SECRET}\nx\n[h] lunash:>hsm show -p ${SECRET}\n`;
    const r1 = parseCommandOutput("lunash", `hsm login -password ${SECRET}`, two);
    expect(r1.ok).toBe(false);
    expect(JSON.stringify({ ...r1, parseError: undefined })).not.toContain(SECRET);
    expect(r1.ok ? "" : "parseError" in r1 ? r1.parseError.reason : "").not.toContain(SECRET);
    const r2 = resolveCommand("lunash", `hsm frob -password ${SECRET}`);
    expect(r2.ok ? "" : r2.reason).not.toContain(SECRET);
  });

  it("an unexpected line in a login transcript is located, not quoted", () => {
    const raw = `[h] lunash:>hsm login\n\n  Please enter the HSM Administrators' password:\n  > ${SECRET}\n\nCommand Result : 0 (Success)\n`;
    const r = parseCommandOutput("lunash", "hsm login", raw);
    expect(r).toMatchObject({ ok: false, parseError: { reason: expect.stringContaining("line 2 of") } });
    expect(r.ok ? "" : "parseError" in r ? r.parseError.reason : "").not.toContain(SECRET);
  });
});
