// `lunafleet guard status [--json]` and `lunafleet guard release <device> <role> [--partition p] --reason "…"
// --as <principal>`: the login guard's ledger for operators. Status lists every (device, partition, role) entry:
// failures, a pending attempt, the quarantine and why, and the device's own counter as last seen. Release is an
// operator's statement that the credential was fixed; it is recorded as evidence (job id guard:<device>:<role>:<ms>)
// and only resets the ledger — the device's own counter still guards destructive roles.
// Exit codes: 0 done, 1 refused (not quarantined, attempt in flight), 2 usage error or Redis out of reach.
import type { Command } from "commander";
import type { LedgerEntry } from "../../guard/ledger.ts";
import { guardStatus, ReleaseRefused, releaseQuarantine } from "../../guard/release.ts";
import { GUARD_ROLES, type GuardRole } from "../../guard/roles.ts";
import type { RedisClient } from "../../redis/client.ts";
import { defaultDataDir } from "../../redis/embedded-server.ts";
import { withEmbeddedRedis } from "../support.ts";

const DATA_DIR_HELP = "lunafleet data dir (default $LUNAFLEET_DATA_DIR or ./.lunafleet)";

export function registerGuardCommands(program: Command): void {
  const guard = program.command("guard").description("login guard: ledger, quarantines and their release");
  guard
    .command("status")
    .option("--json", "machine-readable output")
    .option("--data-dir <dir>", DATA_DIR_HELP)
    .description("every ledger entry: failures, pending attempt, quarantine, the device's last known counter")
    .action(async (opts: { json?: boolean; dataDir?: string }) => {
      process.exitCode = await withRedis(opts.dataDir, "status", async (redis) => {
        const entries = await guardStatus(redis);
        if (opts.json) console.log(JSON.stringify(entries, null, 2));
        else console.log(renderStatus(entries));
        return 0;
      });
    });
  guard
    .command("release")
    .argument("<device>", "device name")
    .argument("<role>", `role (${GUARD_ROLES.join(", ")})`)
    .option("--partition <label>", "partition, for partitionSo / co / cu")
    .requiredOption("--reason <text>", "what was fixed (kept in the evidence)")
    .requiredOption("--as <principal>", "who confirms the fix")
    .option("--data-dir <dir>", DATA_DIR_HELP)
    .description("release a quarantined credential after fixing it (recorded as evidence)")
    .action(
      async (
        device: string,
        role: string,
        opts: { partition?: string; reason: string; as: string; dataDir?: string },
      ) => {
        if (!(GUARD_ROLES as readonly string[]).includes(role)) {
          console.error(`guard release: unknown role '${role}' (one of ${GUARD_ROLES.join(", ")})`);
          process.exitCode = 2;
          return;
        }
        const dataDir = opts.dataDir ?? defaultDataDir();
        process.exitCode = await withRedis(dataDir, "release", async (redis) => {
          try {
            const r = await releaseQuarantine(redis, dataDir, {
              device,
              role: role as GuardRole,
              partition: opts.partition,
              reason: opts.reason,
              principal: opts.as,
            });
            console.log(
              `released ${where(r.before)} (was: ${r.before.quarantineReason ?? "failures recorded"}); evidence ${r.evidenceJobId}`,
            );
            console.log(
              "note: only the ledger was reset; a destructive role is tried again only when the device's own counter is full",
            );
            return 0;
          } catch (err) {
            if (err instanceof ReleaseRefused) {
              console.error(`refused: ${err.message}`);
              return 1;
            }
            throw err;
          }
        });
      },
    );
}

function withRedis(
  dataDirOpt: string | undefined,
  what: string,
  act: (redis: RedisClient) => Promise<number>,
): Promise<number> {
  return withEmbeddedRedis(dataDirOpt, `guard ${what}`, `lunafleet:cli:guard-${what}`, act);
}

function where(e: { device: string; partition?: string | undefined; role: string }): string {
  return `${e.device}${e.partition ? `/${e.partition}` : ""} ${e.role}`;
}

export function renderStatus(entries: LedgerEntry[]): string {
  if (entries.length === 0) return "no login ledger entries";
  const lines: string[] = [];
  for (const e of entries) {
    const state = e.pendingAttempt
      ? `PENDING ${e.pendingAttempt} since ${e.pendingSince ?? "?"}`
      : e.quarantined
        ? "QUARANTINED"
        : "ok";
    lines.push(`${where(e)}: ${state}, ${e.failures} failure(s) since the last success`);
    if (e.quarantined)
      lines.push(
        `  quarantined: ${e.quarantineReason ?? "no reason recorded"}${e.quarantineJob ? ` (job ${e.quarantineJob})` : ""}${e.quarantinedAt ? ` at ${e.quarantinedAt}` : ""}`,
      );
    const counter =
      e.deviceState === undefined
        ? "never read"
        : `${e.deviceAttemptsLeft ?? "not shown"} attempts left, ${e.deviceState}, seen ${e.deviceObservedAt ?? "?"}`;
    lines.push(`  device counter: ${counter}`);
    if (e.lastOutcome) lines.push(`  last outcome: ${e.lastOutcome} at ${e.lastAttemptAt ?? "?"}`);
    if (e.releasedAt)
      lines.push(`  released by ${e.releasedBy ?? "?"} at ${e.releasedAt}: ${e.releaseReason ?? ""}`);
  }
  return lines.join("\n");
}
