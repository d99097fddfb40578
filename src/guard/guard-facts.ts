// The login guard's state of a device as a fact of the fleet state model (src/facts): `device:<d>` `guard` is a
// problem while a credential of it is quarantined or has an attempt in flight, ok otherwise. Written where that
// state changes — after a login a job's guard attempted (succeeded, failed or unknown) and after an operator's
// release — so `report` and `/metrics` read it from the model like every other fact.
import type { FactSink, ObservationInput } from "../facts/model.ts";
import { RedisFactStore } from "../facts/store.ts";
import type { RedisClient } from "../redis/client.ts";
import { type LedgerEntry, LoginLedger } from "./ledger.ts";

function roleLabel(e: { role: string; partition?: string }): string {
  return e.partition ? `${e.partition}/${e.role}` : e.role;
}

function releaseCommand(device: string, e: { role: string; partition?: string }): string {
  return `lunafleet guard release ${device} ${e.role}${e.partition ? ` --partition ${e.partition}` : ""} --reason "…"`;
}

function guardFact(device: string, entries: readonly LedgerEntry[]): ObservationInput {
  const mine = entries.filter((e) => e.device === device);
  const held = mine.filter((e) => e.quarantined);
  const quarantined = held.map(roleLabel);
  const pending = mine.filter((e) => e.pendingAttempt).map(roleLabel);
  const subject = `device:${device}`;
  if (quarantined.length > 0)
    return {
      subject,
      fact: "guard",
      status: "problem",
      summary: `quarantined: ${quarantined.join(", ")}`,
      value: { quarantined, pending },
      // The way out, spelled out per credential (the operator copies it; `<role>` left them to guard the syntax).
      reason: `guard quarantine: ${quarantined.join(", ")} (after fixing it: ${held.map((e) => releaseCommand(device, e)).join("; ")})`,
    };
  if (pending.length > 0)
    return {
      subject,
      fact: "guard",
      status: "problem",
      summary: `pending: ${pending.join(", ")}`,
      value: { quarantined, pending },
      reason: `guard: a login attempt is in flight or unresolved for ${pending.join(", ")}`,
    };
  return { subject, fact: "guard", status: "ok", summary: "ok", value: { quarantined: [], pending: [] } };
}

/** Read the ledger and record the device's guard fact, by `by` (a runbook, or `guard release`). */
export async function observeGuard(
  redis: RedisClient,
  device: string,
  source: { jobId: string | null; by: string },
  sink: FactSink = new RedisFactStore(redis),
): Promise<void> {
  const entries = await new LoginLedger(redis).list();
  await sink.record([{ ...guardFact(device, entries), observedAt: new Date().toISOString(), ...source }]);
}
