import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Secret } from "../../src/config/secret.ts";
import { canonicalJson } from "../../src/evidence/canonical.ts";
import { isSecretFieldName, sanitizedJson, sanitizeEvidenceData } from "../../src/evidence/sanitize.ts";

/** What sanitizing does to plain JSON with no registered secret in it: secret-named fields become [REDACTED]. */
function redactSecretNames(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactSecretNames);
  if (value === null || typeof value !== "object") return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const fencing = ["fencingtoken", "fencetoken", "fencingtokens"].includes(
      k.toLowerCase().replace(/[^a-z]/g, ""),
    );
    Object.defineProperty(out, k, {
      value:
        isSecretFieldName(k) && !(fencing && typeof v === "number") ? "[REDACTED]" : redactSecretNames(v),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

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

  it("sanitizedJson writes canonical JSON (sorted keys at every depth) for every kind of input", () => {
    const secret = new Secret("Fused-walk-S3cret-77", "test");
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = [cyclic, { again: cyclic }];
    let deep: unknown = "bottom";
    for (let i = 0; i < 40; i++) deep = { [`level${i}`]: deep };
    const err = Object.assign(new Error(`failed with ${secret.reveal()}`), { code: "E1", password: "x" });
    const samples: unknown[] = [
      null,
      undefined,
      true,
      -0,
      1.5e300,
      Number.NaN,
      Number.NEGATIVE_INFINITY,
      10n,
      "plain",
      `text ${secret.reveal()} inside`,
      Symbol("s"),
      () => 1,
      secret,
      new Date("2026-01-02T03:04:05.000Z"),
      new Date(Number.NaN),
      Buffer.from(`buf ${secret.reveal()}`),
      err,
      new Map<unknown, unknown>([
        [1, "one"],
        ["pin", 1234],
      ]),
      new Set([3, "x", undefined]),
      { toJSON: () => ({ z: 1, a: secret }) },
      [undefined, () => 1, Symbol("t"), 2],
      { b: 1, a: undefined, c: () => 1, fencingToken: 7, fence_token: "abc", soPassword: 5, token: 9 },
      { [`k${secret.reveal()}`]: 1, [`j${secret.reveal()}`]: 2, z: { y: [1, { x: "w" }] } },
      { "\u00e9": 1, e: 2, E: 3, "": 4, "10": 5, "9": 6 },
      cyclic,
      deep,
    ];
    for (const value of samples) {
      const json = sanitizedJson(value);
      expect(json, String(typeof value)).toBe(canonicalJson(JSON.parse(json)));
      expect(json).not.toContain(secret.reveal());
    }
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const json = sanitizedJson(value);
        expect(json).toBe(canonicalJson(JSON.parse(json)));
        // Plain JSON passes through unchanged but for key order and secret-named fields (random keys such as "otp"
        // or "Pin" are secret names too).
        expect(JSON.parse(json)).toEqual(redactSecretNames(JSON.parse(JSON.stringify(value))));
      }),
      { numRuns: 300 },
    );
  });
});
