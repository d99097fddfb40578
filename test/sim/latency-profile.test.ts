// The twin's latency profile (src/sim/appliance/latency.ts): which delay a command gets (by the command lunash
// resolved, abbreviations included), the jitter's bounds, and that a seeded profile repeats itself. Pure: no timers.
import { describe, expect, it } from "vitest";
import { tokenize } from "../../src/sim/appliance/command-line.ts";
import { lunashTable } from "../../src/sim/appliance/commands.ts";
import {
  commandDelayMs,
  type LatencyProfile,
  loginDelayMs,
  realisticLunaLatency,
  seededRandom,
} from "../../src/sim/appliance/latency.ts";

const canonical = (line: string): string => {
  const res = lunashTable().resolve(tokenize(line));
  if (res.kind !== "ok") throw new Error(`${line}: ${res.kind}`);
  return res.canonical;
};

describe("latency profile", () => {
  const fixed = (random: number): LatencyProfile =>
    realisticLunaLatency(1, { random: () => random, jitter: 0.2 });

  it("gives each command its own delay, by the command lunash resolved (abbreviations too)", () => {
    const mid = fixed(0.5); // jitter's midpoint: the nominal delay
    expect(commandDelayMs(mid, canonical("hsm show"))).toBe(500);
    expect(commandDelayMs(mid, canonical("hsm sh"))).toBe(500);
    expect(commandDelayMs(mid, canonical("partition show -partition par1"))).toBe(800);
    expect(commandDelayMs(mid, canonical("par sh -par par1"))).toBe(800);
    expect(commandDelayMs(mid, canonical("package list"))).toBe(700);
    // Not in the table: the default; "hsm showPolicies" is not "hsm show".
    expect(commandDelayMs(mid, canonical("hsm showPolicies"))).toBe(300);
    expect(loginDelayMs(mid)).toBe(1500);
    expect(commandDelayMs(mid, canonical("exit"))).toBe(0);
  });

  it("jitters each delay within ± the fraction", () => {
    expect(commandDelayMs(fixed(0), "hsm show")).toBe(400);
    expect(commandDelayMs(fixed(0.999_999), "hsm show")).toBe(600);
    expect(loginDelayMs(fixed(0))).toBe(1200);
    expect(loginDelayMs(fixed(0.999_999))).toBe(1800);
  });

  it("is nothing without a profile, and repeats itself from the same seed", () => {
    expect(commandDelayMs(undefined, "hsm show")).toBe(0);
    expect(loginDelayMs(undefined)).toBe(0);
    const a = realisticLunaLatency(7);
    const b = realisticLunaLatency(7);
    const seqA = Array.from({ length: 50 }, () => loginDelayMs(a));
    expect(Array.from({ length: 50 }, () => loginDelayMs(b))).toEqual(seqA);
    expect(new Set(seqA).size).toBeGreaterThan(10);
    for (const ms of seqA) {
      expect(ms).toBeGreaterThanOrEqual(1200);
      expect(ms).toBeLessThanOrEqual(1800);
    }
    const r = seededRandom(3);
    for (let i = 0; i < 1000; i++) {
      const x = r();
      expect(x).toBeGreaterThanOrEqual(0);
      expect(x).toBeLessThan(1);
    }
  });
});
