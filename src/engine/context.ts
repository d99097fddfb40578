// What a step sees. Runbooks reach devices, hosts, probes and evidence only through this context: it checks that a
// device belongs to the job's (locked) targets, records every command, reply and parse as evidence (redacted), and
// fails closed on device errors and on parsed replies that lack what the step relies on.
import { createHash } from "node:crypto";
import type { z } from "zod";
import type { DedicatedHsmGateway } from "../azure/dedicated-hsm.ts";
import { clientHostSecret, getClientHost, getDevice } from "../config/model.ts";
import type { ClientHost, Device, Fleet } from "../config/schema.ts";
import { redact } from "../config/secret.ts";
import type { ApprovalRequest, ApprovalState } from "../coord/approvals.ts";
import type { TcpProbeResult, TlsProbeOptions, TlsProbeResult } from "../net/probe.ts";
import { type ApprovalWaitOptions, type JobLocksPort, waitForApproval } from "./approval-wait.ts";
import {
  CapabilityUnavailable,
  describeError,
  JobCancelled,
  MissingCheckpoint,
  TargetNotLocked,
  UnexpectedResult,
} from "./errors.ts";
import { type Json, toRedactedJson } from "./json.ts";
import type { JobTargets } from "./runbook.ts";

// ---- Ports: the narrow shapes the engine needs from other modules (they satisfy them structurally). ----

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
 * A reply from the shell driver: what was sent, the raw (redacted) text, and the result: `{ ok: true, value }` or
 * `{ ok: false, error }` (src/shell), or directly a value or an Error. The context unwraps all three forms.
 */
export interface ShellReply {
  command: string;
  raw: string;
  result: unknown;
}

/** An open lunash, lunacm or client-host shell session (src/shell). */
export interface DeviceShell {
  run(command: string, opts?: CommandOptions): Promise<ShellReply>;
  /** false once the shell is done (lost, aborted, or out of step after an unreadable reply): open a new one. */
  readonly usable?: boolean;
}

/** Opens (or lends from a pool) the sessions of one job. */
export interface SessionProvider {
  lunash(device: Device): Promise<DeviceShell>;
  lunacm(host: ClientHost): Promise<DeviceShell>;
  /** The client host's OS shell, where the `vtl` tool runs (replies to vtl commands come back parsed). */
  clientShell(host: ClientHost): Promise<DeviceShell>;
  /** Certificate files: an appliance's scp area over sftp, a client host's certificate directories. */
  files?: FileTransport;
}

/**
 * Moving certificate files (public material only: server.pem, client certificates). Appliance names are plain names
 * in its scp area; client-host paths are absolute and limited by the provider to the Luna certificate directories
 * and /tmp. Private keys are never read or written through this port.
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
  append(kind: EvidenceKind, data: unknown, actor?: string): Promise<unknown>;
}

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
  | "deleteResourceGroup"
>;
export type { ApprovalRequest, ApprovalState };
/** Approvals of the job (src/coord/approvals.ts approvalsPort satisfies it); the context binds the job id. */
export interface ApprovalsPort {
  request(jobId: string, req: ApprovalRequest): Promise<ApprovalState>;
  state(jobId: string): Promise<ApprovalState | null>;
}
/**
 * The login guard for one job (src/guard jobGuard() satisfies it): the only way a step may log in. It reads the
 * device's own counter, applies the budget, records the attempt before the password is sent and never retries.
 * Roles: "hsmSo" | "partitionSo" | "co" | "cu" | "auditor"; partition roles need { partition }.
 */
export interface GuardPort {
  login(device: string, role: string, opts?: { partition?: string; clientHost?: string }): Promise<unknown>;
  /**
   * The sanctioned zeroize of a deprovision job (src/guard sanctioned-zeroize.ts): the guard reads the job's
   * approvals and typed confirmation from the approvals store itself, checks them again, and zeroizes.
   */
  sanctionedZeroize?(device: string): Promise<unknown>;
}

// ---- What runbooks call. ----

/** A session as a step sees it: every command is recorded, device errors throw. */
export interface StepShell {
  /** Send one command; throws the typed error when the device refused or the reply could not be parsed. */
  run(command: string, opts?: CommandOptions): Promise<ShellReply>;
  /** Send a read command and check the parsed value carries the fields `schema` describes (fail closed). */
  read<T>(command: string, schema: z.ZodType<T>, opts?: CommandOptions): Promise<T>;
}

/** A TLS handshake to an appliance's NTLS port presenting a client host's certificate (as that client would). */
export interface ClientHandshakeOptions {
  /** The client's certificate (PEM), as read from the client host; the matching key comes from the fleet file. */
  clientCertPem: string;
  timeoutMs: number;
}

export interface StepFiles {
  /** Fetch a file from a device's scp area over sftp (e.g. `server.pem`). */
  applianceGet(device: string, name: string): Promise<string>;
  /** Upload a file to a device's scp area (e.g. `<client>.pem` before `client register`). */
  appliancePut(device: string, name: string, text: string): Promise<void>;
  /** Read a client host's certificate file (absolute path). */
  hostRead(host: string, path: string): Promise<string>;
  /** Write a client host's file (a server certificate staged for `vtl addServer`). */
  hostWrite(host: string, path: string, text: string): Promise<void>;
}

export interface StepContext<P = unknown> {
  readonly params: P;
  readonly fleet: Fleet;
  readonly jobId: string;
  /** Expanded id of the running step (`hsm-show:hsm-a1`). */
  readonly stepId: string;
  /** The device or client host of a forEach step. */
  readonly target: string | undefined;
  readonly targets: JobTargets;
  readonly signal: AbortSignal;
  lunash(device: string): Promise<StepShell>;
  lunacm(host: string): Promise<StepShell>;
  /** The OS shell of a client host: `vtl verify`, `vtl listServers` (the command policy allows vtl and lunacm only). */
  clientShell(host: string): Promise<StepShell>;
  readonly tcp: NetProbes & {
    /**
     * TLS handshake to `device`'s NTLS port presenting `host`'s client certificate, with the key the fleet file
     * holds for it (`clientHosts[].credentials.ntlsKey`). The key never reaches the step or the evidence.
     */
    tlsAsClient(device: string, host: string, opts: ClientHandshakeOptions): Promise<TlsProbeResult>;
  };
  /** Certificate files on devices and client hosts (recorded as evidence by size and SHA-256). */
  readonly files: StepFiles;
  /** Durable key-value facts across jobs (e.g. the HA breaker); keys are namespaced by the store. */
  readonly state: StateStore;
  /** Put something on the job's record (a decision, an operator-facing finding); redacted, tagged with the step. */
  readonly evidence: { note(data: unknown): Promise<void> };
  /** The result of a finished step of this job (also one finished before a resume); undefined if not finished. */
  checkpoint(stepId: string, target?: string): Json | undefined;
  /** Like checkpoint(), but a missing result is an error: use for steps that must have run first. */
  requireCheckpoint(stepId: string, target?: string): Json;
  readonly log: JobLogger;
  /** ARM, recorded: every call is an `azure` evidence record; deletes check the job's locks and signal first. */
  readonly azure: AzurePort;
  readonly guard: GuardPort;
  /** This job's approvals: ask (idempotent) and read; operators approve through `lunafleet approve`. */
  readonly approvals: {
    request(req: ApprovalRequest): Promise<ApprovalState>;
    state(): Promise<ApprovalState | null>;
    /**
     * Ask and wait in `awaiting-approval` until approved (resolves), rejected/expired/withdrawn (ApprovalNotGranted)
     * or cancelled, holding only the locks of the devices it will change (src/engine/approval-wait.ts).
     */
    waitFor(req: ApprovalRequest, opts?: ApprovalWaitOptions): Promise<ApprovalState>;
  };
}

export interface ContextDeps<P> {
  params: P;
  fleet: Fleet;
  jobId: string;
  targets: JobTargets;
  signal: AbortSignal;
  /** Throws when the job no longer holds its device locks (DeviceLockSet.throwIfLost); checked before every command. */
  assertLocked: () => void;
  evidence: EvidenceSink;
  actor?: string;
  probes: NetProbes;
  log: JobLogger;
  /** Results of finished steps by expanded id; the runner adds to it as steps finish. */
  results: ReadonlyMap<string, Json>;
  azure?: AzurePort;
  guard?: GuardPort;
  approvals?: ApprovalsPort;
  /** The job's runbook name and admitted plan digest (engine/admit.ts), recorded with approval requests. */
  runbook?: string;
  planDigest?: string;
  /** The job's locks (narrowed while it waits for approvals); absent = the wait keeps every lock. */
  locks?: JobLocksPort;
  /** How often a job waiting for approvals re-reads them (default 1 s). */
  approvalPollMs?: number;
  state?: StateStore;
}

/** Sessions are opened at most once per job and target, and shared by its steps. */
export class SessionCache {
  readonly #lunash = new Map<string, Promise<DeviceShell>>();
  readonly #lunacm = new Map<string, Promise<DeviceShell>>();
  readonly #host = new Map<string, Promise<DeviceShell>>();
  constructor(private readonly provider: SessionProvider) {}

  lunash(device: Device): Promise<DeviceShell> {
    return memo(this.#lunash, device.name, () => this.provider.lunash(device));
  }
  lunacm(host: ClientHost): Promise<DeviceShell> {
    return memo(this.#lunacm, host.name, () => this.provider.lunacm(host));
  }
  clientShell(host: ClientHost): Promise<DeviceShell> {
    return memo(this.#host, host.name, () => this.provider.clientShell(host));
  }
  get files(): FileTransport | undefined {
    return this.provider.files;
  }
}

async function memo(
  map: Map<string, Promise<DeviceShell>>,
  key: string,
  open: () => Promise<DeviceShell>,
): Promise<DeviceShell> {
  const cached = map.get(key);
  if (cached) {
    const shell = await cached.catch(() => undefined);
    // A shell that is done (e.g. abandoned after an unreadable reply) is never lent again: the next step gets a
    // fresh one, with nothing carried over (no login survives: the guard logs in again where a step needs it).
    if (shell && shell.usable !== false) return shell;
    if (map.get(key) === cached) map.delete(key);
    else return memo(map, key, open);
  }
  const p = open();
  // A failed open is not cached: the error ends the step, and a later step may try again.
  p.catch(() => {
    if (map.get(key) === p) map.delete(key);
  });
  map.set(key, p);
  return p;
}

export function createStepContext<P>(
  deps: ContextDeps<P>,
  step: { id: string; target?: string },
  sessions: SessionCache,
): StepContext<P> {
  const record = async (kind: EvidenceKind, data: Record<string, unknown>) => {
    await deps.evidence.append(kind, toRedactedJson({ step: step.id, ...data }), deps.actor);
  };
  const checkHost = (name: string) => {
    if (!deps.targets.clientHosts.includes(name))
      throw new TargetNotLocked(
        `step '${step.id}' reached for client host '${name}', which is not among the job's targets (${deps.targets.clientHosts.join(", ") || "none"})`,
      );
    return name;
  };
  const checkpoint = (stepId: string, target?: string) =>
    deps.results.get(target === undefined ? stepId : `${stepId}:${target}`);
  const checkDevice = (name: string) => {
    if (!deps.targets.devices.includes(name))
      throw new TargetNotLocked(
        `step '${step.id}' reached for device '${name}', which is not among the job's targets (${deps.targets.devices.join(", ") || "none"})`,
      );
    return name;
  };
  const fileTransport = (): FileTransport => {
    if (!sessions.files)
      throw new CapabilityUnavailable(`step '${step.id}': this engine's session provider moves no files`);
    return sessions.files;
  };
  const beforeSend = (what: string) => {
    if (deps.signal.aborted) throw new JobCancelled(`job cancelled before ${what}`);
    deps.assertLocked();
  };
  /** A file transfer with command/parse/error evidence; contents are described (size, SHA-256), never stored. */
  const transfer = async <T>(
    via: "sftp" | "host",
    on: string,
    command: string,
    act: () => Promise<T>,
    describe: (value: T) => Record<string, unknown>,
  ): Promise<T> => {
    beforeSend(`'${command}' on ${on}`);
    await record("command", { via, on, command });
    try {
      const value = await act();
      await record("parse", { via, on, command, result: describe(value) });
      return value;
    } catch (err) {
      await record("error", { via, on, command, error: describeError(err) });
      throw err;
    }
  };
  const digest = (text: string) => ({
    bytes: Buffer.byteLength(text),
    sha256: createHash("sha256").update(text).digest("hex"),
  });

  const ctx: StepContext<P> = {
    params: deps.params,
    fleet: deps.fleet,
    jobId: deps.jobId,
    stepId: step.id,
    target: step.target,
    targets: deps.targets,
    signal: deps.signal,
    async lunash(name) {
      checkDevice(name);
      const shell = await sessions.lunash(getDevice(deps.fleet, name));
      return recordedShell(shell, "lunash", name, record, deps);
    },
    async lunacm(name) {
      const shell = await sessions.lunacm(getClientHost(deps.fleet, checkHost(name)));
      return recordedShell(shell, "lunacm", name, record, deps);
    },
    async clientShell(name) {
      const shell = await sessions.clientShell(getClientHost(deps.fleet, checkHost(name)));
      return recordedShell(shell, "host", name, record, deps);
    },
    tcp: {
      async tcp(host, port, timeoutMs) {
        const on = `${host}:${port}`;
        deps.assertLocked();
        await record("command", { via: "tcp", on, command: "connect" });
        const result = await deps.probes.tcp(host, port, timeoutMs);
        await record("parse", { via: "tcp", on, command: "connect", result });
        return result;
      },
      async tls(host, port, opts) {
        // Options may carry a client key: record only where we went, never what we presented.
        const on = `${host}:${port}`;
        await record("command", { via: "tls", on, command: "handshake" });
        const result = await deps.probes.tls(host, port, opts);
        await record("parse", { via: "tls", on, command: "handshake", result });
        return result;
      },
      async tlsAsClient(deviceName, hostName, opts) {
        const device = getDevice(deps.fleet, checkDevice(deviceName));
        const host = getClientHost(deps.fleet, checkHost(hostName));
        const key = clientHostSecret(deps.fleet, host, "ntlsKey");
        if (!key)
          throw new CapabilityUnavailable(
            `step '${step.id}': no clientHosts.${host.name}.credentials.ntlsKey in the fleet file; a handshake as ${host.name} needs its NTLS client key`,
          );
        const on = `${device.host}:${device.ntlsPort}`;
        const command = `handshake as client ${host.clientName ?? host.name}`;
        beforeSend(`the TLS handshake to ${on}`);
        await record("command", { via: "tls", on, command });
        const result = await deps.probes.tls(device.host, device.ntlsPort, {
          timeoutMs: opts.timeoutMs,
          clientCert: opts.clientCertPem,
          clientKey: key.reveal(),
          awaitClientCertVerdict: true,
        });
        await record("parse", { via: "tls", on, command, result });
        return result;
      },
    },
    files: {
      applianceGet: (deviceName, name) =>
        transfer(
          "sftp",
          checkDevice(deviceName),
          `get ${name}`,
          () => fileTransport().readApplianceFile(getDevice(deps.fleet, deviceName), name),
          digest,
        ),
      appliancePut: (deviceName, name, text) =>
        transfer(
          "sftp",
          checkDevice(deviceName),
          `put ${name}`,
          () => fileTransport().writeApplianceFile(getDevice(deps.fleet, deviceName), name, text),
          () => ({ written: digest(text) }),
        ),
      hostRead: (hostName, path) =>
        transfer(
          "host",
          checkHost(hostName),
          `cat ${path}`,
          () => fileTransport().readHostFile(getClientHost(deps.fleet, hostName), path),
          digest,
        ),
      hostWrite: (hostName, path, text) =>
        transfer(
          "host",
          checkHost(hostName),
          `write ${path}`,
          () => fileTransport().writeHostFile(getClientHost(deps.fleet, hostName), path, text),
          () => ({ written: digest(text) }),
        ),
    },
    get state(): StateStore {
      if (!deps.state)
        throw new CapabilityUnavailable(`step '${step.id}': ctx.state is not wired into this engine`);
      return deps.state;
    },
    evidence: {
      note: (data) => record("note", { data }),
    },
    checkpoint,
    requireCheckpoint(stepId, target) {
      const r = checkpoint(stepId, target);
      if (r === undefined)
        throw new MissingCheckpoint(
          `step '${step.id}' needs the result of '${target === undefined ? stepId : `${stepId}:${target}`}', which has not finished`,
        );
      return r;
    },
    log: deps.log,
    get azure(): AzurePort {
      if (!deps.azure)
        throw new CapabilityUnavailable(`step '${step.id}': ctx.azure is not wired into this engine`);
      return recordedAzure(deps.azure, record, deps);
    },
    get approvals() {
      const port = deps.approvals;
      if (!port)
        throw new CapabilityUnavailable(`step '${step.id}': ctx.approvals is not wired into this engine`);
      // The job's runbook and plan digest go with every request: they are part of what an approver approves.
      const request = (req: ApprovalRequest) =>
        port.request(deps.jobId, {
          ...(deps.runbook ? { runbook: deps.runbook } : {}),
          ...(deps.planDigest ? { planDigest: deps.planDigest } : {}),
          ...req,
        });
      const state = () => port.state(deps.jobId);
      return {
        request,
        state,
        waitFor: (req: ApprovalRequest, opts?: ApprovalWaitOptions) =>
          waitForApproval(
            {
              jobId: deps.jobId,
              request,
              state,
              note: (data) => record("note", { data }),
              log: deps.log,
              signal: deps.signal,
              ...(deps.locks ? { locks: deps.locks } : {}),
              pollMs: deps.approvalPollMs ?? 1_000,
            },
            req,
            opts,
          ),
      };
    },
    get guard(): GuardPort {
      const guard = deps.guard;
      if (!guard)
        throw new CapabilityUnavailable(`step '${step.id}': ctx.guard is not wired into this engine`);
      return {
        async login(device, role, opts) {
          // Only a device the job locked: the guard's fence check is against the job's own device lock.
          if (!deps.targets.devices.includes(device))
            throw new TargetNotLocked(
              `step '${step.id}' asked the guard to log in to '${device}', which is not among the job's targets (${deps.targets.devices.join(", ") || "none"})`,
            );
          deps.assertLocked();
          return guard.login(device, role, opts);
        },
        async sanctionedZeroize(device) {
          if (!deps.targets.devices.includes(device))
            throw new TargetNotLocked(
              `step '${step.id}' asked for the sanctioned zeroize of '${device}', which is not among the job's targets`,
            );
          if (deps.signal.aborted) throw new JobCancelled(`job cancelled before the zeroize of ${device}`);
          deps.assertLocked();
          if (!guard.sanctionedZeroize)
            throw new CapabilityUnavailable(
              `step '${step.id}': this engine's guard offers no sanctioned zeroize; nothing was sent`,
            );
          return guard.sanctionedZeroize(device);
        },
      };
    },
  };
  return ctx;
}

type Recorder = (kind: EvidenceKind, data: Record<string, unknown>) => Promise<void>;

/** The value of a reply's result, or the typed error it carries (thrown). */
function unwrapResult(result: unknown): { value: unknown } | { error: Error } {
  if (result instanceof Error) return { error: result };
  if (typeof result === "object" && result !== null && typeof (result as { ok?: unknown }).ok === "boolean") {
    const r = result as { ok: boolean; value?: unknown; error?: unknown };
    if (r.ok) return { value: r.value };
    return {
      error:
        r.error instanceof Error
          ? r.error
          : new UnexpectedResult(`device reported an error: ${String(r.error)}`),
    };
  }
  return { value: result };
}

function recordedShell(
  shell: DeviceShell,
  via: "lunash" | "lunacm" | "host",
  on: string,
  record: Recorder,
  deps: { signal: AbortSignal; assertLocked: () => void },
): StepShell {
  const run = async (command: string, opts?: CommandOptions): Promise<ShellReply> => {
    if (deps.signal.aborted)
      throw new JobCancelled(`job cancelled before '${redact(command)}' was sent to ${on}`);
    // A job that lost a device lock must not send another command: someone else may hold the device now.
    deps.assertLocked();
    await record("command", { via, on, command });
    let reply: ShellReply;
    try {
      reply = await shell.run(command, opts);
    } catch (err) {
      await record("error", { via, on, command, error: describeError(err) });
      throw err;
    }
    await record("reply", { via, on, command, raw: reply.raw });
    const outcome = unwrapResult(reply.result);
    if ("error" in outcome) {
      await record("parse", { via, on, command, error: describeError(outcome.error) });
      throw outcome.error;
    }
    await record("parse", { via, on, command, result: outcome.value });
    return { command: reply.command, raw: reply.raw, result: outcome.value };
  };
  return {
    run,
    async read(command, schema, opts) {
      const reply = await run(command, opts);
      const checked = schema.safeParse(reply.result);
      if (!checked.success) {
        const fields = checked.error.issues.map((i) => i.path.join(".") || "(value)").join(", ");
        throw Object.assign(
          new UnexpectedResult(`${on}: '${command}' parsed without the expected fields (${fields})`),
          via === "lunash" ? { device: on, command } : { host: on, command },
        );
      }
      return checked.data;
    },
  };
}

/**
 * ARM calls as a step makes them: each is recorded (`azure` records: what was asked, then the outcome or the error);
 * a delete is refused when the job is cancelled or no longer holds its device locks.
 */
function recordedAzure(
  azure: AzurePort,
  record: Recorder,
  deps: { signal: AbortSignal; assertLocked: () => void },
): AzurePort {
  const call = async <T>(
    operation: string,
    on: string,
    change: boolean,
    fn: () => Promise<T>,
  ): Promise<T> => {
    if (change) {
      if (deps.signal.aborted) throw new JobCancelled(`job cancelled before ${operation} ${on}`);
      deps.assertLocked();
    }
    await record("azure", { via: "azure", on, operation, event: "request" });
    try {
      const result = await fn();
      await record("azure", { via: "azure", on, operation, event: "result", result: result ?? null });
      return result;
    } catch (err) {
      await record("azure", { via: "azure", on, operation, event: "error", error: describeError(err) });
      throw err;
    }
  };
  return {
    getHsm: (id, o) => call("get-hsm", id, false, () => azure.getHsm(id, o)),
    deleteHsm: (id, o) => call("delete-hsm", id, true, () => azure.deleteHsm(id, o)),
    verifyHsmGone: (id, o) => call("verify-hsm-gone", id, false, () => azure.verifyHsmGone(id, o)),
    listDedicatedHsms: (rg, o) => call("list-hsms", rg, false, () => azure.listDedicatedHsms(rg, o)),
    resourceGroupHoldsDedicatedHsms: (rg, o) =>
      call("resource-group-holds-hsms", rg, false, () => azure.resourceGroupHoldsDedicatedHsms(rg, o)),
    deleteResourceGroup: (rg, o) =>
      call("delete-resource-group", rg, true, () => azure.deleteResourceGroup(rg, o)),
  };
}
