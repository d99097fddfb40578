// `lunafleet approve` / `lunafleet reject` as operators run them: the real CLI in a child process, the embedded Redis
// found through the data dir, the decision recorded in the job's evidence.
import { execFile } from "node:child_process";
import { userInfo } from "node:os";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { approvalState, requestApproval } from "../../src/coord/approvals.ts";
import { EvidenceLog } from "../../src/evidence/index.ts";
import { createJobQueue, publishFleet } from "../../src/queue/jobs.ts";
import { demoFleet } from "../helpers/engine.ts";
import { withRedis } from "../helpers/redis.ts";
import { demoKey, tempDir } from "../helpers/ssh-signing.ts";

const redis = await withRedis();
// The jobs exist in the queue (no worker takes them: they stay queued), as a job that asked for approval does.
const queue = createJobQueue(redis.client());
afterAll(() => queue.close());
async function queued(jobId: string): Promise<void> {
  await queue.add(
    "deprovision",
    { runbook: "deprovision", params: {}, actor: "operator:t", requestedAt: "", fleetDigest: "" },
    { jobId },
  );
}
const bin = fileURLToPath(new URL("../../bin/lunafleet.js", import.meta.url));
/** The principal of the OS account running the tests (the demo fleet lists no OS account: os:<user>). */
const me = `os:${userInfo().username}`;

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
  it("counts only signatures by registered keys (ssh-keygen -Y sign), refuses the rest (exit 1), records it all", async () => {
    const jobId = `cli-appr-${process.pid}`;
    await queued(jobId);
    await publishFleet(redis.client(), demoFleet()); // the daemon publishes its fleet: the key registry
    await requestApproval(redis.client(), jobId, {
      device: "hsm-b3",
      serial: "700203",
      required: 2,
      expiresMinutes: 60,
      runbook: "deprovision",
      planDigest: "ef".repeat(32),
      requester: "operator:t",
    });
    const keys = tempDir("lf-cli-keys-");
    const alice = demoKey(keys, "alice").path;
    const bob = demoKey(keys, "bob").path;

    // A principal's word is not an approval: refused, recorded, nothing counted.
    const unsigned = await lunafleet(["approve", jobId, "--as", "alice", "--confirm", "700203"]);
    expect(unsigned.code).toBe(1);
    expect(unsigned.stderr).toMatch(/counts only as a signature by a key registered in the fleet file/);

    const wrong = await lunafleet(["approve", jobId, "--key", alice, "--confirm", "700202"]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/does not match the serial of hsm-b3/);

    const one = await lunafleet(["approve", jobId, "--key", alice, "--confirm", "700203"]);
    expect(one.code, one.stderr).toBe(0);
    expect(one.stderr).toMatch(/signing this statement with .*demo-alice:\n {2}lunafleet-approval v1\n/);
    expect(one.stdout).toMatch(/awaiting-approval — hsm-b3 \(serial 700203\), 1\/2 approvals: alice/);

    const again = await lunafleet(["approve", jobId, "--key", alice]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already approved/);

    const two = await lunafleet(["approve", jobId, "--key", bob]);
    expect(two.code).toBe(0);
    expect(two.stdout).toMatch(/approved — hsm-b3 .* 2\/2 approvals: alice at .*, bob at /);
    expect((await approvalState(redis.client(), jobId))?.status).toBe("approved");

    const shown = await lunafleet(["approvals", jobId]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/approved — hsm-b3 \(serial 700203\), 2\/2 approvals/);
    expect(shown.stdout).toMatch(/not counted: alice at .* \(unsigned\)/);
    expect(shown.stdout).toMatch(/not counted: alice at .* \(duplicate-principal\)/);

    const log = await EvidenceLog.open(redis.client(), redis.dataDir, jobId);
    const approvals = (await log.records()).filter((r) => r.kind === "approval");
    expect(
      approvals.map((r) => [
        (r.data as { event: string }).event,
        (r.data as { reason?: string }).reason ?? null,
      ]),
    ).toEqual([
      ["refused", "unsigned"],
      ["refused", "wrong-confirmation"],
      ["approved", null],
      ["refused", "duplicate-principal"],
      ["approved", null],
    ]);
    // The signed statement and signature are in the evidence, for ssh-keygen -Y verify.
    const signed = approvals.filter((r) => (r.data as { event: string }).event === "approved");
    expect(signed.map((r) => r.actor)).toEqual(["alice", "bob"]);
    expect((signed[0]!.data as { signature: string }).signature).toMatch(/^-----BEGIN SSH SIGNATURE-----/);
    expect((await log.verify()).ok).toBe(true);
  }, 180_000); // seven real CLI processes, each signing with ssh-keygen: about a minute on a loaded 2-core machine

  it("reject stops the request; unknown jobs exit 2 and write nothing", async () => {
    const jobId = `cli-rej-${process.pid}`;
    await queued(jobId);
    await requestApproval(redis.client(), jobId, {
      device: "hsm-a1",
      serial: "700101",
      required: 2,
      expiresMinutes: 60,
    });
    // Who rejects is who runs the command (the OS account's principal), never a name typed on the command line.
    const named = await lunafleet(["reject", jobId, "--as", "carol", "--reason", "keys not yet migrated"]);
    expect(named.code).toBe(1);
    expect(named.stderr).toMatch(new RegExp(`--as carol: you are authenticated as ${me} \\(OS account `));
    expect((await approvalState(redis.client(), jobId))?.status).toBe("awaiting-approval");
    const r = await lunafleet(["reject", jobId, "--reason", "keys not yet migrated"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`rejected by ${me}: keys not yet migrated`);
    expect((await approvalState(redis.client(), jobId))?.status).toBe("rejected");

    const none = await lunafleet(["approve", "no-such-job", "--as", "alice", "--confirm", "700101"]);
    expect(none.stderr).not.toMatch(/approved/);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/no approval request/);
    const log = await EvidenceLog.open(redis.client(), redis.dataDir, "no-such-job");
    expect(await log.records()).toEqual([]);
  });

  it("lists what waits (device, serial, what the job will do, deadline); a job that no longer waits is refused with its state", async () => {
    const waiting = `cli-wait-${process.pid}`;
    const gone = `cli-gone-${process.pid}`;
    await queued(waiting);
    await requestApproval(redis.client(), waiting, {
      runbook: "deprovision",
      action: "zeroize hsm-c1 (serial 700301) and delete its Azure Dedicated HSM hsm-c1",
      device: "hsm-c1",
      serial: "700301",
      required: 2,
      expiresMinutes: 60,
    });
    // `gone` asked, then left the queue without closing its request (a worker killed for good, a removed job).
    await requestApproval(redis.client(), gone, {
      device: "hsm-a1",
      serial: "700101",
      required: 2,
      expiresMinutes: 60,
    });

    const list = await lunafleet(["approvals"]);
    expect(list.code).toBe(0);
    const row = list.stdout.split("\n").find((l) => l.startsWith(waiting))!;
    expect(row).toMatch(
      /deprovision +hsm-c1 +700301 +0\/2 +\d{4}-\d\d-\d\dT[\d:.]+Z +zeroize hsm-c1 \(serial 700301\)/,
    );
    const json = JSON.parse((await lunafleet(["approvals", "--json"])).stdout) as { jobId: string }[];
    expect(json.map((j) => j.jobId)).toContain(waiting);

    const late = await lunafleet(["approve", gone, "--as", "alice", "--confirm", "700101"]);
    expect(late.code).toBe(1);
    expect(late.stderr).toMatch(new RegExp(`job ${gone} is unknown .*no longer waits for approval`));
    expect(late.stdout).not.toMatch(/approved/);
    expect((await approvalState(redis.client(), gone))?.status).toBe("withdrawn");
    // And it is no longer listed as waiting.
    expect((await lunafleet(["approvals"])).stdout).not.toContain(gone);
  });
});
