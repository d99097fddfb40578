// Issue 13's acceptance over npm start's daemon (rebased twin, its HTTPS API, a real OIDC provider on loopback):
//  1. approvals that reach Redis without the approval store's checks — written by hand, or real signatures by the
//     requester, by one principal twice, by alice's key under bob's name, by a key nobody registered, over a
//     statement for another job, another serial, another plan, or a statement whose deadline passed — are refused by
//     the worker at the moment it would act: nothing more reaches the spare appliance hsm-c1 (its command log shows
//     only the job's shell session closing with `exit`, as every job ends) nor Azure, and the refusal is in the job's
//     evidence; the same four handed in through the API with `approve --key` are refused by the store, recorded,
//     and the job keeps waiting with nothing sent;
//  2. on the demo, `approve <job> --as alice --confirm 700301` then `--as bob`, without keys, leave the deprovision
//     awaiting approval;
//  3. the full deprovision of hsm-c1 (serial 700301, alone in rg-hsm-c) THROUGH THE API with the real CLI: an
//     operator's API token submits, alice and bob (OIDC) approve with `approve --key`; zeroized, HSM and group deleted;
//  4. the approvals, exported with `evidence export`, verify with the real `ssh-keygen -Y verify`;
//  5. `evidence verify --all` passes on the clean set, then finds one edited record and one bad signature.
import { execFile } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEMO_FLEET_FILE, type DemoRun, runDemo } from "../../src/cli/demo.ts";
import { identitySchema } from "../../src/config/identity-schema.ts";
import { loadFleet } from "../../src/config/load.ts";
import { approvalKey, approvalState } from "../../src/coord/approvals.ts";
import { signableStatement } from "../../src/coord/signed-approvals.ts";
import { EvidenceLog, evidenceFilePath, evidenceKeys } from "../../src/evidence/index.ts";
import { computeRecordHash, type EvidenceRecord, serializeRecord } from "../../src/evidence/record.ts";
import { submitJob } from "../../src/queue/jobs.ts";
import { parseSshSignature } from "../../src/signing/sshsig.ts";
import { approvalAsked } from "../helpers/approvals.ts";
import { startOidcProvider, type TestOidcProvider } from "../helpers/oidc-provider.ts";
import {
  DEMO_KEYS_DIR,
  demoKey,
  generateSshKey,
  sshKeygenSign,
  sshKeygenVerify,
  tempDir,
} from "../helpers/ssh-signing.ts";

const dir = tempDir("lf-accept-");
const dataDir = join(dir, "data");
const keys = tempDir("lf-accept-keys-");
const bin = fileURLToPath(new URL("../../bin/lunafleet.js", import.meta.url));
const DEVICE = "hsm-c1";
const SERIAL = "700301";
let demo: DemoRun;
let idp: TestOidcProvider;
let operatorToken = "";

beforeAll(async () => {
  idp = await startOidcProvider(dir, [{ id: "alice" }, { id: "bob" }, { id: "carol" }]);
  const base = loadFleet(DEMO_FLEET_FILE);
  const identity = identitySchema.parse({
    oidc: {
      issuer: idp.issuer,
      audience: idp.audience,
      principalClaim: "preferred_username",
      caFile: idp.caFile,
    },
    principals: base.identity.principals.map((p) => ({ ...p, oidc: [`${p.name}@example.test`] })),
  });
  demo = await runDemo({
    dataDir,
    fleet: { ...base, identity },
    rebase: true,
    httpPort: null,
    apiPort: 0,
    concurrency: 4,
    print: () => {},
  });
  const created = await lunafleet([
    "token",
    "create",
    "--name",
    "deprovisioner",
    "--role",
    "operator",
    "--expires",
    "1d",
  ]);
  expect(created.code, created.stderr).toBe(0);
  operatorToken = created.stdout.trim();
}, 180_000);

afterAll(async () => {
  await demo?.stop();
  await idp?.stop();
  rmSync(dir, { recursive: true, force: true });
  rmSync(keys, { recursive: true, force: true });
});

function lunafleet(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith("REDIS_") && !k.startsWith("LUNAFLEET_")),
  );
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [bin, ...args, "--data-dir", dataDir],
      { env: { ...base, ...env } },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}
const overApi = (token: string) => ({ LUNAFLEET_URL: demo.daemon.api!.url, LUNAFLEET_TOKEN: token });

const appliance = () => demo.twin.appliances.get(DEVICE)!.state;
const armDeletes = () => demo.twin.arm!.requestLog.filter((r) => r.method === "DELETE");

/**
 * Waits on the condition itself: no deadline of its own, which load could beat (a deprovision's preflight on a
 * loaded machine is slow, not wrong); a condition that never comes is caught by the test's timeout, a hang guard.
 */
async function until<T>(read: () => Promise<T>, done: (v: T) => boolean): Promise<T> {
  for (;;) {
    const v = await read();
    if (done(v)) return v;
    await sleep(25);
  }
}

async function finished(jobId: string): Promise<{ state: string; reason: string }> {
  return until(
    async () => {
      // The state first, then the job (whose failedReason is then at least as new as that state).
      const state = await demo.daemon.queue.getJobState(jobId);
      const job = await demo.daemon.queue.getJob(jobId);
      return { state: state === "unknown" ? "missing" : state, reason: job?.failedReason ?? "" };
    },
    (s) => s.state === "completed" || s.state === "failed",
  );
}

/** A deprovision of hsm-c1 that has asked for its approvals (preflight done, device lock held). */
async function waitingDeprovision(requester = "operator:acceptance"): Promise<string> {
  const { jobId } = await submitJob(demo.daemon.queue, {
    fleet: demo.twin.fleet,
    runbook: "deprovision",
    target: DEVICE,
    params: { backupsConfirmed: true, approvalPollMs: 25 },
    actor: requester,
  });
  await approvalAsked(demo.daemon.redis, jobId);
  return jobId;
}

type Signer = "alice" | "bob" | "carol";
/** A key no principal registered (someone's own ed25519 key). */
let malloryKey: ReturnType<typeof generateSshKey> | undefined;
const mallory = () => {
  malloryKey ??= generateSshKey(keys, "mallory");
  return malloryKey;
};
/**
 * A real `ssh-keygen -Y sign` over `statement`, as a stored approval's proof: by a registered demo key, or by any key
 * file (handed in by `submittedBy`).
 */
function proofBy(who: Signer | { path: string; submittedBy: string }, statement: string) {
  const path = typeof who === "string" ? demoKey(keys, who).path : who.path;
  const signature = sshKeygenSign(path, statement);
  return {
    method: "sshsig",
    keyFingerprint: parseSshSignature(signature).fingerprint,
    statement,
    signature,
    submittedBy: typeof who === "string" ? who : who.submittedBy,
  };
}

/** Write an "approved" document straight into Redis, as someone with the Redis socket could. */
async function writeApproved(
  jobId: string,
  approvals: { principal: string; proof?: ReturnType<typeof proofBy> }[],
  change: (doc: Record<string, unknown>) => void = () => {},
): Promise<void> {
  const key = approvalKey(jobId);
  const doc = JSON.parse((await demo.daemon.redis.get(key))!) as Record<string, unknown>;
  doc.status = "approved";
  doc.approvedAt = Date.now();
  doc.approvals = approvals.map((a) => ({
    principal: a.principal,
    at: Date.now(),
    confirmation: SERIAL,
    ...(a.proof ? { proof: a.proof } : {}),
  }));
  change(doc);
  await demo.daemon.redis.set(key, JSON.stringify(doc), "KEEPTTL");
}

describe("approvals that did not come through the store are refused at the moment of acting, nothing sent", () => {
  const statementFor = async (jobId: string, over: Partial<Record<string, string>>) => {
    const s = (await approvalState(demo.daemon.redis, jobId))!;
    return signableStatement({
      jobId: over.jobId ?? s.jobId,
      runbook: s.runbook,
      action: null,
      device: s.device,
      serial: over.serial ?? s.serial,
      planDigest: over.planDigest ?? s.planDigest,
      requester: s.requester,
      expiresAt: over.expiresAt ?? s.expiresAt,
    });
  };

  const signedBy = async (jobId: string, by: [principal: string, key: Parameters<typeof proofBy>[0]][]) => {
    const text = await statementFor(jobId, {});
    await writeApproved(
      jobId,
      by.map(([principal, key]) => ({ principal, proof: proofBy(key, text) })),
    );
  };

  const cases: [string, (jobId: string) => Promise<void>, RegExp, requester?: string][] = [
    [
      "the requester's own signature (alice requested; alice and bob sign)",
      (jobId) =>
        signedBy(jobId, [
          ["alice", "alice"],
          ["bob", "bob"],
        ]),
      /alice: self-approval/,
      "alice",
    ],
    [
      "one principal twice (alice signs, and signs again)",
      (jobId) =>
        signedBy(jobId, [
          ["alice", "alice"],
          ["alice", "alice"],
        ]),
      /alice: duplicate-principal/,
    ],
    [
      "one key under two names (alice's signature handed in as bob's approval)",
      (jobId) =>
        signedBy(jobId, [
          ["alice", "alice"],
          ["bob", "alice"],
        ]),
      /bob: key-of-another-principal/,
    ],
    [
      "an unregistered key (bob's approval signed by a key nobody registered)",
      (jobId) =>
        signedBy(jobId, [
          ["alice", "alice"],
          ["bob", { path: mallory().path, submittedBy: "bob" }],
        ]),
      /bob: unregistered-key/,
    ],
    [
      "written into Redis by hand (no signatures)",
      (jobId) => writeApproved(jobId, [{ principal: "alice" }, { principal: "bob" }]),
      /alice: unsigned; bob: unsigned/,
    ],
    [
      "real signatures over a statement for another job",
      async (jobId) => {
        const text = await statementFor(jobId, { jobId: "deprovision-othr0000-00000000" });
        await writeApproved(jobId, [
          { principal: "alice", proof: proofBy("alice", text) },
          { principal: "bob", proof: proofBy("bob", text) },
        ]);
      },
      /alice: statement-mismatch; bob: statement-mismatch/,
    ],
    [
      "real signatures over a statement for another serial",
      async (jobId) => {
        const text = await statementFor(jobId, { serial: "700302" });
        await writeApproved(jobId, [
          { principal: "alice", proof: proofBy("alice", text) },
          { principal: "bob", proof: proofBy("bob", text) },
        ]);
      },
      /alice: statement-mismatch; bob: statement-mismatch/,
    ],
    [
      "real signatures over a statement for another plan",
      async (jobId) => {
        const text = await statementFor(jobId, { planDigest: "f".repeat(64) });
        await writeApproved(jobId, [
          { principal: "alice", proof: proofBy("alice", text) },
          { principal: "bob", proof: proofBy("bob", text) },
        ]);
      },
      /alice: statement-mismatch; bob: statement-mismatch/,
    ],
  ];

  for (const [name, plant, why, requester] of cases)
    it(`${name}: refused, recorded, nothing sent to ${DEVICE} or Azure`, async () => {
      const jobId = await waitingDeprovision(requester);
      const sentBefore = appliance().commandLog.length;
      const deletesBefore = armDeletes().length;
      await plant(jobId);
      const end = await finished(jobId);
      expect(end.state).toBe("failed");
      expect(end.reason).toMatch(/do not verify at the moment of acting/);
      // Nothing reached the appliance after the approvals were planted but the close of the job's shell session (as
      // at the end of every job): no command, never a login, never the zeroize.
      expect(
        appliance()
          .commandLog.slice(sentBefore)
          .map((c) => c.command),
      ).toEqual(["exit"]);
      expect(appliance().commandLog.some((c) => /^hsm\s+login/i.test(c.command))).toBe(false);
      expect(appliance().zeroized).toBe(false);
      expect(armDeletes().length).toBe(deletesBefore);
      const records = await (await EvidenceLog.open(demo.daemon.redis, dataDir, jobId)).records();
      const refused = records.find((r) => (r.data as { event?: string }).event === "refused-at-act");
      expect(refused?.data).toMatchObject({ device: DEVICE, sent: "nothing" });
      expect((refused?.data as { reason?: string } | undefined)?.reason).toMatch(why);
      // The job's log ends with a final seal naming its outcome.
      expect(records.at(-1)).toMatchObject({ kind: "signature", data: { final: { outcome: "failed" } } });
    }, 120_000);

  it(`a statement whose deadline passed: refused, recorded, nothing sent to ${DEVICE} or Azure`, async () => {
    const jobId = await waitingDeprovision();
    const sentBefore = appliance().commandLog.length;
    const past = new Date(Date.now() - 60_000);
    const text = await statementFor(jobId, { expiresAt: past.toISOString() });
    await writeApproved(
      jobId,
      [
        { principal: "alice", proof: proofBy("alice", text) },
        { principal: "bob", proof: proofBy("bob", text) },
      ],
      (doc) => {
        doc.expiresAt = past.getTime();
      },
    );
    const end = await finished(jobId);
    expect(end.state).toBe("failed");
    expect(end.reason).toMatch(/expired/);
    expect(
      appliance()
        .commandLog.slice(sentBefore)
        .map((c) => c.command),
    ).toEqual(["exit"]);
    expect(appliance().zeroized).toBe(false);
    const records = await (await EvidenceLog.open(demo.daemon.redis, dataDir, jobId)).records();
    expect(JSON.stringify(records.filter((r) => r.kind === "result" || r.kind === "step"))).toMatch(
      /expired/,
    );
  }, 120_000);
});

describe("approvals handed in through the API that do not count: refused by the store, recorded, nothing sent", () => {
  it("self-approval, one principal twice, one key under two names, an unregistered key: the job still waits", async () => {
    // alice requested this deprovision; each approver signs in with OIDC and runs the real `approve --key`.
    const jobId = await waitingDeprovision("alice");
    const sentBefore = appliance().commandLog.length;
    const deletesBefore = armDeletes().length;
    const approveAs = async (who: Signer, args: string[]) =>
      lunafleet(["approve", jobId, ...args, "--confirm", SERIAL], overApi(await idp.token(who)));

    const self = await approveAs("alice", ["--key", demoKey(keys, "alice").path]);
    expect(self.code).toBe(1);
    expect(self.stderr).toMatch(
      /refused: .*alice requested this action; the requester's approval never counts/,
    );
    const bob = await approveAs("bob", ["--key", demoKey(keys, "bob").path]);
    expect(bob.code, bob.stderr).toBe(0);
    expect(bob.stdout).toMatch(/awaiting-approval — hsm-c1 \(serial 700301\), 1\/2 approvals: bob/);
    const twice = await approveAs("bob", ["--key", demoKey(keys, "bob").path]);
    expect(twice.code).toBe(1);
    expect(twice.stderr).toMatch(/refused: .*already approved/);
    const alicesKeyAsCarol = await approveAs("carol", [
      "--key",
      demoKey(keys, "alice").path,
      "--as",
      "carol",
    ]);
    expect(alicesKeyAsCarol.code).toBe(1);
    expect(alicesKeyAsCarol.stderr).toMatch(/refused: .*registered to 'alice', not 'carol'/);
    const stranger = await approveAs("carol", ["--key", mallory().path, "--as", "carol"]);
    expect(stranger.code).toBe(1);
    expect(stranger.stderr).toMatch(/refused: .*not registered/);

    const state = (await approvalState(demo.daemon.redis, jobId))!;
    expect(state.status).toBe("awaiting-approval");
    expect(state.approvals.map((a) => a.principal)).toEqual(["bob"]);
    expect(state.refusals.map((r) => `${r.principal}:${r.reason}`)).toEqual([
      "alice:self-approval",
      "bob:duplicate-principal",
      "carol:key-of-another-principal",
      "carol:unregistered-key",
    ]);
    // Each refusal is in the job's evidence, naming who handed it in; the signatures are never counted.
    const records = await (await EvidenceLog.open(demo.daemon.redis, dataDir, jobId)).records();
    const decisions = records
      .filter(
        (r) => r.kind === "approval" && ["approved", "refused"].includes((r.data as { event: string }).event),
      )
      .map((r) => [
        r.actor,
        (r.data as { event: string }).event,
        (r.data as { reason?: string }).reason ?? null,
      ]);
    expect(decisions).toEqual([
      ["alice", "refused", "self-approval"],
      ["bob", "approved", null],
      ["bob", "refused", "duplicate-principal"],
      ["carol", "refused", "key-of-another-principal"],
      ["carol", "refused", "unregistered-key"],
    ]);
    // Nothing reached the appliance nor Azure while it waited.
    expect(appliance().commandLog.slice(sentBefore)).toEqual([]);
    expect(appliance().zeroized).toBe(false);
    expect(armDeletes().length).toBe(deletesBefore);

    // carol rejects it: the job ends without acting (its session closes with `exit`), hsm-c1 is free for the next.
    const rejected = await lunafleet(
      ["reject", jobId, "--reason", "requested by an approver, approved by one"],
      overApi(await idp.token("carol")),
    );
    expect(rejected.code, rejected.stderr).toBe(0);
    expect((await finished(jobId)).state).toBe("failed");
    expect(
      appliance()
        .commandLog.slice(sentBefore)
        .map((c) => c.command),
    ).toEqual(["exit"]);
    expect(appliance().zeroized).toBe(false);
    expect(armDeletes().length).toBe(deletesBefore);
  }, 180_000);
});

describe(`the demo deprovision of ${DEVICE} through the API, approved twice with signatures`, () => {
  let jobId = "";

  it("an operator's API token submits it; unsigned approvals on the demo leave it awaiting approval", async () => {
    const run = await lunafleet(
      [
        "run",
        "deprovision",
        DEVICE,
        "--param",
        "backupsConfirmed=true",
        "--param",
        "deleteResourceGroup=true",
      ],
      overApi(operatorToken),
    );
    expect(run.code, run.stderr).toBe(0);
    jobId = /queued (\S+):/.exec(run.stdout)![1]!;
    await approvalAsked(demo.daemon.redis, jobId);
    const waiting = await lunafleet(["approvals"], overApi(operatorToken));
    expect(waiting.stdout).toMatch(new RegExp(`${jobId} +deprovision +${DEVICE} +${SERIAL} +0/2`));

    // On the demo host, as README's walkthrough says: neither counts, both are recorded, the job still waits.
    for (const who of ["alice", "bob"]) {
      const r = await lunafleet(["approve", jobId, "--as", who, "--confirm", SERIAL]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/refused: .*counts only as a signature by a key registered in the fleet file/);
    }
    const state = await approvalState(demo.daemon.redis, jobId);
    expect(state).toMatchObject({ status: "awaiting-approval", approvals: [] });
    expect(state!.refusals.map((r) => `${r.principal}:${r.reason}`)).toEqual([
      "alice:unsigned",
      "bob:unsigned",
    ]);
    expect(appliance().zeroized).toBe(false);
    const job = await lunafleet(["job", jobId], overApi(operatorToken));
    expect(job.stdout).toContain(`job ${jobId}: awaiting-approval`);
  }, 180_000);

  it("alice and bob, signed in with OIDC, approve with `lunafleet approve --key`; it zeroizes, deletes the HSM, then its group", async () => {
    for (const who of ["alice", "bob"] as const) {
      const token = await idp.token(who);
      const r = await lunafleet(
        ["approve", jobId, "--key", demoKey(keys, who).path, "--confirm", SERIAL],
        overApi(token),
      );
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain(`serial: ${SERIAL}`);
    }
    const end = await finished(jobId);
    expect(end.state, end.reason).toBe("completed");
    expect(appliance().zeroized).toBe(true);
    const arm = demo.twin.arm!;
    const hsm = demo.twin.fleet.devices.find((d) => d.name === DEVICE)!.azure!.resourceId;
    expect(arm.hsmState(hsm)).toMatchObject({ exists: false, deleted: true, orphaned: false });
    expect(arm.hsmState(hsm).resourceGroupExists).toBe(false);
    const deletes = arm.requestLog.filter((r) => r.method === "DELETE").map((r) => r.path.split("?")[0]);
    expect(deletes.at(-2)).toMatch(/dedicatedHSMs\/hsm-c1$/);
    expect(deletes.at(-1)).toMatch(/resourcegroups\/rg-hsm-c$/i);
    const shown = await lunafleet(["job", jobId], overApi(operatorToken));
    expect(shown.stdout).toMatch(new RegExp(`job ${jobId}: succeeded`));
    const records = await (await EvidenceLog.open(demo.daemon.redis, dataDir, jobId)).records();
    const approved = records.filter((r) => (r.data as { event?: string }).event === "approved");
    expect(approved.map((r) => [r.actor, (r.data as { submittedBy: string }).submittedBy])).toEqual([
      ["alice", "alice"],
      ["bob", "bob"],
    ]);
  }, 240_000);

  it("the exported approvals verify with the real ssh-keygen -Y verify", async () => {
    const r = await lunafleet(["evidence", "export", "--since", "1h"], overApi(operatorToken));
    expect(r.code, r.stderr).toBe(0);
    const approved = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as EvidenceRecord & { log: string })
      .filter((x) => x.log === jobId && (x.data as { event?: string }).event === "approved");
    expect(approved).toHaveLength(2);
    const registered = (who: string) => readFileSync(join(DEMO_KEYS_DIR, `${who}.pub`), "utf8").trim();
    const allowedSigners = ["alice", "bob"]
      .map((w) => `${w} namespaces="lunafleet-approval" ${registered(w)}`)
      .join("\n");
    for (const rec of approved) {
      const d = rec.data as { principal: string; statement: string; signature: string };
      expect(d.statement).toContain(`job: ${jobId}\n`);
      expect(d.statement).toContain(`serial: ${SERIAL}\n`);
      expect(sshKeygenVerify(`${allowedSigners}\n`, d.principal, d.signature, d.statement)).toBe(true);
      // The same signature is not the other approver's, and covers exactly this statement.
      const other = d.principal === "alice" ? "bob" : "alice";
      expect(sshKeygenVerify(`${allowedSigners}\n`, other, d.signature, d.statement)).toBe(false);
      expect(
        sshKeygenVerify(
          `${allowedSigners}\n`,
          d.principal,
          d.signature,
          d.statement.replace(SERIAL, "700302"),
        ),
      ).toBe(false);
    }
  }, 120_000);

  it("evidence verify --all passes on the clean set, then finds one edited record and one bad signature", async () => {
    const clean = await lunafleet(["evidence", "verify", "--all"], overApi(operatorToken));
    expect(clean.code, clean.stdout).toBe(0);
    const total = Number(/(\d+)\/(\d+) logs intact/.exec(clean.stdout)![2]);
    expect(clean.stdout).toContain(`${total}/${total} logs intact`);
    expect(clean.stdout).toMatch(new RegExp(`evidence ${jobId}: ok, .*final seal: succeeded`));

    // One edited record: a sweep job's file copy, a record changed in place.
    const edited = demo.jobs[0]!.jobId;
    const lines = readFileSync(evidenceFilePath(dataDir, edited), "utf8").trimEnd().split("\n");
    lines[1] = lines[1]!.replace(/"at":"[^"]+"/, '"at":"2020-01-01T00:00:00.000Z"');
    writeFileSync(evidenceFilePath(dataDir, edited), `${lines.join("\n")}\n`);

    // One bad signature: another sweep job's final seal replaced by another log's signature, re-hashed so the chain
    // holds, in both copies (someone with the Redis socket and the data dir).
    const resealed = demo.jobs[1]!.jobId;
    const other = (
      await (await EvidenceLog.open(demo.daemon.redis, dataDir, demo.jobs[2]!.jobId)).records()
    ).at(-1)!;
    const k = evidenceKeys(resealed);
    const last = JSON.parse((await demo.daemon.redis.lindex(k.records, -1))!) as EvidenceRecord;
    expect(last.kind).toBe("signature");
    const forged: EvidenceRecord = {
      ...last,
      data: { ...(last.data as object), signature: (other.data as { signature: string }).signature },
    };
    forged.hash = computeRecordHash(forged);
    await demo.daemon.redis.lset(k.records, -1, serializeRecord(forged));
    await demo.daemon.redis.hset(k.head, "hash", forged.hash);
    const file = readFileSync(evidenceFilePath(dataDir, resealed), "utf8").trimEnd().split("\n");
    file[file.length - 1] = serializeRecord(forged);
    writeFileSync(evidenceFilePath(dataDir, resealed), `${file.join("\n")}\n`);

    const found = await lunafleet(["evidence", "verify", "--all"], overApi(operatorToken));
    expect(found.code).toBe(1);
    expect(found.stdout).toContain(`${total - 2}/${total} logs intact`);
    expect(found.stdout).toMatch(new RegExp(`evidence ${edited}: TAMPERED .*record 1: hash mismatch`));
    expect(found.stdout).toMatch(
      new RegExp(
        `evidence ${resealed}: TAMPERED .*record \\d+: bad signature: seq \\d+: the signature does not verify`,
      ),
    );
    // The same two on the daemon host, files and Redis read directly.
    const local = await lunafleet(["evidence", "verify", "--all"]);
    expect(local.code).toBe(1);
    expect(local.stdout).toContain(`${total - 2}/${total} logs intact`);
  }, 180_000);
});
