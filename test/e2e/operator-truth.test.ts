// Issue 12's acceptance, over the demo twin, through the real CLI against a running daemon (npm start's daemon on a
// rebased twin; every `lunafleet` call is a child process on the daemon's data dir). What the operator sees must be
// true: a failed check is CHECK FAILED with its reason and time, a retired device is retired, HA member state is
// shown, a repair's fixes leave the report at once and a pair's problem is blamed on that pair only, schedules exist,
// approvals wait (and run once approved), refusals are one line with their exit code.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DemoRun, runDemo } from "../../src/cli/demo.ts";
import { approvalState } from "../../src/coord/approvals.ts";
import { HA_RECOVER_AUTO_SCHEDULER } from "../../src/queue/schedules.ts";
import { hsmResourceId } from "../helpers/deprovision.ts";
import { demoKey, tempDir } from "../helpers/ssh-signing.ts";

const bin = fileURLToPath(new URL("../../bin/lunafleet.js", import.meta.url));
const dataDir = mkdtempSync(join(tmpdir(), "lf-truth-"));
const keysDir = tempDir();
let demo: DemoRun;

beforeAll(async () => {
  demo = await runDemo({ dataDir, rebase: true, httpPort: 0, concurrency: 4, print: () => {} });
}, 300_000);
afterAll(async () => {
  await demo?.stop();
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(keysDir, { recursive: true, force: true });
});

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

const baseEnv = () =>
  Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith("REDIS_") && k !== "LUNAFLEET_URL"),
  );

/** One `lunafleet` call on the daemon's data dir (dir null: no --data-dir, for commands that take none). */
function lunafleet(
  args: string[],
  env: NodeJS.ProcessEnv = baseEnv(),
  dir: string | null = dataDir,
): Promise<Ran> {
  return new Promise((resolve) => {
    const argv = [bin, ...args, ...(dir === null ? [] : ["--data-dir", dir])];
    execFile(process.execPath, argv, { env, maxBuffer: 32 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** `lunafleet run … --wait` left running, its output collected. */
function runInBackground(args: string[]): { child: ChildProcess; out: () => string; done: Promise<number> } {
  const child = spawn(process.execPath, [bin, ...args, "--data-dir", dataDir], {
    env: baseEnv(),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (b: Buffer) => (out += b.toString()));
  child.stderr!.on("data", (b: Buffer) => (out += b.toString()));
  const done = new Promise<number>((r) => child.once("exit", (code) => r(code ?? 1)));
  return { child, out: () => out, done };
}

/**
 * Waits on the condition itself (`what` says which), with no deadline of its own that load could beat: the test's
 * timeout is the hang guard.
 */
async function until<T>(_what: string, read: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  for (;;) {
    const v = await read();
    if (ok(v)) return v;
    await sleep(100);
  }
}

const noStack = (r: Ran) => expect(`${r.stdout}${r.stderr}`).not.toMatch(/\n\s+at [\w.<]+ \(|node:internal/);
const queuedId = (text: string) => /queued (\S+):/.exec(text)?.[1];
const reportJson = async () =>
  JSON.parse((await lunafleet(["report", "--json"])).stdout) as {
    devices: {
      device: string;
      state: string;
      retired: boolean;
      facts: Record<
        string,
        { status: string; observedAt: string | null; reason?: string; jobId: string | null }
      >;
      ha: { group: string; member: { status: string; summary: string } }[];
      pairs: { host: string; trust: { status: string } }[];
    }[];
    problems: string[];
  };

describe("what the operator sees is true (issue 12)", () => {
  it("a failed patch-verify shows hsm-b1's software and patch facts as CHECK FAILED, with reason and time", async () => {
    await demo.twin.setFault("hsm-b1", "drop", "hsm show");
    try {
      const run = await lunafleet(["run", "patch-verify", "hsm-b1", "--wait"]);
      expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(1);
      expect(run.stdout).toMatch(/: failed: /);
      const jobId = queuedId(run.stdout)!;
      const text = await lunafleet(["report"]);
      expect(text.stdout).toMatch(
        /hsm-b1 +in service +\S.* +CHECK FAILED +CHECK FAILED +CHECK FAILED +CHECK FAILED/,
      );
      const problem = text.stdout.split("\n").find((l) => l.includes("hsm-b1: software: CHECK FAILED"));
      expect(problem).toMatch(
        new RegExp(
          `CHECK FAILED at \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\dZ \\(patch-verify job ${jobId}\\): \\S+`,
        ),
      );
      const b1 = (await reportJson()).devices.find((d) => d.device === "hsm-b1")!;
      for (const fact of ["software", "patch:KB0019789"]) {
        expect(b1.facts[fact]).toMatchObject({ status: "check-failed", jobId });
        expect(Date.parse(b1.facts[fact]!.observedAt!)).toBeGreaterThan(Date.now() - 300_000);
        expect(b1.facts[fact]!.reason).toBeTruthy();
      }
    } finally {
      await demo.twin.setFault("hsm-b1", "drop", "off");
    }
  }, 180_000);

  it("hsm-b2's down member is in the HA column and /metrics; after ha-recover it shows recovered", async () => {
    // ha-sync reads the members (a member down is a finding: its domain is not verified), an observation of them.
    const sync = await lunafleet(["run", "ha-sync", "ha-tokens", "--wait"]);
    expect(sync.code).toBe(5);
    const before = await lunafleet(["report"]);
    expect(before.stdout).toMatch(/hsm-b2 .*ha-tokens:DOWN/);
    const metrics = async () => (await fetch(`http://127.0.0.1:${demo.daemon.http!.port}/metrics`)).text();
    expect(await metrics()).toMatch(
      /lunafleet_ha_member_up\{group="ha-tokens",device="hsm-b2",partition="par-tok"\} 0/,
    );

    const recover = await lunafleet(["run", "ha-recover", "ha-tokens", "--wait"]);
    expect(recover.code).toBe(0);
    expect((await lunafleet(["report"])).stdout).toMatch(/hsm-b2 .*ha-tokens:recovered/);
    expect(await metrics()).toMatch(
      /lunafleet_ha_member_up\{group="ha-tokens",device="hsm-b2",partition="par-tok"\} 1/,
    );
  }, 180_000);

  it("ntls: only hsm-a1 is blamed for client-a's stale trust; a repair's fixes leave the report without tcp-check", async () => {
    const diagnose = await lunafleet(["run", "ntls-cert-sync", "fleet", "--wait"]);
    expect(diagnose.code).toBe(5); // findings: hsm-a1's pair mismatched, hsm-a2's certificate expiring
    const seen = await reportJson();
    const mismatched = seen.problems.filter((p) => /mismatched/.test(p));
    expect(mismatched.length).toBeGreaterThan(0);
    expect(mismatched.every((p) => p.startsWith("hsm-a1: hsm-a1 <-> client-a mismatched"))).toBe(true);
    const trustOf = (d: string) =>
      seen.devices.find((x) => x.device === d)!.pairs.find((p) => p.host === "client-a")!.trust;
    expect(trustOf("hsm-a3").status).toBe("ok");
    expect(seen.problems).toContain("hsm-a2: hsm-a2 <-> client-a expiring (4 day(s) left)"); // its own problem, not a1's
    // The sweep's failing vtl verify is client-a's, not blamed on every appliance of it.
    expect(seen.problems.some((p) => p.startsWith("client-a: vtl verify on client-a"))).toBe(true);
    expect(seen.problems.some((p) => /^hsm-a[23]: .*vtl verify/.test(p))).toBe(false);

    const repair = await lunafleet(["run", "ntls-cert-sync", "fleet", "--param", "repair=true", "--wait"]);
    expect(repair.code).toBe(5); // repaired; hsm-a2's expiring certificate is still a finding (repair does not regenerate)
    expect(repair.stdout).toMatch(/done +verify/);
    const after = await reportJson();
    expect(after.problems.filter((p) => /mismatched|client-a: vtl verify/.test(p))).toEqual([]);
    expect(
      after.devices.find((d) => d.device === "hsm-a1")!.pairs.find((p) => p.host === "client-a")!.trust
        .status,
    ).toBe("ok");
  }, 240_000);

  it("schedule list shows the ha-recover scheduler; its due run is queued and run by the daemon", async () => {
    const list = await lunafleet(["schedule", "list"]);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(
      /every 5 min +ha-recover auto=true +next \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ +\(schedule:ha-recover-auto\)/,
    );
    // The next run is in the queue; make it due now (as five minutes passing would) and the daemon runs it.
    const queued = (await demo.daemon.queue.getDelayed()).find((j) =>
      j.id?.startsWith(`repeat:${HA_RECOVER_AUTO_SCHEDULER}:`),
    );
    expect(queued?.data).toMatchObject({
      runbook: "ha-recover",
      params: { auto: true },
      actor: "schedule:ha-recover-auto",
    });
    await queued!.promote();
    await until(
      "the scheduled run to finish",
      () => queued!.getState(),
      (s) => s === "completed" || s === "failed",
    );
    const jobs = JSON.parse((await lunafleet(["jobs", "--json", "--limit", "50"])).stdout) as {
      id: string;
      actor: string;
      state: string;
    }[];
    const ran = jobs.find((j) => j.id === queued!.id)!;
    expect(ran.actor).toBe("schedule:ha-recover-auto");
    expect(["succeeded", "nothing-to-do", "succeeded-with-findings", "failed"]).toContain(ran.state);
  }, 180_000);

  it("deprovision hsm-c1 with deleteResourceGroup: refused at preflight while rg-hsm-c holds a second HSM, then approved: retired", async () => {
    const arm = demo.twin.arm!;
    const c1 = hsmResourceId(demo.twin.fleet, "hsm-c1");
    const intruder = c1.replace(/hsm-c1$/, "hsm-c9");
    arm.addHsm({ resourceId: intruder, location: "westeurope", zeroized: () => true });
    const refused = await lunafleet([
      "run",
      "deprovision",
      "hsm-c1",
      "--param",
      "backupsConfirmed=true",
      "--param",
      "deleteResourceGroup=true",
      "--wait",
    ]);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(
      new RegExp(
        `rg-hsm-c would not be empty after hsm-c1 is gone: it also holds ${intruder.replace(/[/.]/g, "\\$&")}`,
        "i",
      ),
    );
    expect(await approvalState(demo.daemon.redis, queuedId(refused.stdout)!)).toBeNull(); // no approval was asked
    expect(demo.twin.appliances.get("hsm-c1")!.state.zeroized).toBe(false);
    // Someone removes the intruder; now the group would be empty.
    const armClient = (await import("../../src/azure/access.ts")).armGatewayFor(demo.twin.fleet, {
      endpoint: arm.endpoint,
      subscriptionId: arm.subscriptionId,
      caPem: arm.caPem,
    });
    await armClient!.deleteHsm(intruder);

    const waiting = runInBackground([
      "run",
      "deprovision",
      "hsm-c1",
      "--param",
      "backupsConfirmed=true",
      "--param",
      "deleteResourceGroup=true",
      "--wait",
    ]);
    const id = (await until("the job id", async () => queuedId(waiting.out()), Boolean))!;
    // --wait says what the job waits for and how to approve it, while it waits.
    await until(
      "the approval hint",
      async () => waiting.out(),
      (o) => /approve: lunafleet approve/.test(o),
    );
    expect(waiting.out()).toMatch(/awaiting-approval: zeroize hsm-c1 \(serial 700301\) .*0\/2 approvals/);
    expect(waiting.out()).toContain(`approve: lunafleet approve ${id} `);
    const listed = await lunafleet(["approvals"]);
    expect(listed.stdout.split("\n").find((l) => l.startsWith(id))).toMatch(
      /deprovision +hsm-c1 +700301 +0\/2 /,
    );
    for (const who of ["alice", "bob"] as const) {
      const r = await lunafleet(["approve", id, "--key", demoKey(keysDir, who).path]);
      expect(r.code, r.stderr).toBe(0);
    }
    expect(await waiting.done).toBe(0);
    expect(waiting.out()).toMatch(new RegExp(`${id}: succeeded`));

    const text = await lunafleet(["report"]);
    expect(text.stdout).toMatch(/hsm-c1 +RETIRED/);
    expect(text.stdout).not.toMatch(/hsm-c1 +in service/);
    const c1row = (await reportJson()).devices.find((d) => d.device === "hsm-c1")!;
    expect(c1row).toMatchObject({ state: "retired", retired: true });
    expect(c1row.facts.zeroized).toMatchObject({ status: "ok", jobId: id });
    expect(c1row.facts.lifecycle).toMatchObject({ status: "ok", jobId: id });
    const detail = await lunafleet(["report", "hsm-c1"]);
    expect(detail.stdout).toMatch(/^hsm-c1: retired/);
    expect(detail.stdout).toMatch(new RegExp(`succeeded +deprovision +${id} +os:${userInfo().username}`));
  }, 300_000);

  it("regen waits in awaiting-approval for 60 s without failing, is listed by approvals, runs after two approvals", async () => {
    const before = demo.twin.appliances.get("hsm-a2")!.state.ntls.certPem;
    const submit = await lunafleet(["run", "ntls-cert-sync", "hsm-a2", "--param", "regen=true"]);
    expect(submit.code).toBe(0);
    const id = queuedId(submit.stdout)!;
    await until(
      "the approval request",
      () => approvalState(demo.daemon.redis, id),
      (s) => s?.status === "awaiting-approval",
    );
    // A minute: BullMQ must neither retry nor fail it meanwhile (it failed in ~15 s before).
    await sleep(60_000);
    const job = JSON.parse((await lunafleet(["job", id, "--json"])).stdout) as {
      state: string;
      queueState: string;
      attemptsMade: number;
    };
    expect(job).toMatchObject({ state: "awaiting-approval", queueState: "active", attemptsMade: 0 });
    const listed = (await lunafleet(["approvals"])).stdout.split("\n").find((l) => l.startsWith(id));
    expect(listed).toMatch(
      /ntls-cert-sync +hsm-a2 +700102 +0\/2 +\d{4}-\d\d-\d\dT\S+ +regenerate hsm-a2's NTLS server certificate/,
    );
    expect(demo.twin.appliances.get("hsm-a2")!.state.ntls.certPem).toBe(before);
    for (const who of ["alice", "bob"] as const)
      expect((await lunafleet(["approve", id, "--key", demoKey(keysDir, who).path])).code).toBe(0);
    await until(
      "the job to finish",
      async () => (await demo.daemon.queue.getJob(id))!.getState(),
      (s) => s === "completed" || s === "failed",
    );
    const done = JSON.parse((await lunafleet(["job", id, "--json"])).stdout) as { state: string };
    expect(["succeeded", "succeeded-with-findings"]).toContain(done.state);
    expect(demo.twin.appliances.get("hsm-a2")!.state.ntls.certPem).not.toBe(before);
    // The report shows the new certificate as this job saw it, not the expiring one it replaced.
    const after = await reportJson();
    expect(after.devices.find((d) => d.device === "hsm-a2")!.facts.cert).toMatchObject({
      status: "ok",
      jobId: id,
    });
    expect(after.problems.filter((p) => p.startsWith("hsm-a2:") && /expiring/.test(p))).toEqual([]);
  }, 300_000);

  it("CLI conduct against the running daemon: usage errors, one-line refusals, bad numbers, EPIPE, --version, who asks", async () => {
    const usage = [
      ["run", "tcp-check"],
      ["run", "ha-recover"],
      ["run", "tcp-check", "fleet", "--param", "__proto__=1"],
      ["run", "tcp-check", "fleet", "--param", "constructor=1"],
      ["run", "tcp-check", "hsm-a2", "--param", "target=hsm-a1"],
      ["jobs", "--limit", "abc"],
      ["run", "tcp-check", "fleet", "--wait", "--timeout", "soon"],
      ["report", "--stale-after", "-1"],
    ];
    for (const args of usage) {
      const r = await lunafleet(args);
      expect(r.code, args.join(" ")).toBe(2);
      noStack(r);
    }
    const refusals: [string[], RegExp][] = [
      [
        ["run", "ha-recover", "ha-tokens", "--param", "auto=true"],
        /refused: ha-recover: give an HA group or auto=true, not both/,
      ],
      [["run", "tcp-check", "fleet", "--param", "bogus=1"], /refused: .*bogus/],
      [
        ["run", "deprovision", "hsm-b1", "--param", "deleteResourceGroup=true"],
        /refused: .*rg-hsm-b also holds hsm-b2, hsm-b3/,
      ],
      [["run", "no-such-runbook", "fleet"], /refused: unknown runbook 'no-such-runbook'/],
    ];
    for (const [args, message] of refusals) {
      const r = await lunafleet(args);
      expect(r.code, args.join(" ")).toBe(1);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toMatch(message);
      noStack(r);
    }
    // EPIPE: a reader that is gone before lunafleet writes (`| true`) is not an error.
    const piped = await new Promise<Ran>((resolve) =>
      execFile(
        "bash",
        [
          "-c",
          `"${process.execPath}" "${bin}" report --json --data-dir "${dataDir}" | true; exit "\${PIPESTATUS[0]}"`,
        ],
        { env: baseEnv() },
        (err, stdout, stderr) =>
          resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      ),
    );
    expect(piped.stderr).toBe("");
    expect(piped.code).toBe(0);
    const version = await lunafleet(["--version"], baseEnv(), null);
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    // Who asks is the authenticated principal — on the daemon host the OS account, from the system's user database,
    // never "unknown" even without $USER; --as only asserts it (another name is one refusal line).
    const { USER: _u, LOGNAME: _l, ...noUser } = baseEnv();
    const asOs = await lunafleet(["run", "tcp-check", "hsm-a1"], noUser);
    const jobs = JSON.parse((await lunafleet(["jobs", "--json", "--limit", "200"])).stdout) as {
      id: string;
      actor: string;
    }[];
    expect(jobs.find((j) => j.id === queuedId(asOs.stdout))?.actor).toBe(`os:${userInfo().username}`);
    const someoneElse = await lunafleet(["run", "tcp-check", "hsm-a1", "--as", "dave"], noUser);
    expect(someoneElse.code).toBe(1);
    expect(someoneElse.stderr.trim().split("\n")).toHaveLength(1);
    expect(someoneElse.stderr).toMatch(/--as dave: you are authenticated as /);
    noStack(someoneElse);
  }, 300_000);

  it("with the daemon down, every command answers with one plain line and exit 3", async () => {
    const down = mkdtempSync(join(tmpdir(), "lf-down-"));
    try {
      const commands = [
        ["jobs"],
        ["job", "some-job"],
        ["job", "cancel", "some-job"],
        ["approvals"],
        ["approve", "some-job", "--key", join(keysDir, "demo-alice")],
        ["reject", "some-job", "--as", "bob", "--reason", "not now"],
        ["guard", "status"],
        ["ha", "breakers"],
        ["schedule", "list"],
        ["report"],
        ["run", "tcp-check", "fleet"],
      ];
      for (const args of commands) {
        const r = await lunafleet(args, baseEnv(), down);
        expect(r.code, args.join(" ")).toBe(3);
        expect(r.stderr.trim().split("\n"), args.join(" ")).toHaveLength(1);
        expect(r.stderr, args.join(" ")).toMatch(/daemon is not running on data dir/);
        noStack(r);
      }
      // `sim fault --state-dir` is honoured: the error names the directory given, not the default.
      const fault = await lunafleet(
        ["sim", "fault", "hsm-a1", "slow", "10", "--state-dir", down],
        baseEnv(),
        null,
      );
      expect(fault.code).toBe(1);
      expect(fault.stderr).toContain(`${down}/sim.json not found`);
    } finally {
      rmSync(down, { recursive: true, force: true });
    }
  }, 300_000);
});
