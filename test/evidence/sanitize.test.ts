import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Secret } from "../../src/config/secret.ts";
import { canonicalJson } from "../../src/evidence/canonical.ts";
import { isSecretFieldName, sanitizeEvidenceData } from "../../src/evidence/sanitize.ts";

describe("evidence sanitizing", () => {
  it("recognises secret field names however they are spelled", () => {
    for (const name of [
      "password",
      "soPassword",
      "co_password",
      "partition-pin",
      "PIN",
      "apiKey",
      "api_key",
      "privateKey",
      "clientSecret",
      "token",
      "accessToken",
      "passphrase",
      "credentials",
      "SOPASSWORD",
    ]) {
      expect(isSecretFieldName(name), name).toBe(true);
    }
    for (const name of [
      "device",
      "serial",
      "command",
      "pinned",
      "hostKeyPinned",
      "spin",
      "passed",
      "role",
      "text",
    ]) {
      expect(isSecretFieldName(name), name).toBe(false);
    }
  });

  it("lets a numeric fencing token through but nothing else under a token name", () => {
    expect(sanitizeEvidenceData({ fencingToken: 7, fence_token: 8, token: 9 })).toEqual({
      fencingToken: 7,
      fence_token: 8,
      token: "[REDACTED]",
    });
    expect(sanitizeEvidenceData({ fencingToken: "abc" })).toEqual({ fencingToken: "[REDACTED]" });
  });

  it("turns anything into plain JSON data: dates, maps, sets, buffers, cycles, undefined, NaN", () => {
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    const out = sanitizeEvidenceData({
      when: new Date("2026-01-02T03:04:05.000Z"),
      m: new Map([["k", 1]]),
      s: new Set([1, 2]),
      b: Buffer.from("Command Result : 0"),
      n: Number.NaN,
      big: 10n,
      u: undefined,
      arr: [undefined, 1],
      cyclic,
    });
    expect(out).toEqual({
      when: "2026-01-02T03:04:05.000Z",
      m: { k: 1 },
      s: [1, 2],
      b: "Command Result : 0",
      n: "NaN",
      big: "10",
      arr: [null, 1],
      cyclic: { a: 1, self: "[circular]" },
    });
    expect(() => canonicalJson(out)).not.toThrow();
  });

  it("never lets a registered secret through, wherever it hides (property)", () => {
    const secret = new Secret("Zq9-unguessable-S3cret", "test");
    fc.assert(
      fc.property(fc.jsonValue(), fc.string(), (value, prefix) => {
        const data = {
          value,
          text: `${prefix}${secret.reveal()}`,
          list: [secret],
          [`k${secret.reveal()}`]: 1,
        };
        expect(canonicalJson(sanitizeEvidenceData(data))).not.toContain(secret.reveal());
      }),
      { numRuns: 200 },
    );
  });

  it("canonical JSON sorts keys at every depth and is stable", () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: "x" } })).toBe(
      '{"a":{"c":"x","d":[3,{"y":2,"z":1}]},"b":1}',
    );
    expect(() => canonicalJson({ x: Number.POSITIVE_INFINITY })).toThrow();
  });
});
