// `lunafleet guard status [--json]` and `lunafleet guard release <device> <role> [--partition p] --reason "…"`: the
// login guard's ledger for operators, through the daemon client (src/api/ops/guard.ts). Status lists every (device,
// partition, role) entry: failures, a pending attempt, the quarantine and why, and the device's own counter as last
// seen. Release is a guard-admin's statement that the credential was fixed (src/guard/release-rules.ts): HSM SO,
// Partition SO and permanent-lockout CO releases need a reason of substance and then a second principal's signed
// approval (`lunafleet approve <request id> --key …`); others are released at once. Recorded as evidence; it only
// resets the ledger — the device's own counter still guards destructive roles.
// Exit codes: 0 done (or waiting for the second approval), 1 refused, 2 usage error, 3 daemon out of reach.
import type { Command } from "commander";
import type { LedgerEntry } from "../../guard/ledger.ts";
import { GUARD_ROLES, type GuardRole } from "../../guard/roles.ts";
import { assertPrincipal, dataDirOption, principalOption, withDaemonClient } from "../support.ts";

export function registerGuardCommands(program: Command): void {
  const guard = program.command("guard").description("login guard: ledger, quarantines and their release");
  guard
    .command("status")
    .option("--json", "machine-readable output")
    .option(...dataDirOption)
    .description("every ledger entry: failures, pending attempt, quarantine, the device's last known counter")
    .action(async (opts: { json?: boolean; dataDir?: string }) => {
      await withDaemonClient("guard status", opts, async (client) => {
        const entries = await client.guardStatus();
        console.log(opts.json ? JSON.stringify(entries, null, 2) : renderStatus(entries));
        return 0;
      });
    });
  guard
    .command("release")
    .argument("<device>", "device name")
    .argument("<role>", `role (${GUARD_ROLES.join(", ")})`)
    .option("--partition <label>", "partition, for partitionSo / co / cu")
    .requiredOption("--reason <text>", "what was wrong and what was fixed (kept in the evidence)")
    .option(...principalOption("who confirms the fix"))
    .option(...dataDirOption)
    .description(
      "release a quarantined credential after fixing it (guard-admin; SO, Partition SO and permanent-lockout CO also need a second signed approval)",
    )
    .action(
      async (
        device: string,
        role: string,
        opts: { partition?: string; reason: string; as?: string; dataDir?: string },
      ) => {
        if (!(GUARD_ROLES as readonly string[]).includes(role)) {
          console.error(`guard release: unknown role '${role}' (one of ${GUARD_ROLES.join(", ")})`);
          process.exitCode = 2;
          return;
        }
        await withDaemonClient("guard release", opts, async (client) => {
          await assertPrincipal(client, opts.as);
          const decision = await client.guardRelease({
            device,
            role: role as GuardRole,
            ...(opts.partition ? { partition: opts.partition } : {}),
            reason: opts.reason,
          });
          if (decision.kind === "awaiting-approval") {
            const r = decision.request;
            console.log(
              `release of ${where(r)} requested by ${r.requester}: ${r.id} awaits a second principal's signed approval until ${r.deadline}`,
            );
            console.log(
              `  approve: lunafleet approve ${r.id} --key <a registered SSH key, not ${r.requester}'s>`,
            );
            console.log(`  statement:\n${r.statement.replace(/^/gm, "    ")}`);
            return 0;
          }
          const res = decision.result;
          console.log(
            `released ${where(res.before)} (was: ${res.before.quarantineReason ?? "failures recorded"}); evidence ${res.evidenceJobId}`,
          );
          console.log(
            "note: only the ledger was reset; a destructive role is tried again only when the device's own counter is full",
          );
          return 0;
        });
      },
    );
}

function where(e: { device: string; partition?: string | undefined; role: string }): string {
  return `${e.device}${e.partition ? `/${e.partition}` : ""} ${e.role}`;
}

function renderStatus(entries: LedgerEntry[]): string {
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
