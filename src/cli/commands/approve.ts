// `lunafleet approvals [job]`, `lunafleet approve <job> --as <principal> --confirm <serial>` and `lunafleet reject
// <job> --as <principal> --reason "…"`: what waits for approval, and an operator's decision on it. Each decision is
// one atomic transition in Redis (src/coord/approvals.ts) and an `approval` record in the job's evidence; a job that
// no longer waits (failed, cancelled, expired, done, or gone from the queue) is refused with its state, never
// "approved". Exit 0 when counted, 1 when refused, 2 for a usage error or a job that never asked, 3 when the daemon
// is not reachable (src/cli/exit-codes.ts).

import { existsSync } from "node:fs";
import type { Command } from "commander";
import type { Fleet } from "../../config/schema.ts";
import {
  ApprovalError,
  ApprovalRefused,
  type ApprovalState,
  type ApprovalStatement,
  approvalState,
  approvalStatement,
  approve,
  closeApproval,
  listWaitingApprovals,
  NoApprovalRequest,
  reject,
} from "../../coord/approvals.ts";
import { signableStatement, sshApprovalVerifier } from "../../coord/signed-approvals.ts";
import { EvidenceLog, isValidJobId } from "../../evidence/index.ts";
import { loadOrCreateSigner, sealEvidence, signingKeyPaths } from "../../evidence/signing.ts";
import { jobOutcome } from "../../queue/job-outcome.ts";
import { readPublishedFleet } from "../../queue/jobs.ts";
import type { RedisClient } from "../../redis/client.ts";
import { ApproverKeys } from "../../signing/approval-check.ts";
import { ApiCallError, type ApiClient, apiClientFromEnv } from "../api-client.ts";
import { type CliConnection, connectCli, DaemonUnavailable } from "../connection.ts";
import { EXIT } from "../exit-codes.ts";
import { signStatement } from "../ssh-sign.ts";
import { dataDirOption, principalOption, resolvePrincipal } from "../support.ts";

interface DecisionOptions {
  as?: string;
  dataDir?: string;
}

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
      process.exitCode = await withConnection(opts.dataDir, "approvals", (conn) =>
        jobId === undefined ? listWaiting(conn, opts.json === true) : show(conn, jobId, opts.json === true),
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
    .action(async (jobId: string, opts: DecisionOptions & { confirm?: string; key?: string }) => {
      const api = apiClientFromEnv(process.env, opts.dataDir);
      if (api) {
        process.exitCode = await approveOverApi(api, jobId, opts);
        return;
      }
      process.exitCode = await decide(jobId, opts, async (redis, submitter, evidence, fleet) => {
        const state = await approvalState(redis, jobId);
        if (!state) throw new NoApprovalRequest(`job ${jobId} has no approval request`);
        const signed = opts.key ? signFor(approvalStatement(state), opts.key) : undefined;
        const principal =
          opts.as ?? (signed && fleet ? keyOwner(fleet, signed.keyFingerprint) : undefined) ?? submitter;
        return approve(
          redis,
          jobId,
          {
            principal,
            // What was typed: a --confirm that is not the serial is refused (and recorded) by the store.
            confirmation: opts.confirm ?? state.serial,
            ...(signed ? { proof: { method: "sshsig", ...signed, submittedBy: submitter } } : {}),
          },
          { evidence, ...(fleet ? { verifier: sshApprovalVerifier(fleet) } : {}) },
        );
      });
    });
  program
    .command("reject")
    .argument("<job>", "id of the job awaiting approval")
    .option(...principalOption("who rejects"))
    .requiredOption("--reason <text>", "why (kept in the job's evidence)")
    .option(...dataDirOption)
    .description("reject a job that waits for approvals; the job stops before anything destructive")
    .action(async (jobId: string, opts: DecisionOptions & { reason: string }) => {
      process.exitCode = await decide(jobId, opts, (redis, principal, evidence) =>
        reject(redis, jobId, { principal, reason: opts.reason }, { evidence }),
      );
    });
}

async function withConnection(
  dataDir: string | undefined,
  label: string,
  act: (conn: CliConnection) => Promise<number>,
): Promise<number> {
  let conn: CliConnection;
  try {
    conn = await connectCli(dataDir ? { dataDir } : {});
  } catch (err) {
    console.error(`lunafleet ${label}: ${(err as Error).message}`);
    return err instanceof DaemonUnavailable ? EXIT.daemonDown : EXIT.failed;
  }
  try {
    return await act(conn);
  } catch (err) {
    console.error(`lunafleet ${label}: ${(err as Error).message}`);
    return err instanceof ApprovalError ? EXIT.failed : EXIT.failed;
  } finally {
    await conn.close();
  }
}

async function decide(
  jobId: string,
  opts: DecisionOptions,
  act: (
    redis: RedisClient,
    principal: string,
    evidence: EvidenceLog,
    fleet: Fleet | undefined,
  ) => Promise<ApprovalState>,
): Promise<number> {
  if (!isValidJobId(jobId)) {
    console.error(`lunafleet: not a job id: ${JSON.stringify(jobId)}`);
    return EXIT.usage;
  }
  const principal = resolvePrincipal(opts.as);
  return withConnection(opts.dataDir, "approve", async (conn) => {
    // Nothing is written (not even evidence) for a job that never asked.
    const before = await approvalState(conn.redis, jobId);
    if (!before) {
      console.error(
        `job ${jobId} has no approval request (wrong job id, or the job has not reached the step that asks yet)`,
      );
      return EXIT.usage;
    }
    const evidence = await EvidenceLog.open(conn.redis, conn.dataDir, jobId);
    // A job the queue no longer runs (failed, done, removed) can use no approval: close its request with its state
    // first, so the decision below is refused by the store itself (and recorded there).
    if (before.status === "awaiting-approval" && !before.closed) {
      const view = await jobOutcome(conn.queue, conn.redis, jobId);
      if (!["running", "awaiting-approval", "queued", "delayed"].includes(view.outcome))
        await closeApproval(conn.redis, jobId, view.outcome, { evidence });
    }
    try {
      const fleet = await readPublishedFleet(conn.redis);
      // On the daemon host the data dir's key seals what this command appended (src/evidence/signing.ts).
      const signer = existsSync(signingKeyPaths(conn.dataDir).key)
        ? loadOrCreateSigner(conn.dataDir)
        : undefined;
      const state = await act(conn.redis, principal, evidence, fleet).finally(() =>
        sealEvidence(evidence, signer).catch(() => {}),
      );
      console.log(describe(state));
      return EXIT.ok;
    } catch (err) {
      if (err instanceof ApprovalRefused) {
        console.error(`refused: ${err.message}`);
        console.error(describe(err.state));
        return EXIT.failed;
      }
      if (err instanceof NoApprovalRequest) {
        console.error(err.message);
        return EXIT.usage;
      }
      throw err;
    }
  });
}

async function show(conn: CliConnection, jobId: string, json: boolean): Promise<number> {
  if (!isValidJobId(jobId)) {
    console.error(`lunafleet: not a job id: ${JSON.stringify(jobId)}`);
    return EXIT.usage;
  }
  const state = await approvalState(conn.redis, jobId);
  if (!state) {
    console.error(`job ${jobId} has no approval request`);
    return EXIT.usage;
  }
  if (json) {
    console.log(JSON.stringify(state, null, 2));
    return EXIT.ok;
  }
  console.log(describe(state));
  for (const r of state.refusals) console.log(`  not counted: ${r.principal} at ${r.at} (${r.reason})`);
  return EXIT.ok;
}

async function listWaiting(conn: CliConnection, json: boolean): Promise<number> {
  const waiting = await listWaitingApprovals(conn.redis);
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

/** Show the statement, then sign it with ssh-keygen (key file or agent). */
function signFor(
  statement: ApprovalStatement,
  keyPath: string,
): { keyFingerprint: string; statement: string; signature: string } {
  const text = signableStatement(statement);
  process.stderr.write(`signing this statement with ${keyPath}:\n${text.replace(/^/gm, "  ")}`);
  const { signature, keyFingerprint } = signStatement(keyPath, text);
  return { keyFingerprint, statement: text, signature };
}

function keyOwner(fleet: Fleet, fingerprint: string): string | undefined {
  return new ApproverKeys(fleet.identity).get(fingerprint)?.principal;
}

/** The same approval through the daemon's API (LUNAFLEET_URL): fetch the statement, sign it here, submit. */
async function approveOverApi(
  api: ApiClient,
  jobId: string,
  opts: { key?: string; as?: string; confirm?: string },
): Promise<number> {
  try {
    if (!opts.key) {
      console.error(
        "refused: an approval counts only as a signature by your registered key: add --key <file>",
      );
      return EXIT.failed;
    }
    const guardRelease = jobId.startsWith("guard-release-");
    const got = guardRelease
      ? {
          statement: (await api.call<{ statement: string }>("GET", `/v1/guard/releases/${jobId}`)).statement,
          state: undefined,
        }
      : await api.call<{ statement: string | null; state: ApprovalState }>("GET", `/v1/approvals/${jobId}`);
    if (!got.statement) {
      console.error(`refused: job ${jobId}'s request cannot be signed (no statement)`);
      return EXIT.failed;
    }
    if (opts.confirm !== undefined && got.state && opts.confirm !== got.state.serial) {
      console.error(`refused: --confirm ${opts.confirm} is not the serial of ${got.state.device}`);
      return EXIT.failed;
    }
    process.stderr.write(`signing this statement with ${opts.key}:\n${got.statement.replace(/^/gm, "  ")}`);
    const { signature, keyFingerprint } = signStatement(opts.key, got.statement);
    const me = await api.call<{ name: string }>("GET", "/v1/whoami");
    const body = { principal: opts.as ?? me.name, keyFingerprint, signature, statement: got.statement };
    if (guardRelease) {
      const r = await api.call<{ evidenceJobId: string }>(
        "POST",
        `/v1/guard/releases/${jobId}/approve`,
        body,
      );
      console.log(`${jobId}: released (evidence ${r.evidenceJobId})`);
      return EXIT.ok;
    }
    const state = await api.call<ApprovalState>("POST", `/v1/approvals/${jobId}/approve`, body);
    console.log(describe(state));
    return EXIT.ok;
  } catch (err) {
    if (err instanceof ApiCallError) {
      console.error(`refused: ${err.message}`);
      const state = (err.body as { state?: ApprovalState } | undefined)?.state;
      if (state) console.error(describe(state));
      return err.status === 404 ? EXIT.usage : err.status === 0 ? EXIT.daemonDown : EXIT.failed;
    }
    console.error(`lunafleet approve: ${(err as Error).message}`);
    return EXIT.failed;
  }
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
