// Evidence for auditors: verify a file on its own (hash chain, canonical lines, the daemon's signatures, sealed by a
// signature at its end), verify every log in a data dir, and export records since a time as JSON lines a SIEM
// ingests (one record per line, with the log it belongs to).
import type { KeyObject } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { type RedisClient, scanKeys } from "../redis/client.ts";
import { evidenceKeys, verifyJobEvidence } from "./log.ts";
import type { EvidenceRecord } from "./record.ts";
import { checkEvidenceSignatures, finalMarkKey, type SealRequirement } from "./signing.ts";
import {
  type EvidenceVerification,
  parseEvidenceJsonl,
  verifyEvidence,
  verifyEvidenceFile,
} from "./verify.ts";

export type SignedVerification =
  | {
      ok: true;
      count: number;
      headHash: string;
      signatures: number;
      signedBy: string[];
      /** How the log ends: a final seal (and the outcome it signs), an intermediate one, or unsigned (growing). */
      end: { seal: "final"; outcome: string } | { seal: "intermediate" } | { seal: "none" };
    }
  | { ok: false; index: number; problem: string; detail: string };

/**
 * A whole JSONL copy on its own: chain, canonical form, signatures, and how it ends (`final` by default: a finished
 * job's copy; `sealed` accepts a copy ending at an intermediate seal, which proves its records up to that seal only).
 */
export async function verifySignedEvidenceFile(
  path: string,
  keys: ReadonlyMap<string, KeyObject>,
  jobId?: string,
  require: SealRequirement = "final",
): Promise<SignedVerification> {
  const chain: EvidenceVerification = await verifyEvidenceFile(path, jobId);
  if (!chain.ok) return chain;
  const parsed = parseEvidenceJsonl(readFileSync(path, "utf8"));
  const records = (parsed.ok ? parsed.records : []) as EvidenceRecord[];
  const sig = checkEvidenceSignatures(records, keys, { require });
  if (!sig.ok) return sig;
  return {
    ok: true,
    count: chain.count,
    headHash: chain.headHash,
    signatures: sig.signatures,
    signedBy: sig.signedBy,
    end: sig.end,
  };
}

function evidenceDir(dataDir: string): string {
  return join(resolve(dataDir), "evidence");
}

/** The logs (job ids) with a file in the data dir, sorted. */
function listEvidenceLogs(dataDir: string): string[] {
  const dir = evidenceDir(dataDir);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith(".jsonl"))
    .map((f) => f.slice(0, -".jsonl".length))
    .sort();
}

export interface ExportedRecord extends EvidenceRecord {
  /** Always the record's own jobId; named `log` too so a SIEM can group without knowing our field names. */
  log: string;
}

/**
 * Every record at or after `since` from every log in the data dir, oldest first, as JSON lines. A log that does not
 * verify is still exported (an auditor wants to see it) but named in `problems`.
 */
export function exportEvidence(
  dataDir: string,
  since: Date,
): { lines: string[]; problems: { log: string; detail: string }[] } {
  const out: ExportedRecord[] = [];
  const problems: { log: string; detail: string }[] = [];
  for (const log of listEvidenceLogs(dataDir)) {
    const parsed = parseEvidenceJsonl(readFileSync(join(evidenceDir(dataDir), `${log}.jsonl`), "utf8"));
    if (!parsed.ok) {
      problems.push({ log, detail: parsed.detail });
      continue;
    }
    const check = verifyEvidence(parsed.records, log);
    if (!check.ok) problems.push({ log, detail: check.detail });
    for (const r of parsed.records as EvidenceRecord[])
      if (typeof r?.at === "string" && Date.parse(r.at) >= since.getTime()) out.push({ ...r, log });
  }
  out.sort((a, b) => a.at.localeCompare(b.at) || a.log.localeCompare(b.log) || a.seq - b.seq);
  return { lines: out.map((r) => JSON.stringify(r)), problems };
}

/**
 * How a log kept in Redis must end: `final` once its writer marked it finished (finalMarkKey), else `sealed`; a caller
 * that knows the job is still running passes `growing` instead (its last records may not be signed yet).
 */
export async function sealRequirementOf(redis: RedisClient, jobId: string): Promise<SealRequirement> {
  return (await redis.exists(finalMarkKey(jobId))) > 0 ? "final" : "sealed";
}

/**
 * A job's evidence in Redis and in the data dir (chain, the two copies agree), then its signatures and how it ends
 * (`require`; a log marked finished must end with a final seal whatever is asked).
 */
export async function verifySignedJobEvidence(
  redis: RedisClient,
  dataDir: string,
  jobId: string,
  keys: ReadonlyMap<string, KeyObject>,
  opts: { require: SealRequirement },
): Promise<SignedVerification & { where?: "redis" | "file" | "both" }> {
  const chain = await verifyJobEvidence(redis, dataDir, jobId);
  if (!chain.ok) return chain;
  const records = (await redis.lrange(evidenceKeys(jobId).records, 0, -1)).map(
    (l) => JSON.parse(l) as EvidenceRecord,
  );
  const require = (await sealRequirementOf(redis, jobId)) === "final" ? "final" : opts.require;
  const sig = checkEvidenceSignatures(records, keys, { require });
  if (!sig.ok) return { ...sig, where: "both" };
  return {
    ok: true,
    count: chain.count,
    headHash: chain.headHash,
    signatures: sig.signatures,
    signedBy: sig.signedBy,
    end: sig.end,
  };
}

export interface VerifyAllResult {
  log: string;
  result: SignedVerification;
}

/**
 * Every log with a file in the data dir (and, with Redis, every log Redis holds), each verified and sealed. With
 * Redis a log must end as its final mark says (`requirementOf` may relax a running job's to `growing`); files alone
 * carry no mark, so each must end as `filesRequire` says (default `final`).
 */
export async function verifyAllEvidence(
  dataDir: string,
  keys: ReadonlyMap<string, KeyObject>,
  redis?: RedisClient,
  opts: {
    requirementOf?: (log: string) => Promise<SealRequirement>;
    filesRequire?: SealRequirement;
  } = {},
): Promise<VerifyAllResult[]> {
  const logs = new Set(listEvidenceLogs(dataDir));
  if (redis) {
    for (const k of await scanKeys(redis, "lunafleet:evidence:{*}:head"))
      logs.add(k.slice("lunafleet:evidence:{".length, -"}:head".length));
  }
  const out: VerifyAllResult[] = [];
  for (const log of [...logs].sort()) {
    const result = redis
      ? await verifySignedJobEvidence(redis, dataDir, log, keys, {
          require: (await opts.requirementOf?.(log)) ?? (await sealRequirementOf(redis, log)),
        })
      : await verifySignedEvidenceFile(
          join(evidenceDir(dataDir), `${log}.jsonl`),
          keys,
          log,
          opts.filesRequire ?? "final",
        );
    out.push({ log, result });
  }
  return out;
}
