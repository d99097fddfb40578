// The appliance state as JSON, so an appliance run under a real sshd (one process per connection, stdio-main.ts)
// keeps its login counters, zeroized flag, partitions, clients and certificate between connections. The file is the
// twin's own (it holds twin passwords) and is validated on load: a damaged file stops the appliance, it is never
// half-read.
import { chmodSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { z } from "zod";
import type { ApplianceState } from "../state.ts";

const count = z.number().int().min(0);

const partitionJson = z
  .object({
    label: z.string(),
    serial: z.string(),
    cloningDomain: z.string(),
    objects: count,
    passwords: z
      .object({ so: z.string().optional(), co: z.string().optional(), cu: z.string().optional() })
      .strict(),
    failures: z.object({ so: count, co: count, cu: count }).strict(),
    policy20: z.number().int().min(1).max(10),
    zeroized: z.boolean(),
    coLockout: z.enum(["none", "locked", "permanent"]),
    loggedIn: z.enum(["po", "so", "co", "cu"]).optional(),
  })
  .strict();

const applianceJson = z
  .object({
    format: z.literal("lunafleet-appliance-state/1"),
    savedAt: z.number(),
    name: z.string(),
    hostname: z.string(),
    serial: z.string(),
    label: z.string(),
    softwareVersion: z.string(),
    firmware: z.string(),
    model: z.string(),
    hsmSoPassword: z.string(),
    soFailures: z.number().int().min(0).max(2),
    soLoggedIn: z.boolean(),
    zeroized: z.boolean(),
    policies: z.array(z.tuple([z.number().int(), z.number().int()])),
    partitions: z.array(partitionJson),
    packages: z.object({ system: z.array(z.string()), software: z.array(z.string()) }).strict(),
    rebootPatch: z.boolean(),
    clients: z.array(
      z
        .object({
          name: z.string(),
          hostname: z.string(),
          certPem: z.string(),
          partitions: z.array(z.string()),
        })
        .strict(),
    ),
    ntls: z
      .object({
        certPem: z.string(),
        keyPem: z.string(),
        notAfter: z.string().datetime(),
        listening: z.boolean(),
        bindDevice: z.string(),
        bindAddress: z.string(),
        port: z.number().int(),
        certGeneration: count,
      })
      .strict(),
    power: z.enum(["on", "rebooting", "hung"]),
    applianceUser: z.string(),
    appliancePassword: z.string(),
    users: z.array(
      z
        .object({
          name: z.string(),
          role: z.string(),
          status: z.enum(["enabled", "disabled"]),
          radius: z.boolean(),
        })
        .strict(),
    ),
    generatedCredentials: z.record(z.string(), z.string()),
    scpFiles: z.array(z.tuple([z.string(), z.string()])),
    faults: z
      .object({
        slowReplyMs: count.optional(),
        garbleCommand: z.string().optional(),
        dropMidCommand: z.string().optional(),
        hangReboot: z.boolean().optional(),
      })
      .strict(),
    syslog: z.array(z.string()),
    commandLog: z.array(
      z.object({ at: z.number(), session: z.number(), user: z.string(), command: z.string() }).strict(),
    ),
    sessionLog: z.array(
      z
        .object({
          session: z.number(),
          user: z.string(),
          openedAt: z.number(),
          closedAt: z.number().optional(),
        })
        .passthrough(),
    ),
  })
  .strict();

export type SerializedAppliance = z.infer<typeof applianceJson>;

/** Logs keep their most recent entries only, so a long-lived state file does not grow without bound. */
const LOG_KEEP = 2000;

export function serializeApplianceState(state: ApplianceState, savedAt = Date.now()): string {
  const data: SerializedAppliance = {
    format: "lunafleet-appliance-state/1",
    savedAt,
    name: state.name,
    hostname: state.hostname,
    serial: state.serial,
    label: state.label,
    softwareVersion: state.softwareVersion,
    firmware: state.firmware,
    model: state.model,
    hsmSoPassword: state.hsmSoPassword,
    soFailures: state.soFailures,
    soLoggedIn: state.soLoggedIn,
    zeroized: state.zeroized,
    policies: [...state.policies.entries()],
    partitions: state.partitions.map((p) => ({
      ...p,
      passwords: { ...p.passwords },
      failures: { ...p.failures },
    })),
    packages: { system: [...state.packages.system], software: [...state.packages.software] },
    rebootPatch: state.rebootPatch,
    clients: [...state.clients.values()].map((c) => ({ ...c, partitions: [...c.partitions] })),
    ntls: { ...state.ntls, notAfter: state.ntls.notAfter.toISOString() },
    power: state.power,
    applianceUser: state.applianceUser,
    appliancePassword: state.appliancePassword,
    users: state.users.map((u) => ({ ...u })),
    generatedCredentials: { ...state.generatedCredentials },
    scpFiles: [...state.scpFiles.entries()],
    faults: { ...state.faults },
    syslog: state.syslog.slice(-LOG_KEEP),
    commandLog: state.commandLog.slice(-LOG_KEEP),
    sessionLog: state.sessionLog.slice(-LOG_KEEP).map((s) => ({ ...s })),
  };
  return `${JSON.stringify(data, null, 2)}\n`;
}

class ApplianceStateFileError extends Error {
  override name = "ApplianceStateFileError";
}

/** Parse a saved state; throws ApplianceStateFileError naming the first bad field (never its value). */
export function deserializeApplianceState(text: string): { state: ApplianceState; savedAt: number } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ApplianceStateFileError(`appliance state is not JSON: ${(err as Error).message}`);
  }
  const parsed = applianceJson.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ApplianceStateFileError(
      `appliance state is invalid at ${issue?.path.join(".") || "(root)"}: ${issue?.message ?? "unknown problem"}`,
    );
  }
  const d = parsed.data;
  const state: ApplianceState = {
    name: d.name,
    hostname: d.hostname,
    serial: d.serial,
    label: d.label,
    softwareVersion: d.softwareVersion,
    firmware: d.firmware,
    model: d.model,
    hsmSoPassword: d.hsmSoPassword,
    soFailures: d.soFailures,
    soLoggedIn: d.soLoggedIn,
    zeroized: d.zeroized,
    policies: new Map(d.policies),
    partitions: d.partitions,
    packages: d.packages,
    rebootPatch: d.rebootPatch,
    clients: new Map(d.clients.map((c) => [c.name, c])),
    ntls: { ...d.ntls, notAfter: new Date(d.ntls.notAfter) },
    power: d.power,
    applianceUser: d.applianceUser,
    appliancePassword: d.appliancePassword,
    users: d.users,
    generatedCredentials: d.generatedCredentials,
    scpFiles: new Map(d.scpFiles),
    faults: d.faults,
    syslog: d.syslog,
    commandLog: d.commandLog,
    sessionLog: d.sessionLog,
  };
  return { state, savedAt: d.savedAt };
}

/** Write atomically (temp file + rename) and owner-only: the file holds the twin's passwords. */
export function saveApplianceState(file: string, state: ApplianceState): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, serializeApplianceState(state), { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}

export function loadApplianceState(file: string): { state: ApplianceState; savedAt: number } {
  return deserializeApplianceState(readFileSync(file, "utf8"));
}
