// ctx.approvals.waitFor (src/engine/approval-wait.ts) with scripted ports and an injected sleep: it waits in
// awaiting-approval (no error, no retry) until approved, keeping only the device it will change and taking the rest
// back afterwards (retrying while they are busy); rejected, expired and withdrawn end it with ApprovalNotGranted.

import { describe, expect, it } from "vitest";
import type { ApprovalState } from "../../src/coord/approvals.ts";
import { ApprovalNotGranted, type JobLocksPort, waitForApproval } from "../../src/engine/approval-wait.ts";
import { isRetryable } from "../../src/engine/errors.ts";

const base: ApprovalState = {
  jobId: "j1",
  runbook: "deprovision",
  action: "zeroize hsm-c1",
  planDigest: "abc",
  requester: "operator:test",
  device: "hsm-c1",
  serial: "700301",
  required: 2,
  principals: null,
  status: "awaiting-approval",
  requestedAt: "2026-01-01T00:00:00.000Z",
  expiresAt: "2026-01-01T01:00:00.000Z",
  approvals: [],
  refusals: [],
};

function script(states: Partial<ApprovalState>[]) {
  const seq = states.map((s) => ({ ...base, ...s }));
  let i = 0;
  const events: string[] = [];
  const locks: JobLocksPort & { held: Set<string>; busyTries: number } = {
    held: new Set(["device:hsm-c1", "client:client-a", "client:client-b"]),
    busyTries: 1,
    throwIfLost() {},
    async narrowTo(devices) {
      const keep = new Set(devices.map((d) => `device:${d}`));
      const given = [...this.held].filter((r) => !keep.has(r));
      for (const r of given) this.held.delete(r);
      events.push(`narrow:${given.join(",")}`);
      return given;
    },
    async widen(resources) {
      if (this.busyTries-- > 0) {
        events.push("widen:busy");
        return false;
      }
      for (const r of resources) this.held.add(r);
      events.push(`widen:${resources.join(",")}`);
      return true;
    },
  };
  const deps = {
    jobId: "j1",
    request: async () => seq[0]!,
    state: async () => seq[Math.min(++i, seq.length - 1)]!,
    note: async (d: Record<string, unknown>) => {
      events.push(`note:${Object.keys(d).join(",")}`);
    },
    log: { info() {}, warn() {}, error() {}, debug() {} },
    signal: new AbortController().signal,
    locks,
    pollMs: 1000,
    sleep: async () => {
      events.push("sleep");
    },
  };
  return { deps, events, locks };
}

describe("waiting for approvals", () => {
  it("waits, holding only the device, until approved; then takes the hosts back (retrying while busy)", async () => {
    const { deps, events, locks } = script([
      {},
      {},
      { approvals: [{ principal: "alice", at: "t", confirmation: "700301" }] },
      {
        status: "approved",
        approvals: [
          { principal: "alice", at: "t", confirmation: "700301" },
          { principal: "bob", at: "t", confirmation: "700301" },
        ],
      },
    ]);
    const req = { device: "hsm-c1", serial: "700301", required: 2, expiresMinutes: 60 };
    const state = await waitForApproval(deps, req, { keepDevices: ["hsm-c1"] });
    expect(state.status).toBe("approved");
    expect(events[1]).toBe("narrow:client:client-a,client:client-b");
    expect(events.filter((e) => e === "widen:busy")).toHaveLength(1);
    expect(events).toContain("widen:client:client-a,client:client-b");
    expect(events.indexOf("widen:client:client-a,client:client-b")).toBeGreaterThan(
      events.lastIndexOf("note:approvals,device,action,granted,required,refusals,expiresAt"),
    );
    expect([...locks.held].sort()).toEqual(["client:client-a", "client:client-b", "device:hsm-c1"]);
  });

  it.each([
    [
      "rejected",
      { status: "rejected", rejection: { principal: "carol", at: "t", reason: "not yet" } },
      /rejected by carol: not yet/,
    ],
    ["expired", { status: "expired" }, /approvals expired at .* with 0\/2 granted/],
    ["withdrawn", { status: "withdrawn" }, /approval request is withdrawn/],
  ] as const)("%s: ApprovalNotGranted, never retried, hosts not taken back", async (_n, end, message) => {
    const { deps, events } = script([{}, end as Partial<ApprovalState>]);
    const err = await waitForApproval(deps, {
      device: "hsm-c1",
      serial: "700301",
      required: 2,
      expiresMinutes: 60,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApprovalNotGranted);
    expect(isRetryable(err)).toBe(false);
    expect((err as Error).message).toMatch(message);
    expect(events.some((e) => e.startsWith("widen"))).toBe(false);
  });

  it("an approval already granted (a resumed job) gives nothing back and waits for nothing", async () => {
    const { deps, events } = script([{ status: "approved" }]);
    expect(
      (await waitForApproval(deps, { device: "hsm-c1", serial: "700301", required: 2, expiresMinutes: 60 }))
        .status,
    ).toBe("approved");
    expect(events.some((e) => e.startsWith("narrow") || e === "sleep")).toBe(false);
  });
});
