// Approvals over a real redis-server: each transition is one Lua script; distinct principals, typed serial, expiry,
// allow-list, rejection, idempotent re-request, concurrent approvals, and the evidence records.
import { describe, expect, it } from "vitest";
import {
  type ApprovalEvidence,
  ApprovalRefused,
  ApprovalRequestConflict,
  approvalKey,
  approvalState,
  NoApprovalRequest,
  reject,
  requestApproval,
} from "../../src/coord/approvals.ts";
import { EvidenceLog } from "../../src/evidence/index.ts";
import type { RedisClient } from "../../src/redis/client.ts";
import { passDeadline } from "../helpers/approvals.ts";
import { withRedis } from "../helpers/redis.ts";
import { demoApprovers, signedApprove } from "../helpers/ssh-signing.ts";

const redis = await withRedis();
let n = 0;
const job = () => `appr-${process.pid}-${++n}`;
const REQ = {
  device: "hsm-a1",
  serial: "700101",
  required: 2,
  expiresMinutes: 60,
  runbook: "deprovision",
  planDigest: "cd".repeat(32),
  requester: "ops",
};
const verifierFleet = {
  identity: { principals: demoApprovers() },
  approvals: { required: 2, expiresMinutes: 60 },
};

/** Approvals are signed (src/coord/signed-approvals.ts): each principal signs the statement with its demo key. */
function approve(
  redis: RedisClient,
  jobId: string,
  input: { principal: string; confirmation: string },
  opts: { evidence?: ApprovalEvidence } = {},
) {
  const who = input.principal.toLowerCase() as "alice" | "bob" | "carol";
  return signedApprove(redis, jobId, who, verifierFleet as never, {
    ...opts,
    confirmation: input.confirmation,
  });
}

describe("approvals", () => {
  it("needs two distinct principals, each typing the device serial", async () => {
    const r = redis.client();
    const id = job();
    const asked = await requestApproval(r, id, REQ);
    expect(asked).toMatchObject({
      status: "awaiting-approval",
      approvals: [],
      required: 2,
      serial: "700101",
    });
    expect(Date.parse(asked.expiresAt) - Date.parse(asked.requestedAt)).toBe(3_600_000);

    const one = await approve(r, id, { principal: "alice", confirmation: "700101" });
    expect(one.status).toBe("awaiting-approval");
    expect(one.approvals.map((a) => a.principal)).toEqual(["alice"]);

    // The same principal again (any case) does not count, and the refusal is recorded.
    const dup = await approve(r, id, { principal: "ALICE", confirmation: "700101" }).catch((e: unknown) => e);
    expect(dup).toBeInstanceOf(ApprovalRefused);
    expect((dup as ApprovalRefused).reason).toBe("duplicate-principal");
    expect((await approvalState(r, id))?.status).toBe("awaiting-approval");

    // A wrong serial does not count either.
    const wrong = await approve(r, id, { principal: "bob", confirmation: "700102" }).catch((e: unknown) => e);
    expect((wrong as ApprovalRefused).reason).toBe("wrong-confirmation");
    expect((wrong as Error).message).not.toContain("700102");

    const two = await approve(r, id, { principal: "bob", confirmation: "700101" });
    expect(two.status).toBe("approved");
    expect(two.approvals.map((a) => a.principal)).toEqual(["alice", "bob"]);
    expect(two.approvedAt).toBeDefined();
    expect(two.refusals.map((x) => [x.principal, x.reason])).toEqual([
      ["alice", "duplicate-principal"], // counted for the key's registered principal, whatever the case typed
      ["bob", "wrong-confirmation"],
    ]);

    // Approved is final for approvals: a third one is refused (recorded), rejection too.
    const late = await approve(r, id, { principal: "carol", confirmation: "700101" }).catch(
      (e: unknown) => e,
    );
    expect((late as ApprovalRefused).reason).toBe("not-awaiting-approval");
    const lateReject = await reject(r, id, { principal: "carol", reason: "too late" }).catch(
      (e: unknown) => e,
    );
    expect((lateReject as ApprovalRefused).reason).toBe("not-awaiting-approval");
    expect((await approvalState(r, id))?.status).toBe("approved");
  });

  it("asking again returns the standing request (a resumed job keeps its approvals); another device conflicts", async () => {
    const r = redis.client();
    const id = job();
    await requestApproval(r, id, REQ);
    await approve(r, id, { principal: "alice", confirmation: "700101" });
    const again = await requestApproval(r, id, REQ);
    expect(again.approvals.map((a) => a.principal)).toEqual(["alice"]);
    await expect(
      requestApproval(r, id, { ...REQ, device: "hsm-a2", serial: "700102" }),
    ).rejects.toBeInstanceOf(ApprovalRequestConflict);
  });

  it("a job that never asked has no state, and approving it is refused", async () => {
    const r = redis.client();
    const id = job();
    expect(await approvalState(r, id)).toBeNull();
    await expect(approve(r, id, { principal: "alice", confirmation: "700101" })).rejects.toBeInstanceOf(
      NoApprovalRequest,
    );
    expect(await r.exists(approvalKey(id))).toBe(0);
  });

  it("expires: an incomplete request becomes expired and approvals stop counting", async () => {
    const r = redis.client();
    const id = job();
    await requestApproval(r, id, REQ);
    await approve(r, id, { principal: "alice", confirmation: "700101" });
    await passDeadline(r, id);
    expect((await approvalState(r, id))?.status).toBe("expired");
    const after = await approve(r, id, { principal: "bob", confirmation: "700101" }).catch((e: unknown) => e);
    expect((after as ApprovalRefused).reason).toBe("not-awaiting-approval");
    expect((await approvalState(r, id))?.approvals.map((a) => a.principal)).toEqual(["alice"]);
  });

  it("an approval that was not used before the deadline expires too", async () => {
    const r = redis.client();
    const id = job();
    await requestApproval(r, id, { ...REQ, required: 1 });
    expect((await approve(r, id, { principal: "alice", confirmation: "700101" })).status).toBe("approved");
    await passDeadline(r, id);
    expect((await approvalState(r, id))?.status).toBe("expired");
  });

  it("an allow-list refuses anyone else (recorded)", async () => {
    const r = redis.client();
    const id = job();
    await requestApproval(r, id, { ...REQ, principals: ["alice", "bob"] });
    const mallory = await approve(r, id, { principal: "carol", confirmation: "700101" }).catch(
      (e: unknown) => e,
    );
    expect((mallory as ApprovalRefused).reason).toBe("principal-not-allowed");
    const mReject = await reject(r, id, { principal: "carol", reason: "no" }).catch((e: unknown) => e);
    expect((mReject as ApprovalRefused).reason).toBe("principal-not-allowed");
    await approve(r, id, { principal: "Alice", confirmation: "700101" });
    const s = await approve(r, id, { principal: "bob", confirmation: "700101" });
    expect(s.status).toBe("approved");
    expect(s.refusals.map((x) => x.principal)).toEqual(["carol", "carol"]);
  });

  it("a rejection is final and keeps who and why", async () => {
    const r = redis.client();
    const id = job();
    await requestApproval(r, id, REQ);
    await approve(r, id, { principal: "alice", confirmation: "700101" });
    await expect(reject(r, id, { principal: "bob", reason: "   " })).rejects.toThrow(/needs a reason/);
    const s = await reject(r, id, { principal: "bob", reason: "backups not verified" });
    expect(s.status).toBe("rejected");
    expect(s.rejection).toMatchObject({ principal: "bob", reason: "backups not verified" });
    const after = await approve(r, id, { principal: "carol", confirmation: "700101" }).catch(
      (e: unknown) => e,
    );
    expect((after as ApprovalRefused).reason).toBe("not-awaiting-approval");
  });

  it("concurrent approvals by the same principal from many connections count once", async () => {
    const id = job();
    await requestApproval(redis.client(), id, { ...REQ, required: 3 });
    const clients = Array.from({ length: 8 }, () => redis.client());
    const results = await Promise.allSettled(
      clients.map((c) => approve(c, id, { principal: "alice", confirmation: "700101" })),
    );
    expect(results.filter((x) => x.status === "fulfilled")).toHaveLength(1);
    const s = await approvalState(redis.client(), id);
    expect(s?.approvals).toHaveLength(1);
    expect(s?.refusals).toHaveLength(7);
  });

  it("records every event in the job's evidence, which still verifies", async () => {
    const r = redis.client();
    const id = job();
    const log = await EvidenceLog.open(r, redis.dataDir, id);
    await requestApproval(r, id, REQ, { evidence: log });
    await requestApproval(r, id, REQ, { evidence: log }); // standing request: not recorded twice
    await approve(r, id, { principal: "alice", confirmation: "700101" }, { evidence: log });
    await approve(r, id, { principal: "alice", confirmation: "700101" }, { evidence: log }).catch(() => {});
    await approve(r, id, { principal: "bob", confirmation: "999999" }, { evidence: log }).catch(() => {});
    await approve(r, id, { principal: "bob", confirmation: "700101" }, { evidence: log });
    const records = await log.records();
    expect(records.map((x) => x.kind)).toEqual(["approval", "approval", "approval", "approval", "approval"]);
    expect(records.map((x) => (x.data as { event: string }).event)).toEqual([
      "requested",
      "approved",
      "refused",
      "refused",
      "approved",
    ]);
    expect(records.map((x) => x.actor ?? null)).toEqual([null, "alice", "alice", "bob", "bob"]);
    expect(JSON.stringify(records)).not.toContain("999999");
    expect((await log.verify()).ok).toBe(true);
  });
});
