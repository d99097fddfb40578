// The fleet state model: what lunafleet last saw of every device, partition, client host, HA member, Azure resource
// and (appliance, client) pair — one observation per fact, each with when it was seen (`observedAt`), by which job,
// and its status:
//
//   ok            seen, and as it should be
//   problem       seen, and wrong (missing patch, certificate expiring, member down, foreign cloning domain…)
//   check-failed  the job that was to see it could not (connection dropped, reply unparseable…): the reason says why;
//                 never an older green value in its place
//   unknown       never seen
//
// Jobs write what they observed — succeeded, failed or cancelled — and `report`, `/metrics` and the console read only
// from here (DESIGN "What the operator sees is true").
//
// Adding a new kind of fact (e.g. a Managed HSM's soft-delete state): pick a subject kind (SUBJECT_KINDS, or add
// one), name the fact (a lowercase word, `:` for a qualifier, e.g. `patch:KB0019789`), write it from a runbook step
// with ctx.facts.observe({ subject, fact, status, summary, value }) and declare it in the step's `observes` so a
// failed step records `check-failed` for it. `report <subject's device>` and `report --json` show it with no further
// change; give it a column or a gauge only if operators need one (src/daemon/report.ts, fleet-metrics.ts).

/** Plain JSON (the engine's Json: observations are redacted by the engine before they get here). */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export type FactStatus = "ok" | "problem" | "check-failed" | "unknown";
export const FACT_STATUSES: readonly FactStatus[] = ["ok", "problem", "check-failed", "unknown"];

/** What a subject names; the id after the colon uses the fleet file's names. */
export const SUBJECT_KINDS = {
  /** `device:<device>` */
  device: "device",
  /** `partition:<device>/<label>` */
  partition: "partition",
  /** `client:<client host>` */
  client: "client",
  /** `ha-member:<group>/<device>/<partition>` */
  haMember: "ha-member",
  /** `ha-group:<group>` */
  haGroup: "ha-group",
  /** `pair:<device>|<client host>`: an appliance and a client that must trust each other */
  pair: "pair",
  /** `azure:<resource id>` (an HSM resource or a resource group) */
  azure: "azure",
} as const;

export const subjects = {
  device: (device: string) => `device:${device}`,
  partition: (device: string, label: string) => `partition:${device}/${label}`,
  client: (host: string) => `client:${host}`,
  haMember: (group: string, device: string, partition: string) => `ha-member:${group}/${device}/${partition}`,
  haGroup: (group: string) => `ha-group:${group}`,
  pair: (device: string, host: string) => `pair:${device}|${host}`,
  azure: (resourceId: string) => `azure:${resourceId}`,
};

/** A fact a step will observe (declared so a failed step can record `check-failed` for it). */
export interface FactRef {
  subject: string;
  fact: string;
}

/** What a step hands to ctx.facts.observe(); the engine adds when, by which job and runbook. */
export interface ObservationInput extends FactRef {
  status: FactStatus;
  /** One short line an operator reads in the report: `7.2.0-220`, `installed`, `up 1.2 ms`, `DOWN`. */
  summary: string;
  /** The observed value, small and secret-free (redacted by the engine). */
  value?: JsonValue;
  /** Why a `problem` is one, or why the check failed. */
  reason?: string;
}

export interface Observation extends ObservationInput {
  /** When it was seen (ISO 8601). */
  observedAt: string;
  /** The job that saw it; null for an operator's action outside a job (`guard release`). */
  jobId: string | null;
  /** The runbook that saw it, or what did (`guard release`). */
  by: string;
}

/** Where observations go (RedisFactStore in production; the engine's step context writes through it). */
export interface FactSink {
  record(observations: readonly Observation[]): Promise<void>;
}

const SUBJECT_RE = /^[a-z][a-z-]*:[^\s]{1,400}$/;
const FACT_RE = /^[a-z][a-z0-9-]*(:[A-Za-z0-9._-]+)?$/;

class FactInvalid extends Error {
  override name = "FactInvalid";
  readonly retryable = false;
}

/** Subjects and fact names are keys in Redis: plain, bounded, never free text. */
export function checkObservation(o: ObservationInput): void {
  if (!SUBJECT_RE.test(o.subject))
    throw new FactInvalid(`fact subject ${JSON.stringify(o.subject)} is not a subject`);
  if (!FACT_RE.test(o.fact)) throw new FactInvalid(`fact name ${JSON.stringify(o.fact)} is not a fact name`);
  if (!FACT_STATUSES.includes(o.status))
    throw new FactInvalid(`fact status ${JSON.stringify(o.status)} is unknown`);
}
