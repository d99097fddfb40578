// `lunafleet approvals [job]`, `lunafleet approve <job> --key <registered SSH key> [--confirm <serial>]` and
// `lunafleet reject <job> --reason "…"`: what waits for approval, and a decision on it, through the daemon client
// (src/api/ops/approvals.ts on the daemon host or over the API). Each decision is one atomic transition in Redis
// (src/coord/approvals.ts) and an `approval` record in the job's evidence naming who handed it in; only a signature
// by a registered key counts; a job that no longer waits (failed, cancelled, expired, done, or gone from the queue)
// is refused with its state, never "approved". Exit 0 when counted, 1 when refused, 2 for a usage error or a job
// that never asked, 3 when the daemon is not reachable (src/cli/exit-codes.ts).

import type { Command } from "commander";
import type { ApprovalBody } from "../../api/ops/approvals.ts";
import type { ApprovalState } from "../../coord/approvals.ts";
import { isValidJobId } from "../../evidence/record.ts";
import { ApiCallError, type DaemonClient } from "../daemon-client.ts";
import { EXIT } from "../exit-codes.ts";
import { signStatement } from "../ssh-sign.ts";
import { assertPrincipal, dataDirOption, principalOption, withDaemonClient } from "../support.ts";

const GUARD_RELEASE = /^guard-release-/;

export function registerApproveCommands(program: Command): void {
  program
    .command("approvals")
    .argument("[job]", "job id (without it: every job awaiting approval)")
    .option("--json", "print JSON")
    .option(...dataDirOption)
    .description(
      "what waits for approval (device, serial, what the job will do, deadline), or one job's approvals",
    )
    .action(async (jobId: string | undefined, opts: { dataDir?: string; json?: boolean }) => {
      await withDaemonClient("approvals", opts, (client) =>
        jobId === undefined
          ? listWaiting(client, opts.json === true)
          : show(client, jobId, opts.json === true),
      );
    });
  program
    .command("approve")
    .argument("<job>", "id of the job (or guard release request) awaiting approval")
    .option(
      "--key <file>",
      "your registered SSH key: a private key file (ed25519, ecdsa, rsa, FIDO -sk), or a .pub whose key is in ssh-agent",
    )
    .option("--as <principal>", "the principal the key is registered to (default: looked up by the key)")
    .option("--confirm <serial>", "the device's serial number, checked against the statement you sign")
    .option(...dataDirOption)
    .description(
      "sign the job's approval statement with your registered key (ssh-keygen -Y sign) and submit it; unsigned approvals never count",
    )
    .action(
      async (jobId: string, opts: { key?: string; as?: string; confirm?: string; dataDir?: string }) => {
        if (!isValidJobId(jobId)) {
          console.error(`lunafleet: not a job id: ${JSON.stringify(jobId)}`);
          process.exitCode = EXIT.usage;
          return;
        }
        await withDaemonClient("approve", opts, (client) => approveJob(client, jobId, opts));
      },
    );
  program
    .command("reject")
    .argument("<job>", "id of the job awaiting approval")
    .option(...principalOption("who rejects"))
    .requiredOption("--reason <text>", "why (kept in the job's evidence)")
    .option(...dataDirOption)
    .description("reject a job that waits for approvals; the job stops before anything destructive")
    .action(async (jobId: string, opts: { as?: string; reason: string; dataDir?: string }) => {
      if (!isValidJobId(jobId)) {
        console.error(`lunafleet: not a job id: ${JSON.stringify(jobId)}`);
        process.exitCode = EXIT.usage;
        return;
      }
      await withDaemonClient("reject", opts, async (client) => {
        await assertPrincipal(client, opts.as);
        return decided(() => client.reject(jobId, opts.reason));
      });
    });
}

/**
 * Print a decision's new state (exit 0), or its refusal with the request's state (exit 1); a job that never asked
 * exits 2 (nothing was written for it).
 */
async function decided(act: () => Promise<ApprovalState>): Promise<number> {
  try {
    console.log(describe(await act()));
    return EXIT.ok;
  } catch (err) {
    if (!(err instanceof ApiCallError)) throw err;
    if (err.status === 404) {
      console.error(err.message);
      return EXIT.usage;
    }
    if (err.status === 0) throw err;
    console.error(`refused: ${err.message}`);
    const state = (err.body as { state?: ApprovalState } | undefined)?.state;
    if (state) console.error(describe(state));
    return EXIT.failed;
  }
}

/**
 * Fetch the statement, show it, sign it with ssh-keygen (key file or agent), submit. Without --key the approval is
 * still submitted — and refused as unsigned, and recorded: a principal's word never counts, on either transport.
 */
async function approveJob(
  client: DaemonClient,
  jobId: string,
  opts: { key?: string; as?: string; confirm?: string },
): Promise<number> {
  const release = GUARD_RELEASE.test(jobId);
  let statement: string | null;
  try {
    statement = release
      ? (await client.guardReleaseRequest(jobId)).statement
      : (await client.approval(jobId)).statement;
  } catch (err) {
    if (err instanceof ApiCallError && err.status === 404) {
      console.error(err.message);
      return EXIT.usage;
    }
    throw err;
  }
  const body: ApprovalBody = {
    ...(opts.as !== undefined ? { principal: opts.as } : {}),
    ...(opts.confirm !== undefined ? { confirmation: opts.confirm } : {}),
  };
  if (opts.key) {
    if (!statement) {
      console.error(
        `refused: ${jobId}'s request cannot be signed (it was made without its facts); submit a new job`,
      );
      return EXIT.failed;
    }
    process.stderr.write(`signing this statement with ${opts.key}:\n${statement.replace(/^/gm, "  ")}`);
    const { signature, keyFingerprint } = signStatement(opts.key, statement);
    Object.assign(body, { keyFingerprint, signature, statement });
  }
  if (release) {
    try {
      const r = await client.approveGuardRelease(jobId, body);
      console.log(`${jobId}: released (evidence ${r.evidenceJobId})`);
      return EXIT.ok;
    } catch (err) {
      if (!(err instanceof ApiCallError) || err.status === 0) throw err;
      console.error(`refused: ${err.message}`);
      return err.status === 404 ? EXIT.usage : EXIT.failed;
    }
  }
  return decided(() => client.approve(jobId, body));
}

async function show(client: DaemonClient, jobId: string, json: boolean): Promise<number> {
  if (!isValidJobId(jobId)) {
    console.error(`lunafleet: not a job id: ${JSON.stringify(jobId)}`);
    return EXIT.usage;
  }
  let state: ApprovalState;
  try {
    state = (await client.approval(jobId)).state;
  } catch (err) {
    if (err instanceof ApiCallError && err.status === 404) {
      console.error(`job ${jobId} has no approval request`);
      return EXIT.usage;
    }
    throw err;
  }
  if (json) {
    console.log(JSON.stringify(state, null, 2));
    return EXIT.ok;
  }
  console.log(describe(state));
  for (const r of state.refusals) console.log(`  not counted: ${r.principal} at ${r.at} (${r.reason})`);
  return EXIT.ok;
}

async function listWaiting(client: DaemonClient, json: boolean): Promise<number> {
  const waiting = await client.approvals();
  if (json) {
    console.log(JSON.stringify(waiting, null, 2));
    return EXIT.ok;
  }
  if (waiting.length === 0) {
    console.log("nothing awaits approval");
    return EXIT.ok;
  }
  const rows = [
    ["JOB", "RUNBOOK", "DEVICE", "SERIAL", "APPROVALS", "DEADLINE", "WHAT IT WILL DO"],
    ...waiting.map((s) => [
      s.jobId,
      s.runbook ?? "-",
      s.device,
      s.serial,
      `${s.approvals.length}/${s.required}${s.approvals.length > 0 ? ` (${s.approvals.map((a) => a.principal).join(", ")})` : ""}`,
      s.expiresAt,
      s.action ?? "-",
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  for (const r of rows)
    console.log(
      r
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join("  ")
        .trimEnd(),
    );
  console.log(
    "\napprove: lunafleet approve <job> --key <your registered SSH key> (signs the job's statement)",
  );
  return EXIT.ok;
}

function describe(s: ApprovalState): string {
  const who = s.approvals.map((a) => `${a.principal} at ${a.at}`).join(", ") || "none yet";
  const lines = [
    `job ${s.jobId}: ${s.status} — ${s.device} (serial ${s.serial}), ${s.approvals.length}/${s.required} approvals: ${who}`,
  ];
  if (s.action) lines.push(`  will: ${s.action}`);
  if (s.status === "awaiting-approval") lines.push(`  expires at ${s.expiresAt}`);
  if (s.closed) lines.push(`  the job ended: ${s.closed.outcome} at ${s.closed.at}`);
  if (s.rejection) lines.push(`  rejected by ${s.rejection.principal}: ${s.rejection.reason}`);
  return lines.join("\n");
}
