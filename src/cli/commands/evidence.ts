// `lunafleet evidence verify`: check a job's hash-chained evidence. Exit 0 when intact, 1 when tampered (printing
// the record index and why), 2 on usage errors or when nothing could be read.
import { existsSync } from "node:fs";
import type { Command } from "commander";
import {
  type EvidenceVerification,
  evidenceFilePath,
  isValidJobId,
  verifyEvidenceFile,
  verifyJobEvidence,
} from "../../evidence/index.ts";
import {
  connectRedis,
  describeRedisTarget,
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
    .option("--file <path>", "verify one JSONL evidence file on its own")
    .option("--data-dir <dir>", "lunafleet data dir (default $LUNAFLEET_DATA_DIR or ./.lunafleet)")
    .description("verify evidence; exit 0 intact, 1 tampered (prints where and why)")
    .action(async (jobId: string | undefined, opts: { file?: string; dataDir?: string }) => {
      if ((jobId === undefined) === (opts.file === undefined)) {
        console.error("evidence verify: give either a job id or --file <path>");
        process.exitCode = 2;
        return;
      }
      if (opts.file !== undefined) {
        process.exitCode = await verifyFile(opts.file, opts.file);
        return;
      }
      process.exitCode = await verifyJob(jobId!, opts.dataDir ?? defaultDataDir());
    });
}

async function verifyFile(path: string, label: string): Promise<number> {
  if (!existsSync(path)) {
    console.error(`${label}: no such evidence file`);
    return 2;
  }
  return report(label, await verifyEvidenceFile(path));
}

async function verifyJob(jobId: string, dataDir: string): Promise<number> {
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
    return verifyFile(filePath, `evidence ${jobId} (file ${filePath})`);
  }
  const redis = connectRedis({ target, connectionName: "lunafleet:cli:evidence" });
  try {
    const timeout = new Promise<never>((_, reject) =>
      setTimeout(
        () => reject(new Error(`no answer within ${REDIS_TIMEOUT_MS} ms`)),
        REDIS_TIMEOUT_MS,
      ).unref(),
    );
    let result: Awaited<ReturnType<typeof verifyJobEvidence>>;
    try {
      result = await Promise.race([verifyJobEvidence(redis, dataDir, jobId), timeout]);
    } catch (err) {
      console.error(`evidence ${jobId}: Redis copy not checked (${where}: ${(err as Error).message})`);
      return verifyFile(filePath, `evidence ${jobId} (file ${filePath})`);
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

function report(label: string, result: EvidenceVerification, note?: string): number {
  if (result.ok) {
    console.log(`${label}: ok, ${result.count} records, head ${result.headHash}${note ? ` (${note})` : ""}`);
    return 0;
  }
  console.log(`${label}: TAMPERED ${note ? `${note}: ` : ""}${result.detail}`);
  return 1;
}
