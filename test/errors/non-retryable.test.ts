// The root of the error taxonomy: `instanceof NonRetryable` is the one retry question, for errors that extend it and for
// instances marked where the class cannot extend it (a lost connection is retryable before a login, never after).
import { describe, expect, it } from "vitest";
import { JobCancelled, UnexpectedResult } from "../../src/engine/errors.ts";
import { isRetryable, markNonRetryable, NonRetryable } from "../../src/errors/non-retryable.ts";
import { GuardRefused } from "../../src/guard/errors.ts";
import { CommandRefused, DeviceError, ParseFailed, UnexpectedPrompt } from "../../src/shell/errors.ts";
import { ConnectionLost, HostKeyMismatch } from "../../src/transport/errors.ts";

describe("NonRetryable", () => {
  it("answers for subclasses and for marked instances; subclasses keep their own instanceof", () => {
    class A extends NonRetryable {}
    class B extends NonRetryable {}
    const a = new A("a");
    expect(a).toBeInstanceOf(NonRetryable);
    expect(a instanceof A).toBe(true);
    // A subclass's instanceof is its own: a NonRetryable of another kind is not one of it.
    expect(a instanceof B).toBe(false);
    expect(new UnexpectedResult("x") instanceof JobCancelled).toBe(false);
    const plain = new Error("plain");
    expect(plain instanceof NonRetryable).toBe(false);
    expect(isRetryable(plain)).toBe(true);
    markNonRetryable(plain);
    expect(plain instanceof NonRetryable).toBe(true);
    expect(isRetryable(plain)).toBe(false);
    expect(isRetryable("not an error")).toBe(false);
  });

  it("the types no retry may touch: wrong credential (guard), host key mismatch, unexpected prompt, guard refusal, and the shell's others", () => {
    const never = [
      new HostKeyMismatch("hsm-x", "SHA256:a", "SHA256:b"),
      new UnexpectedPrompt({ target: "hsm-x", command: "c", cause: "?" }, "?"),
      new GuardRefused({ device: "hsm-x", role: "co", reason: "budget" }),
      new CommandRefused({ target: "hsm-x", command: "hsm zeroize" }, "hsm-zeroize", "no"),
      new ParseFailed({ target: "hsm-x", command: "hsm show", cause: "garbled" }, "x"),
      new DeviceError(
        { target: "hsm-x", command: "hsm show" },
        { code: "1", name: "n", message: "m", warnings: [] },
      ),
      new ConnectionLost({ target: "hsm-x", cause: "lost during a login", retryable: false }),
    ];
    for (const e of never) expect(isRetryable(e), e.name).toBe(false);
    expect(isRetryable(new ConnectionLost({ target: "hsm-x", cause: "lost before anything was sent" }))).toBe(
      true,
    );
  });
});
