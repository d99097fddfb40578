// `lunafleet evidence verify`: check a job's hash-chained evidence and the daemon's signatures over it, and how the
// log ends (src/evidence/signing.ts): a finished job's log with a final seal naming its outcome; a running job's
// may still grow. `<job>` and `--all` go through the daemon client (the API, or the data dir's Redis and files on the
// daemon host; files alone when its Redis is down). `--file` checks a copy on its own, anywhere, without the daemon:
// by default it must end with a final seal; `--unfinished` accepts a copy ending at an intermediate seal and then
// proves only the records up to that seal (never that nothing followed it).
// Exit 0 when intact, 1 when tampered (printing the record index and why), 2 on usage errors or nothing to read.
// `lunafleet evidence export --since <time>`: every record since then, as JSON lines (a SIEM ingests them).
import type { KeyObject } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import type { Command } from "commander";
import {
  exportEvidence,
  type SignedVerification,
  verifyAllEvidence,
  verifySignedEvidenceFile,
} from "../../evidence/audit.ts";
import { evidenceFilePath, isValidJobId } from "../../evidence/index.ts";
import { localTrustedKeys, type SealRequirement, trustedKeys } from "../../evidence/signing.ts";
import { defaultDataDir } from "../../redis/embedded-server.ts";
import { DaemonUnavailable } from "../connection.ts";
import { type DaemonClient, openDaemonClient } from "../daemon-client.ts";
import { failCommand } from "../support.ts";

const DATA_DIR_HELP = "lunafleet data dir (default $LUNAFLEET_DATA_DIR or ./.lunafleet)";

interface VerifyOptions {
  file?: string;
  all?: boolean;
  key?: string;
  unfinished?: boolean;
  dataDir?: string;
}

export function registerEvidenceCommands(program: Command): void {
  const evidence = program.command("evidence").description("job evidence: hash-chained, append-only records");
  evidence
    .command("verify")
    .argument("[jobId]", "job whose evidence to verify (Redis copy and file copy, and that they agree)")
    .option(
      "--file <path>",
      "verify one JSONL evidence file on its own (chain, the daemon's signatures, final seal)",
    )
    .option("--all", "verify every log (the daemon's, or the data dir's files when its Redis is down)")
    .option(
      "--key <pem>",
      "the daemon's published public key (evidence-signing-key.pub.pem); default: the daemon's published keys",
    )
    .option(
      "--unfinished",
      "with --file (or files only): accept a copy ending at an intermediate seal (a running job); proves only the records up to that seal",
    )
    .option("--data-dir <dir>", DATA_DIR_HELP)
    .description("verify evidence; exit 0 intact, 1 tampered (prints where and why)")
    .action(async (jobId: string | undefined, opts: VerifyOptions) => {
      const given = [jobId !== undefined, opts.file !== undefined, opts.all === true].filter(Boolean).length;
      if (given !== 1) {
        console.error("evidence verify: give a job id, --file <path> or --all");
        process.exitCode = 2;
        return;
      }
      if (jobId !== undefined && !isValidJobId(jobId)) {
        console.error(`evidence verify: not a job id: ${JSON.stringify(jobId)}`);
        process.exitCode = 2;
        return;
      }
      try {
        process.exitCode = await verify(jobId, opts);
      } catch (err) {
        failCommand("evidence verify", err);
      }
    });
  evidence
    .command("export")
    .requiredOption("--since <time>", "ISO time, or 24h / 7d back from now")
    .option("--out <file>", "write there (0600) instead of stdout")
    .option("--data-dir <dir>", DATA_DIR_HELP)
    .description("every evidence record since a time, one JSON object per line, for a SIEM")
    .action(async (opts: { since: string; out?: string; dataDir?: string }) => {
      const rel = /^(\d+)([hd])$/.exec(opts.since);
      const since = rel
        ? new Date(Date.now() - Number(rel[1]) * (rel[2] === "h" ? 3_600_000 : 86_400_000))
        : new Date(opts.since);
      if (Number.isNaN(since.getTime())) {
        console.error(`evidence export: --since '${opts.since}' is not a time (ISO, or 24h / 7d)`);
        process.exitCode = 2;
        return;
      }
      try {
        const dataDir = opts.dataDir ?? defaultDataDir();
        // The files are the export's source; without a reachable daemon the data dir's are read directly.
        const { lines, problems } =
          (await withClientOrOffline(dataDir, (c) => c.exportEvidence(since))) ??
          exportEvidence(dataDir, since);
        const text = lines.map((l) => `${l}\n`).join("");
        if (opts.out) writeFileSync(opts.out, text, { mode: 0o600 });
        else process.stdout.write(text);
        for (const p of problems) console.error(`evidence export: log ${p.log} does not verify: ${p.detail}`);
        console.error(`evidence export: ${lines.length} records since ${since.toISOString()}`);
        process.exitCode = problems.length > 0 ? 1 : 0;
      } catch (err) {
        failCommand("evidence export", err);
      }
    });
}

/**
 * Run `act` on the daemon client; undefined when the daemon is not reachable on the daemon host (no LUNAFLEET_URL):
 * the caller then works on the data dir's files alone and says so.
 */
async function withClientOrOffline<T>(
  dataDir: string,
  act: (client: DaemonClient) => Promise<T>,
): Promise<T | undefined> {
  let client: DaemonClient;
  try {
    client = await openDaemonClient({ dataDir });
  } catch (err) {
    if (err instanceof DaemonUnavailable) {
      console.error(
        `evidence: ${err.message.split(":")[0]}: the daemon is not reachable; reading the files only`,
      );
      return undefined;
    }
    throw err;
  }
  try {
    return await act(client);
  } finally {
    await client.close();
  }
}

async function verify(jobId: string | undefined, opts: VerifyOptions): Promise<number> {
  const dataDir = opts.dataDir ?? defaultDataDir();
  const filesRequire: SealRequirement = opts.unfinished ? "sealed" : "final";
  if (opts.file !== undefined) {
    // A copy checked on its own: the key given, else the daemon's published keys (over the API), else the data dir's.
    const keys = opts.key
      ? trustedKeys([readFileSync(opts.key, "utf8")])
      : process.env.LUNAFLEET_URL
        ? ((await withClientOrOffline(dataDir, async (c) =>
            trustedKeys(Object.values(await c.evidenceKeys())),
          )) ?? new Map())
        : await localTrustedKeys(dataDir);
    return verifyFile(opts.file, opts.file, keys, filesRequire);
  }
  if (opts.all) {
    const answer = await withClientOrOffline(dataDir, (c) => c.verifyAllEvidence());
    const results =
      answer?.logs.map((l) => ({ log: l.log, result: l as SignedVerification })) ??
      (await verifyAllEvidence(dataDir, await keysFor(opts.key, dataDir), undefined, { filesRequire }));
    let bad = 0;
    for (const r of results) {
      if (!r.result.ok) bad += 1;
      report(`evidence ${r.log}`, r.result);
    }
    console.log(
      `evidence verify --all: ${results.length - bad}/${results.length} logs intact${answer ? "" : " (files only: the daemon is not reachable)"}`,
    );
    return bad > 0 ? 1 : 0;
  }
  const id = jobId!;
  const answer = await withClientOrOffline(dataDir, (c) => c.verifyEvidence(id)).catch((err: unknown) => {
    if ((err as { status?: number }).status === 404) return "none" as const;
    throw err;
  });
  const filePath = evidenceFilePath(dataDir, id);
  if (answer === "none") {
    console.error(`evidence ${id}: no evidence recorded for this job`);
    return 2;
  }
  if (answer === undefined)
    return verifyFile(
      filePath,
      `evidence ${id} (file ${filePath})`,
      await keysFor(opts.key, dataDir),
      filesRequire,
    );
  const copies = answer.ok
    ? "Redis and file agree"
    : `in the ${answer.where === "both" || !answer.where ? "two copies" : `${answer.where} copy`}`;
  return report(`evidence ${id}`, answer, copies);
}

async function keysFor(keyFile: string | undefined, dataDir: string): Promise<Map<string, KeyObject>> {
  if (keyFile) return trustedKeys([readFileSync(keyFile, "utf8")]);
  return localTrustedKeys(dataDir);
}

async function verifyFile(
  path: string,
  label: string,
  keys: Map<string, KeyObject>,
  require: SealRequirement,
): Promise<number> {
  if (!existsSync(path)) {
    console.error(`${label}: no such evidence file`);
    return 2;
  }
  if (keys.size === 0) {
    console.error(`${label}: no trusted public key (--key <evidence-signing-key.pub.pem>)`);
    return 2;
  }
  return report(label, await verifySignedEvidenceFile(path, keys, undefined, require));
}

function ending(end: Extract<SignedVerification, { ok: true }>["end"] | undefined): string {
  if (!end) return "";
  if (end.seal === "final") return `, final seal: ${end.outcome}`;
  if (end.seal === "intermediate")
    return ", ends at an intermediate seal: proves these records only, not that none followed";
  return ", still being written (its last records not sealed yet)";
}

function report(label: string, result: SignedVerification, note?: string): number {
  if (result.ok) {
    console.log(
      `${label}: ok, ${result.count} records, head ${result.headHash}, ${result.signatures} daemon signature(s) by ${result.signedBy.join(", ") || "-"}${ending(result.end)}${note ? ` (${note})` : ""}`,
    );
    return 0;
  }
  console.log(`${label}: TAMPERED ${note ? `${note}: ` : ""}${result.detail}`);
  return 1;
}
