// `lunafleet evidence verify`: check a job's hash-chained evidence and the daemon's signatures over its head (a log
// must end with one). `--file` checks a copy on its own (no Redis), `--all` every log. Exit 0 when intact, 1 when
// tampered (printing the record index and why), 2 on usage errors or when nothing could be read.
// `lunafleet evidence export --since <time>`: every record since then, as JSON lines (a SIEM ingests them).
import type { KeyObject } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import type { Command } from "commander";
import {
  exportEvidence,
  type SignedVerification,
  verifyAllEvidence,
  verifySignedEvidenceFile,
  verifySignedJobEvidence,
} from "../../evidence/audit.ts";
import { evidenceFilePath, isValidJobId } from "../../evidence/index.ts";
import { localTrustedKeys, trustedKeys } from "../../evidence/signing.ts";
import { bullJobKey, resultKey } from "../../queue/jobs.ts";
import {
  connectRedis,
  describeRedisTarget,
  type RedisClient,
  type RedisTarget,
  resolveRedisTarget,
} from "../../redis/client.ts";
import { defaultDataDir, embeddedRedisSocketPath } from "../../redis/embedded-server.ts";

const REDIS_TIMEOUT_MS = 3000;

export function registerEvidenceCommands(program: Command): void {
  const evidence = program.command("evidence").description("job evidence: hash-chained, append-only records");
  evidence
    .command("verify")
    .argument("[jobId]", "job whose evidence to verify (Redis copy and file copy, and that they agree)")
    .option("--file <path>", "verify one JSONL evidence file on its own (chain and the daemon's signatures)")
    .option("--all", "verify every log of the data dir (and of Redis when it answers)")
    .option(
      "--key <pem>",
      "the daemon's published public key (evidence-signing-key.pub.pem); default: the data dir's and Redis's",
    )
    .option("--data-dir <dir>", "lunafleet data dir (default $LUNAFLEET_DATA_DIR or ./.lunafleet)")
    .description("verify evidence; exit 0 intact, 1 tampered (prints where and why)")
    .action(
      async (
        jobId: string | undefined,
        opts: { file?: string; all?: boolean; key?: string; dataDir?: string },
      ) => {
        const given = [jobId !== undefined, opts.file !== undefined, opts.all === true].filter(
          Boolean,
        ).length;
        if (given !== 1) {
          console.error("evidence verify: give a job id, --file <path> or --all");
          process.exitCode = 2;
          return;
        }
        const dataDir = opts.dataDir ?? defaultDataDir();
        if (opts.file !== undefined) {
          process.exitCode = await verifyFile(opts.file, opts.file, await keysFor(opts.key, dataDir));
          return;
        }
        if (opts.all) {
          process.exitCode = await verifyAll(dataDir, opts.key);
          return;
        }
        process.exitCode = await verifyJob(jobId!, dataDir, opts.key);
      },
    );
  evidence
    .command("export")
    .requiredOption("--since <time>", "ISO time, or 24h / 7d back from now")
    .option("--out <file>", "write there (0600) instead of stdout")
    .option("--data-dir <dir>", "lunafleet data dir (default $LUNAFLEET_DATA_DIR or ./.lunafleet)")
    .description("every evidence record since a time, one JSON object per line, for a SIEM")
    .action((opts: { since: string; out?: string; dataDir?: string }) => {
      const rel = /^(\d+)([hd])$/.exec(opts.since);
      const since = rel
        ? new Date(Date.now() - Number(rel[1]) * (rel[2] === "h" ? 3_600_000 : 86_400_000))
        : new Date(opts.since);
      if (Number.isNaN(since.getTime())) {
        console.error(`evidence export: --since '${opts.since}' is not a time (ISO, or 24h / 7d)`);
        process.exitCode = 2;
        return;
      }
      const { lines, problems } = exportEvidence(opts.dataDir ?? defaultDataDir(), since);
      const text = lines.map((l) => `${l}\n`).join("");
      if (opts.out) writeFileSync(opts.out, text, { mode: 0o600 });
      else process.stdout.write(text);
      for (const p of problems) console.error(`evidence export: log ${p.log} does not verify: ${p.detail}`);
      console.error(`evidence export: ${lines.length} records since ${since.toISOString()}`);
      process.exitCode = problems.length > 0 ? 1 : 0;
    });
}

async function keysFor(
  keyFile: string | undefined,
  dataDir: string,
  redis?: RedisClient,
): Promise<Map<string, KeyObject>> {
  if (keyFile) return trustedKeys([readFileSync(keyFile, "utf8")]);
  return localTrustedKeys(dataDir, redis);
}

async function verifyFile(path: string, label: string, keys: Map<string, KeyObject>): Promise<number> {
  if (!existsSync(path)) {
    console.error(`${label}: no such evidence file`);
    return 2;
  }
  if (keys.size === 0) {
    console.error(`${label}: no trusted public key (--key <evidence-signing-key.pub.pem>)`);
    return 2;
  }
  return report(label, await verifySignedEvidenceFile(path, keys));
}

async function verifyAll(dataDir: string, keyFile: string | undefined): Promise<number> {
  let redis: RedisClient | undefined;
  try {
    const target = resolveRedisTarget({ socketPath: embeddedRedisSocketPath(dataDir) });
    if (target.kind !== "socket" || existsSync(target.path))
      redis = connectRedis({ target, connectionName: "lunafleet:cli:evidence" });
  } catch {
    redis = undefined;
  }
  try {
    const keys = await keysFor(keyFile, dataDir, redis);
    const results = await verifyAllEvidence(dataDir, keys, redis);
    let bad = 0;
    for (const r of results) {
      if (!r.result.ok) bad += 1;
      report(`evidence ${r.log}`, r.result);
    }
    console.log(
      `evidence verify --all: ${results.length - bad}/${results.length} logs intact${redis ? "" : " (files only: Redis not reachable)"}`,
    );
    return bad > 0 ? 1 : 0;
  } finally {
    redis?.disconnect();
  }
}

async function verifyJob(jobId: string, dataDir: string, keyFile?: string): Promise<number> {
  if (!isValidJobId(jobId)) {
    console.error(`evidence verify: not a job id: ${JSON.stringify(jobId)}`);
    return 2;
  }
  const filePath = evidenceFilePath(dataDir, jobId);
  let target: RedisTarget;
  try {
    target = resolveRedisTarget({ socketPath: embeddedRedisSocketPath(dataDir) });
  } catch (err) {
    console.error(`evidence ${jobId}: ${(err as Error).message}`);
    return 2;
  }
  const where = describeRedisTarget(target);
  if (target.kind === "socket" && !existsSync(target.path)) {
    console.error(
      `evidence ${jobId}: Redis copy not checked (no embedded Redis at ${target.path}; daemon not running)`,
    );
    return verifyFile(filePath, `evidence ${jobId} (file ${filePath})`, await keysFor(keyFile, dataDir));
  }
  const redis = connectRedis({ target, connectionName: "lunafleet:cli:evidence" });
  try {
    const timeout = new Promise<never>((_, reject) =>
      setTimeout(
        () => reject(new Error(`no answer within ${REDIS_TIMEOUT_MS} ms`)),
        REDIS_TIMEOUT_MS,
      ).unref(),
    );
    let result: Awaited<ReturnType<typeof verifySignedJobEvidence>>;
    try {
      const keys = await Promise.race([keysFor(keyFile, dataDir, redis), timeout]);
      // A job still running (no result yet) may not be sealed yet; anything else must be.
      const running = !(await redis.get(resultKey(jobId))) && (await redis.exists(bullJobKey(jobId))) > 0;
      result = await Promise.race([
        verifySignedJobEvidence(redis, dataDir, jobId, keys, { requireSealed: !running }),
        timeout,
      ]);
    } catch (err) {
      console.error(`evidence ${jobId}: Redis copy not checked (${where}: ${(err as Error).message})`);
      return verifyFile(filePath, `evidence ${jobId} (file ${filePath})`, await keysFor(keyFile, dataDir));
    }
    if (result.ok && result.count === 0 && !existsSync(filePath)) {
      console.error(`evidence ${jobId}: no evidence recorded for this job (${where}, ${filePath})`);
      return 2;
    }
    const copies = result.ok
      ? "Redis and file agree"
      : `in the ${result.where === "both" ? "two copies" : `${result.where} copy`}`;
    return report(`evidence ${jobId}`, result, copies);
  } finally {
    redis.disconnect();
  }
}

function report(label: string, result: SignedVerification, note?: string): number {
  if (result.ok) {
    console.log(
      `${label}: ok, ${result.count} records, head ${result.headHash}, ${result.signatures} daemon signature(s) by ${result.signedBy.join(", ") || "-"}${note ? ` (${note})` : ""}`,
    );
    return 0;
  }
  console.log(`${label}: TAMPERED ${note ? `${note}: ` : ""}${result.detail}`);
  return 1;
}
