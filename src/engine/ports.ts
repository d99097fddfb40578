// The ports of the engine: the narrow shapes it needs from the modules below it (shells, files, probes, Azure,
// approvals, the guard, evidence, durable state). The real modules satisfy them structurally; tests pass scripted
// ones. A new capability for runbooks starts here: its port, then what the step sees (step-context.ts), then how it
// is recorded (a recorded-*.ts beside the others).
import type { DedicatedHsmGateway } from "../azure/dedicated-hsm.ts";
import type { ClientHost, Device } from "../config/schema.ts";
import type { ApprovalRequest, ApprovalState } from "../coord/approvals.ts";
import type { LoginResult } from "../guard/guard.ts";
import type { GuardRole } from "../guard/roles.ts";
import type { SanctionedZeroizeResult } from "../guard/sanctioned-zeroize.ts";
import type { TcpProbeResult, TlsProbeOptions, TlsProbeResult } from "../net/probe.ts";
import type { ShellSession } from "../shell/session.ts";

export type { ApprovalRequest, ApprovalState, GuardRole, LoginResult, SanctionedZeroizeResult };

export interface CommandOptions {
  /** The confirmation this step answers (`proceed`); absent = any confirmation prompt aborts the command. */
  confirm?: "proceed";
  timeoutMs?: number;
  /** The step declares an appliance reboot; the command policy refuses one otherwise. */
  allowReboot?: boolean;
  /** The device's known reboot safety (patch-verify); undefined makes the policy refuse a reboot. */
  rebootUnsafe?: boolean;
}

/**
 * One open lunash, lunacm or client-host session (src/shell ShellSession): it frames replies; the command's parser
 * reads them (src/shell/reply.ts sendCommand).
 */
export type DeviceShell = Pick<ShellSession, "run" | "abandon" | "target" | "platform" | "usable">;

/**
 * The sessions of one job, by fleet name (src/shell JobShells satisfies it): one per target, lent to every step while
 * it is usable, a fresh one when it is not.
 */
export interface ShellPort {
  lunash(device: string): Promise<DeviceShell>;
  lunacm(host: string): Promise<DeviceShell>;
  /** The client host's OS shell, where the `vtl` tool runs. */
  hostShell(host: string): Promise<DeviceShell>;
}

/**
 * Moving certificate files (public material only: server.pem, client certificates) — src/shell jobFiles(). Appliance
 * names are plain names in its scp area; client-host paths are absolute and limited to the Luna certificate
 * directories and /tmp. Private keys are never read or written through this port.
 */
export interface FileTransport {
  readApplianceFile(device: Device, name: string): Promise<string>;
  writeApplianceFile(device: Device, name: string, text: string): Promise<void>;
  readHostFile(host: ClientHost, path: string): Promise<string>;
  writeHostFile(host: ClientHost, path: string, text: string): Promise<void>;
}

/** Small durable facts a runbook keeps between jobs (HA breaker counts). Redis in production (src/engine/state.ts). */
export interface StateStore {
  get(key: string): Promise<string | null>;
  set(key: string, value: string): Promise<void>;
  /** Add 1 and return the new value (atomic). */
  incr(key: string): Promise<number>;
  del(key: string): Promise<void>;
}

/** Record kinds the engine writes (the evidence log's own vocabulary, src/evidence/record.ts). */
export type EvidenceKind =
  | "requested"
  | "plan"
  | "command"
  | "reply"
  | "parse"
  | "step"
  | "error"
  | "result"
  | "note"
  | "azure"
  | "guard";

/** The evidence log of one job (src/evidence EvidenceLog satisfies it). */
export interface EvidenceSink {
  /**
   * Record `data` as it is: the sink redacts it (registered secret values, secret-named fields) before it is kept
   * anywhere — EvidenceLog does, through src/evidence/sanitize.ts — so the engine does not walk it a second time.
   */
  append(kind: EvidenceKind, data: unknown, actor?: string): Promise<unknown>;
}

/** Writes one evidence record of the running step (redacted, tagged with the step id). */
export type StepRecorder = (kind: EvidenceKind, data: Record<string, unknown>) => Promise<void>;

/** Daemon-side network probes (src/net/probe.ts). */
export interface NetProbes {
  tcp(host: string, port: number, timeoutMs: number): Promise<TcpProbeResult>;
  tls(host: string, port: number, opts: TlsProbeOptions): Promise<TlsProbeResult>;
}

/** Structured logging; pino loggers satisfy it. */
export interface JobLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

/** The ARM operations a step may use (src/azure DedicatedHsmGateway satisfies it). */
export type AzurePort = Pick<
  DedicatedHsmGateway,
  | "getHsm"
  | "deleteHsm"
  | "verifyHsmGone"
  | "listDedicatedHsms"
  | "resourceGroupHoldsDedicatedHsms"
  | "resourceGroupContents"
  | "deleteResourceGroup"
>;

/** Approvals of the job (src/coord/approvals.ts approvalsPort satisfies it); the context binds the job id. */
export interface ApprovalsPort {
  request(jobId: string, req: ApprovalRequest): Promise<ApprovalState>;
  state(jobId: string): Promise<ApprovalState | null>;
}

/**
 * The login guard for one job (src/guard jobGuard() satisfies it): the only way a step may log in. It reads the
 * device's own counter, applies the budget, records the attempt before the password is sent and never retries.
 * Partition roles (partitionSo, co, cu) need { partition }; the login lives in the job's session it was made in.
 */
export interface GuardPort {
  login(
    device: string,
    role: GuardRole,
    opts?: { partition?: string; clientHost?: string },
  ): Promise<LoginResult>;
  /**
   * The sanctioned zeroize of a deprovision job (src/guard sanctioned-zeroize.ts): the guard reads the job's
   * approvals and typed confirmation from the approvals store itself, checks them again, and zeroizes.
   */
  sanctionedZeroize?(device: string): Promise<SanctionedZeroizeResult>;
}
