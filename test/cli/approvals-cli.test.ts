// `lunafleet approve` / `lunafleet reject` as operators run them: the real CLI in a child process, the embedded Redis
// found through the data dir, the decision recorded in the job's evidence.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { approvalState, requestApproval } from "../../src/coord/approvals.ts";
import { EvidenceLog } from "../../src/evidence/index.ts";
import { withRedis } from "../helpers/redis.ts";

const redis = await withRedis();
const bin = fileURLToPath(new URL("../../bin/lunafleet.js", import.meta.url));

function lunafleet(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("REDIS_")));
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [bin, ...args, "--data-dir", redis.dataDir],
      { env },
      (err, stdout, stderr) => {
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

describe("lunafleet approve / reject", () => {
  it("counts distinct principals with the right serial, refuses the rest (exit 1), and records it all", async () => {
    const jobId = `cli-appr-${process.pid}`;
    await requestApproval(redis.client(), jobId, {
      device: "hsm-b3",
      serial: "700203",
      required: 2,
      expiresMinutes: 60,
    });

    const wrong = await lunafleet(["approve", jobId, "--as", "alice", "--confirm", "700202"]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/does not match the serial of hsm-b3/);

    const one = await lunafleet(["approve", jobId, "--as", "alice", "--confirm", "700203"]);
    expect(one.code).toBe(0);
    expect(one.stdout).toMatch(/awaiting-approval — hsm-b3 \(serial 700203\), 1\/2 approvals: alice/);

    const again = await lunafleet(["approve", jobId, "--as", "alice", "--confirm", "700203"]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already approved/);

    const two = await lunafleet(["approve", jobId, "--as", "bob", "--confirm", "700203"]);
    expect(two.code).toBe(0);
    expect(two.stdout).toMatch(/approved — hsm-b3 .* 2\/2 approvals: alice at .*, bob at /);
    expect((await approvalState(redis.client(), jobId))?.status).toBe("approved");

    const shown = await lunafleet(["approvals", jobId]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/approved — hsm-b3 \(serial 700203\), 2\/2 approvals/);
    expect(shown.stdout).toMatch(/not counted: alice at .* \(duplicate-principal\)/);

    const log = await EvidenceLog.open(redis.client(), redis.dataDir, jobId);
    const events = (await log.records()).map((r) => [r.actor, (r.data as { event: string }).event]);
    expect(events).toEqual([
      ["alice", "refused"],
      ["alice", "approved"],
      ["alice", "refused"],
      ["bob", "approved"],
    ]);
    expect((await log.verify()).ok).toBe(true);
  });

  it("reject stops the request; unknown jobs exit 2 and write nothing", async () => {
    const jobId = `cli-rej-${process.pid}`;
    await requestApproval(redis.client(), jobId, {
      device: "hsm-a1",
      serial: "700101",
      required: 2,
      expiresMinutes: 60,
    });
    const r = await lunafleet(["reject", jobId, "--as", "carol", "--reason", "keys not yet migrated"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/rejected by carol: keys not yet migrated/);
    expect((await approvalState(redis.client(), jobId))?.status).toBe("rejected");

    const none = await lunafleet(["approve", "no-such-job", "--as", "alice", "--confirm", "700101"]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/no approval request/);
    const log = await EvidenceLog.open(redis.client(), redis.dataDir, "no-such-job");
    expect(await log.records()).toEqual([]);
  });
});
