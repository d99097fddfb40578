// redact() at fleet scale: with a few secrets it searches for each; past a threshold it scans the text once through
// a prefix index (a 1,000-device fleet registers thousands of secrets and every received shell chunk is redacted).
// Both ways must redact exactly the same spans. The registry is process-wide and only grows, so the order of the
// tests in this file matters: the small-set cases run first, then the same texts again after thousands of
// unrelated secrets were registered.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { redact, registerSecretValue } from "../../src/config/secret.ts";

const SECRETS = ["Appliance-A1-pw", "HsmSo-A1-secret", "abcdef", "defghi", "pw-pw"];
for (const s of SECRETS) registerSecretValue(s);

const TEXTS = [
  "password: Appliance-A1-pw\r\n",
  "twice Appliance-A1-pw and Appliance-A1-pw, and HsmSo-A1-secret",
  "overlap abcdefghi end",
  "adjacent abcdefdefghi",
  "self-overlap pw-pw-pw",
  "nothing secret here at all",
  "abc",
  "",
];

describe("redact", () => {
  const small = TEXTS.map((t) => redact(t));

  it("replaces every occurrence, merging overlapping ones so no fragment survives", () => {
    expect(small[0]).toBe("password: [REDACTED]\r\n");
    expect(small[1]).toBe("twice [REDACTED] and [REDACTED], and [REDACTED]");
    expect(small[2]).toBe("overlap [REDACTED] end");
    expect(small[3]).toBe("adjacent [REDACTED][REDACTED]");
    expect(small[4]).toBe("self-overlap [REDACTED]");
    expect(small[5]).toBe("nothing secret here at all");
    expect(small[6]).toBe("abc");
    expect(small[7]).toBe("");
  });

  it("never lets a registered value through, for arbitrary text around it (few secrets)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.constantFrom(...SECRETS), fc.string({ maxLength: 6 })), { maxLength: 8 }),
        (parts) => {
          const out = redact(parts.join(""));
          for (const s of SECRETS) expect(out.includes(s)).toBe(false);
        },
      ),
    );
  });

  it("redacts the same spans once thousands of secrets are registered (indexed scan)", () => {
    // Unrelated values that occur in none of the texts: the results must not change.
    for (let i = 0; i < 5000; i++) registerSecretValue(`Zq-unrelated-${i}-Zq`);
    expect(TEXTS.map((t) => redact(t))).toEqual(small);
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.constantFrom(...SECRETS), fc.string({ maxLength: 6 })), { maxLength: 8 }),
        (parts) => {
          const out = redact(parts.join(""));
          for (const s of SECRETS) expect(out.includes(s)).toBe(false);
        },
      ),
    );
  });

  it("finds any of thousands of values in a long text, and leaves clean text untouched", () => {
    const many = Array.from({ length: 3000 }, (_, i) => `Bench-${i}-appliance-pw`);
    for (const s of many) registerSecretValue(s);
    const text = many
      .filter((_, i) => i % 97 === 0)
      .map((s, i) => `line ${i}: ${s}\n`)
      .join("");
    const out = redact(text);
    for (const s of many) expect(out.includes(s)).toBe(false);
    expect(out.split("[REDACTED]").length - 1).toBe(Math.ceil(3000 / 97));
    const clean = "HSM Label: BENCH-0001\nSerial #: 800001\n".repeat(50);
    expect(redact(clean)).toBe(clean);
  });
});

describe("the clean-text memo", () => {
  it("a text found clean is scanned again once a value it holds is registered", () => {
    const text = "a long reply line that is clean today: Later-Registered-Secret-9 sits in it";
    expect(redact(text)).toBe(text);
    // Asked again: the memo answers, the text is unchanged.
    expect(redact(text)).toBe(text);
    registerSecretValue("Later-Registered-Secret-9");
    expect(redact(text)).toBe("a long reply line that is clean today: [REDACTED] sits in it");
  });

  it("past its bounds it starts over, and still never answers clean for a text that is not", () => {
    const secret = "Memo-Bound-Secret-Value";
    registerSecretValue(secret);
    for (let i = 0; i < 20_000; i++) redact(`filler text number ${i} that holds no known value at all`);
    const dirty = `the secret ${secret} in a text long enough to be remembered`;
    expect(redact(dirty)).toBe("the secret [REDACTED] in a text long enough to be remembered");
    expect(redact(dirty)).toBe("the secret [REDACTED] in a text long enough to be remembered");
  });
});
