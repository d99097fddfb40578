import { describe, expect, it } from "vitest";
import { decideLoginBudget } from "../../src/guard/budget.ts";
import { rolePolicy } from "../../src/guard/roles.ts";

const fleet = { hsmSo: 3, partitionSo: 10, co: 10, auditor: 10 };
const clean = { failures: 0, pending: false, quarantined: false };

describe("login budget", () => {
  it("allows HSM SO only with a clean ledger and a full device counter", () => {
    const so = rolePolicy("hsmSo", fleet);
    expect(decideLoginBudget(so, clean, { attemptsLeft: 3 }, { deviceCounterRequired: true })).toEqual({
      allowed: true,
      attemptsLeftAfterFailure: 2,
    });
    const byPerson = decideLoginBudget(so, clean, { attemptsLeft: 2 }, { deviceCounterRequired: true });
    expect(byPerson.allowed).toBe(false);
    if (!byPerson.allowed)
      expect(byPerson.reason).toMatch(/2 of 3 attempts left: someone failed a login outside/);
    const unread = decideLoginBudget(so, clean, {}, { deviceCounterRequired: true });
    expect(unread.allowed).toBe(false);
    if (!unread.allowed) expect(unread.reason).toMatch(/could not be read/);
  });

  it("refuses any destructive role after one recorded failure, a pending attempt or a quarantine", () => {
    for (const role of ["hsmSo", "partitionSo", "co"] as const) {
      const p = rolePolicy(role, fleet, { policy15: 0 });
      expect(
        decideLoginBudget(p, { ...clean, failures: 1 }, {}, { deviceCounterRequired: false }).allowed,
      ).toBe(false);
      expect(
        decideLoginBudget(p, { ...clean, pending: true }, {}, { deviceCounterRequired: false }).allowed,
      ).toBe(false);
      expect(
        decideLoginBudget(
          p,
          { ...clean, quarantined: true, quarantineReason: "wrong password" },
          {},
          { deviceCounterRequired: false },
        ),
      ).toEqual({
        allowed: false,
        reason: expect.stringMatching(/quarantined .*wrong password.*guard release/),
      });
    }
  });

  it("treats CO as permanent-lockout unless policy 15 is read as 1, and honours a lowered policy 20", () => {
    expect(rolePolicy("co", fleet).effect).toBe("permanent-lockout");
    expect(rolePolicy("co", fleet, { policy15: 0 }).effect).toBe("permanent-lockout");
    expect(rolePolicy("co", fleet, { policy15: 1, policy20: 3 })).toEqual({
      role: "co",
      threshold: 3,
      effect: "healing-lockout",
    });
  });

  it("allows a healing role only while a failure would leave an attempt standing", () => {
    const au = rolePolicy("auditor", fleet);
    expect(
      decideLoginBudget(au, { ...clean, failures: 8 }, {}, { deviceCounterRequired: false }).allowed,
    ).toBe(true);
    expect(
      decideLoginBudget(au, { ...clean, failures: 9 }, {}, { deviceCounterRequired: false }).allowed,
    ).toBe(false);
    // The device's own counter wins when it is more cautious than the ledger.
    expect(decideLoginBudget(au, clean, { attemptsLeft: 1 }, { deviceCounterRequired: false }).allowed).toBe(
      false,
    );
    const co = rolePolicy("co", fleet, { policy15: 1, policy20: 2 });
    expect(decideLoginBudget(co, clean, {}, { deviceCounterRequired: false })).toEqual({
      allowed: true,
      attemptsLeftAfterFailure: 1,
    });
    expect(
      decideLoginBudget(co, clean, { lockedOrZeroized: true }, { deviceCounterRequired: false }).allowed,
    ).toBe(false);
  });
});
