// The CLI has one client with two transports (src/cli/daemon-client.ts), and each command renders what either
// returns: on the daemon host the operations run in the CLI's process as the OS account's principal; with
// LUNAFLEET_URL they run in the daemon behind its HTTPS API as the token's principal. Here every command of the brief
// runs both ways against npm start's daemon (rebased twin, API on an ephemeral port) and the outputs must be the same,
// once the principal's name, job ids and times are written as placeholders. The API client gets nothing from the
// data dir: its CA comes from LUNAFLEET_CA and it is pointed at an empty data dir.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEMO_FLEET_FILE, type DemoRun, runDemo } from "../../src/cli/demo.ts";
import { loadFleet } from "../../src/config/load.ts";
import type { Fleet } from "../../src/config/schema.ts";
import { approvalState } from "../../src/coord/approvals.ts";
import { evidenceKeys } from "../../src/evidence/index.ts";
import { approvalAsked } from "../helpers/approvals.ts";

const dataDir = mkdtempSync(join(tmpdir(), "lf-transport-"));
const elsewhere = mkdtempSync(join(tmpdir(), "lf-transport-remote-"));
const bin = fileURLToPath(new URL("../../bin/lunafleet.js", import.meta.url));
const me = `os:${userInfo().username}`;
let demo: DemoRun;
let adminToken = "";
let viewerToken = "";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function lunafleet(args: string[], env: Record<string, string> = {}, dir = dataDir): Promise<Run> {
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith("REDIS_") && !k.startsWith("LUNAFLEET_")),
  );
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [bin, ...args, "--data-dir", dir],
      { env: { ...base, ...env } },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

const local = (args: string[]) => lunafleet(args);
const remote = (args: string[], token = adminToken) =>
  lunafleet(
    args,
    {
      LUNAFLEET_URL: demo.daemon.api!.url,
      LUNAFLEET_TOKEN: token,
      LUNAFLEET_CA: join(dataDir, "api-cert.pem"),
    },
    elsewhere,
  );

/** What may differ between two runs of one command: who asked, which job, when, how long a step took, ages. */
function normalize(text: string): string {
  return (
    text
      // The bin's own notice when it rebuilds itself after a source change (whichever call comes first).
      .replace(/^lunafleet: sources changed since the last build; compiling \(once\)…\n/m, "")
      .replaceAll(me, "<principal>")
      .replaceAll("token:transport", "<principal>")
      .replace(/\b[a-z][a-z-]*-[0-9a-z]{8}-[0-9a-f]{8}\b/g, "<job>")
      .replace(/\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d(\.\d+)?)?Z/g, "<time>")
      .replace(/\(\d+ ms\)/g, "(<ms>)")
      // The report's ages and days left move between two runs a few seconds apart, and with them column widths.
      .replace(/\b\d+[smhd] ago/g, "<age> ago")
      .replace(/\d+\.\d\d d\b/g, "<days> d")
      .replace(/ {2,}/g, "  ")
      .replace(/"(createdAt|finishedAt|at|requestedAt)": [^,\n]+/g, '"$1": <time>')
  );
}

/** Both transports at once (reads and refusals change nothing the other could see). */
async function both(args: string[]): Promise<[Run, Run]> {
  return Promise.all([local(args), remote(args)]);
}

/** One after the other, for commands that change what the second run sees. */
async function bothInTurn(args: string[]): Promise<[Run, Run]> {
  const a = await local(args);
  return [a, await remote(args)];
}

function expectSame([a, b]: [Run, Run]): void {
  expect(normalize(b.stdout), `remote stderr: ${b.stderr}`).toBe(normalize(a.stdout));
  expect(normalize(b.stderr)).toBe(normalize(a.stderr));
  expect(b.code).toBe(a.code);
}

/**
 * The demo fleet with its schedules out of this file's way. The daemon starts ha-recover every
 * haRecoverEveryMinutes (5) after its start and the maintenance window's jobs at Sunday 02:00: a job of its own
 * landing between the two runs of a comparison (`jobs`, `evidence verify --all`), or as one of the last two jobs whose
 * actors are checked, fails the file — which, alone, ends well before 5 min, and under load did not. Both schedules
 * stay (the reads compare `schedule list`) where no run of this file reaches them: ha-recover one day after the
 * start, the window daily at twelve hours from now (closed now, as on the demo outside Sunday night).
 */
function demoFleetWithoutDueSchedules(): Fleet {
  const fleet = loadFleet(DEMO_FLEET_FILE);
  fleet.defaults.haRecoverEveryMinutes = 24 * 60;
  const at = new Date(Date.now() + 12 * 3_600_000);
  for (const w of fleet.maintenanceWindows) {
    w.cron = `${at.getUTCMinutes()} ${at.getUTCHours()} * * *`;
    w.timezone = "UTC";
  }
  return fleet;
}

beforeAll(async () => {
  demo = await runDemo({
    fleet: demoFleetWithoutDueSchedules(),
    dataDir,
    rebase: true,
    httpPort: null,
    apiPort: 0,
    concurrency: 4,
    print: () => {},
  });
  // Tokens are created on the daemon host by the OS account (admin by localRoles), printed once on stdout alone.
  const admin = await local(["token", "create", "--name", "transport", "--role", "admin", "--expires", "1d"]);
  expect(admin.code, admin.stderr).toBe(0);
  adminToken = admin.stdout.trim();
  expect(adminToken).toMatch(/^lft_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
  expect(admin.stderr).toContain("shown once");
  const viewer = await local(["token", "create", "--name", "watcher", "--role", "viewer", "--expires", "2h"]);
  viewerToken = viewer.stdout.trim();
}, 180_000);

afterAll(async () => {
  await demo?.stop();
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(elsewhere, { recursive: true, force: true });
});

describe("the same command, the same output, on the daemon host and over the API", () => {
  it("reads: jobs, job, approvals, report, guard, ha, schedules, plan, evidence, tokens", async () => {
    const sweepJob = demo.jobs[0]!.jobId;
    const reads: string[][] = [
      ["jobs", "--limit", "5"],
      ["jobs", "--state", "succeeded-with-findings", "--json"],
      ["job", sweepJob],
      ["job", sweepJob, "--json"],
      ["job", "no-such-job"],
      ["approvals"],
      ["report"],
      ["report", "hsm-a2"],
      ["report", "no-such-device"],
      ["guard", "status"],
      ["ha", "breakers"],
      ["schedule", "list"],
      ["plan", "patch-verify", "hsm-a1"],
      ["plan", "deprovision", "hsm-c1", "--param", "backupsConfirmed=true"],
      ["evidence", "verify", sweepJob],
      ["token", "list"],
    ];
    for (const args of reads) {
      const pair = await both(args);
      expectSame(pair);
    }
    const [jobA] = await both(["job", sweepJob]);
    expect(jobA.stdout).toMatch(/^job .*: succeeded/);
    const [reportA] = await both(["report", "no-such-device"]);
    expect(reportA.code).toBe(2);
  }, 600_000);

  it("refusals: cancel a finished or unknown job, release what is not quarantined or open, --as someone else", async () => {
    const sweepJob = demo.jobs[0]!.jobId;
    for (const args of [
      ["job", "cancel", sweepJob],
      ["job", "cancel", "no-such-job"],
      ["guard", "release", "hsm-a1", "auditor", "--reason", "auditor password rotated in the vault"],
      ["ha", "release-breaker", "ha-tokens", "hsm-b2/par-tok"],
      ["approve", "no-such-job", "--confirm", "700101"],
    ]) {
      const pair = await both(args);
      expectSame(pair);
      // Nothing to cancel is not a failure; the rest are refusals.
      if (args[1] !== "cancel" || args[2] !== sweepJob)
        expect(pair[0].code, `${args.join(" ")}: ${pair[0].stdout}${pair[0].stderr}`).not.toBe(0);
    }
    // Naming another principal is refused on both, each naming how it authenticated; nothing is queued.
    const [hostAs, apiAs] = await both(["run", "tcp-check", "hsm-a1", "--as", "alice"]);
    expect(hostAs.code).toBe(1);
    expect(hostAs.stderr).toMatch(new RegExp(`--as alice: you are authenticated as ${me} \\(OS account `));
    expect(apiAs.code).toBe(1);
    expect(apiAs.stderr).toContain(
      "--as alice: you are authenticated as token:transport (API token transport)",
    );
    expect(hostAs.stdout + apiAs.stdout).toBe("");
  }, 300_000);

  it("run --wait prints the same steps and outcome; the requester is each transport's principal", async () => {
    const [a, b] = await bothInTurn(["run", "patch-verify", "hsm-b3", "--wait"]);
    // `  queued` / `  running` are what each poll happened to see (a job that starts between two polls is never seen
    // queued): each transport prints each at most once, in that order; the rest is the same on both.
    const SAMPLED = /^ {2}(queued|running)$/;
    for (const r of [a, b]) {
      const lines = r.stdout.split("\n");
      const seen = lines.filter((l) => SAMPLED.test(l)).map((l) => l.trim());
      expect(["queued", "running"].filter((x) => seen.includes(x))).toEqual(seen);
    }
    const unsampled = (r: Run): Run => ({
      ...r,
      stdout: r.stdout
        .split("\n")
        .filter((l) => !SAMPLED.test(l))
        .join("\n"),
    });
    expectSame([unsampled(a), unsampled(b)]);
    expect(a.stdout).toMatch(/finding: hsm-b3: KB0019789 reboot patch missing/);
    expect(a.code).toBe(5);
    const rows = JSON.parse((await local(["jobs", "--limit", "2", "--json"])).stdout) as { actor: string }[];
    expect(rows.map((r) => r.actor)).toEqual(["token:transport", me]);
  }, 300_000);

  it("an approval without a key: refused and recorded on both, the deprovision still waits", async () => {
    const submitted = await remote(["run", "deprovision", "hsm-c1", "--param", "backupsConfirmed=true"]);
    expect(submitted.code, submitted.stderr).toBe(0);
    const jobId = /queued (\S+):/.exec(submitted.stdout)![1]!;
    await approvalAsked(demo.daemon.redis, jobId);
    const pair = await bothInTurn(["approve", jobId, "--as", "alice", "--confirm", "700301"]);
    expectSame(pair);
    expect(pair[0].code).toBe(1);
    expect(pair[0].stderr).toMatch(/counts only as a signature by a key registered in the fleet file/);
    expectSame(await both(["approvals", jobId]));
    const state = await approvalState(demo.daemon.redis, jobId);
    expect(state).toMatchObject({ status: "awaiting-approval", approvals: [] });
    expect(state!.refusals.map((r) => [r.principal, r.reason])).toEqual([
      ["alice", "unsigned"],
      ["alice", "unsigned"],
    ]);
    // The job is cancelled by whoever asks, and says so.
    const cancel = await local(["job", "cancel", jobId]);
    expect(cancel.stdout, cancel.stderr).toContain(`${jobId}: cancel requested`);
    // The worker stops it at its next look at the approval; its log then ends with the final seal. Wait for that, or
    // the next test's two verifications may read the log before and after its last records. (No deadline of its own:
    // the test's timeout catches a job that never ends.)
    for (;;) {
      const ended = ["completed", "failed"].includes(
        (await (await demo.daemon.queue.getJob(jobId))?.getState()) ?? "",
      );
      const last = await demo.daemon.redis.lindex(evidenceKeys(jobId).records, -1);
      if (ended && last && (JSON.parse(last) as { data?: { final?: unknown } }).data?.final) break;
      await new Promise((r) => setTimeout(r, 50));
    }
  }, 300_000);

  it("evidence verify --all and export agree; tokens are listed, never shown again", async () => {
    // Compared while nothing else writes (after the jobs above have ended).
    while ((await local(["jobs", "--state", "running"])).stdout.trim() !== "no running jobs")
      await new Promise((r) => setTimeout(r, 200));
    expectSame(await both(["evidence", "verify", "--all"]));
    const [a, b] = await both(["evidence", "export", "--since", "1h"]);
    expect(b.code).toBe(a.code);
    expect(b.stdout.split("\n").length).toBe(a.stdout.split("\n").length);
    expect(normalize(b.stderr)).toBe(normalize(a.stderr));
    const [list] = await both(["token", "list"]);
    expect(list.stdout).toMatch(/transport +[0-9a-f]{16} +admin +active/);
    expect(list.stdout).not.toContain(adminToken);
  }, 300_000);
});

describe("the API's roles and the client's own refusals", () => {
  it("a viewer reads but may not run; a token revoked is refused at once", async () => {
    const jobs = await remote(["jobs", "--limit", "1"], viewerToken);
    expect(jobs.code).toBe(0);
    const run = await remote(["run", "tcp-check", "hsm-a1"], viewerToken);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("lunafleet run: token:watcher (roles: viewer) may not jobs.submit");
    const revoke = await remote(["token", "revoke", "watcher"]);
    expect(revoke.stdout).toContain("revoked 1 token(s) named watcher");
    const after = await remote(["jobs", "--limit", "1"], viewerToken);
    expect(after.code).toBe(1);
    expect(after.stderr).toContain("API token 'watcher' is revoked");
    // The refusal is recorded in the day's authentication log, sealed: every log still verifies.
    const all = await local(["evidence", "verify", "--all"]);
    expect(all.code, all.stdout).toBe(0);
    expect(all.stdout).toMatch(/evidence auth:\d{4}-\d\d-\d\d: ok, .*ends at an intermediate seal/);
  }, 120_000);

  it("LUNAFLEET_URL without a token, --fleet over the API, an unreachable API: refused before anything is sent", async () => {
    const noToken = await lunafleet(["jobs"], {
      LUNAFLEET_URL: demo.daemon.api!.url,
      LUNAFLEET_CA: join(dataDir, "api-cert.pem"),
    });
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toContain("LUNAFLEET_URL is set but no token");
    const withFleet = await remote(["run", "tcp-check", "hsm-a1", "--fleet", "config/demo.yaml"]);
    expect(withFleet.code).toBe(2);
    expect(withFleet.stderr).toContain("--fleet is for the daemon host");
    const down = await lunafleet(["jobs"], {
      LUNAFLEET_URL: "https://127.0.0.1:1",
      LUNAFLEET_TOKEN: adminToken,
      LUNAFLEET_CA: join(dataDir, "api-cert.pem"),
    });
    expect(down.code).toBe(3);
    expect(down.stderr).toContain("cannot reach https://127.0.0.1:1");
  }, 120_000);
});
