// The latest Managed HSM findings (mhsm-audit, cmk-health, app-crypto-gate, mhsm-retire), kept in Redis under
// `azure:<pool>` for the Managed HSM part of `lunafleet report` (src/daemon/report-mhsm.ts): when a job ends, each
// entry of its final step's `managedHsms` list is stored by runbook, with the job id and time; a newer job replaces an
// older one only if it finished later. Devices, hosts, pairs and HA members live in the fleet state model
// (src/facts), which report and /metrics read; these pool findings are to move there too (ctx.facts).
import { GOAL_NOT_MET } from "../engine/outcome.ts";
import type { JobResult } from "../engine/runner.ts";
import { type LuaScript, luaScript, type RedisClient, runScript } from "../redis/client.ts";
import { KEY_PREFIX } from "./jobs.ts";

export interface Finding {
  jobId: string;
  /** When the job finished (ISO). */
  at: string;
  data: Record<string, unknown>;
}

export function findingsKey(device: string): string {
  return `${KEY_PREFIX}:findings:{${device}}`;
}

// KEYS[1] findings hash; ARGV runbook, json, at. Keep the newer of the stored and the offered finding.
const keepNewerFinding: LuaScript = luaScript(
  "keepNewerFinding",
  1,
  `local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local ok, old = pcall(cjson.decode, cur)
  if ok and old.at and old.at > ARGV[3] then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1`,
);

/** Store the per-pool entries of a job's final result. Returns the `azure:<pool>` keys recorded. */
export async function recordFindings(
  redis: RedisClient,
  result: JobResult,
  at = new Date(),
): Promise<string[]> {
  // Succeeded, or every step ran and the verdict said the goal was not met: either way what it saw is a fact.
  if (result.status !== "succeeded" && result.error?.type !== GOAL_NOT_MET) return [];
  const last = result.steps.at(-1)?.result as { managedHsms?: unknown } | undefined;
  if (!last) return [];
  const recorded: string[] = [];
  // Managed HSM runbooks (mhsm-audit, cmk-health, app-crypto-gate, mhsm-retire) end with one entry per pool; they are
  // kept under `azure:<pool>` beside the devices' (src/daemon/report-mhsm.ts reads them).
  for (const entry of Array.isArray(last.managedHsms) ? last.managedHsms : []) {
    const pool = (entry as { managedHsm?: unknown } | null)?.managedHsm;
    if (typeof pool !== "string") continue;
    const finding: Finding = {
      jobId: result.jobId,
      at: at.toISOString(),
      data: entry as Record<string, unknown>,
    };
    await runScript(
      redis,
      keepNewerFinding,
      [findingsKey(`azure:${pool}`)],
      [result.runbook, JSON.stringify(finding), finding.at],
    );
    recorded.push(`azure:${pool}`);
  }
  return recorded;
}

/** The latest finding per runbook for each device. */
export async function readFindings(
  redis: RedisClient,
  devices: readonly string[],
): Promise<Map<string, Record<string, Finding>>> {
  const out = new Map<string, Record<string, Finding>>();
  for (const d of devices) {
    const raw = await redis.hgetall(findingsKey(d));
    const byRunbook: Record<string, Finding> = {};
    for (const [runbook, json] of Object.entries(raw)) {
      try {
        byRunbook[runbook] = JSON.parse(json) as Finding;
      } catch {
        // a corrupt entry is not a finding; the report shows the device as unknown for that runbook
      }
    }
    out.set(d, byRunbook);
  }
  return out;
}
