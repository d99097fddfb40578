// The driver against a scripted channel under a fake clock: how it reads prompts that arrive in pieces. Deterministic:
// the clock moves only when the test says so.
import { afterEach, describe, expect, it, vi } from "vitest";
import { lunashPlatform } from "../../src/shell/platform.ts";
import { ShellSession } from "../../src/shell/session.ts";
import { BaseShellChannel } from "../../src/transport/channel.ts";

class ScriptedChannel extends BaseShellChannel {
  readonly written: string[] = [];
  write(data: string): void {
    this.written.push(data);
  }
  close(): void {
    this.markClosed("closed by test");
  }
  send(text: string): void {
    this.emitData(text);
  }
}

afterEach(() => {
  vi.useRealTimers();
});

describe("prompts in pieces", () => {
  it("a coloured prompt split inside its escape sequence is waited for, not taken for an unknown prompt", async () => {
    vi.useFakeTimers();
    const ch = new ScriptedChannel("hsm-x");
    const opening = ShellSession.open(ch, {
      target: "hsm-x",
      platform: lunashPlatform,
      commandTimeoutMs: 60_000,
      unknownPromptMs: 300,
    });
    ch.send("Luna Network HSM Command Line Shell v7.8.5-20.\r\n\r\n\x1b[1;32m[hsm-x] lunash:>\x1b[0");
    // Far longer than the unknown-prompt wait: the sequence is incomplete, so nothing is decided yet.
    await vi.advanceTimersByTimeAsync(5_000);
    ch.send("m ");
    const session = await opening;
    expect(session.prompt).toBe("[hsm-x] lunash:>");
    expect(session.bannerVersion).toBe("7.8.5-20");
  });

  it("a partial line that then stays silent is an unknown prompt, after the configured wait only", async () => {
    vi.useFakeTimers();
    const ch = new ScriptedChannel("hsm-x");
    const opening = ShellSession.open(ch, {
      target: "hsm-x",
      platform: lunashPlatform,
      commandTimeoutMs: 60_000,
      unknownPromptMs: 300,
    }).catch((e: unknown) => e);
    ch.send("Please choose an option [1-3]: ");
    await vi.advanceTimersByTimeAsync(299);
    expect(ch.closed).toBe(false);
    await vi.advanceTimersByTimeAsync(2);
    const err = await opening;
    expect((err as Error).name).toBe("UnexpectedPrompt");
    expect(ch.closed).toBe(true);
  });
});
