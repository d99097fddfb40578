// Probes and certificate files as a step uses them: each is recorded (`command`, then `parse` or `error`); a file's
// content is described by size and SHA-256, never stored; a handshake records where it went, never what it presented.
import { createHash } from "node:crypto";
import { clientHostSecret, getClientHost, getDevice } from "../config/model.ts";
import type { Fleet } from "../config/schema.ts";
import type { TlsProbeResult } from "../net/probe.ts";
import { hostWriteCommand } from "../shell/job-files.ts";
import { CapabilityUnavailable, describeError, JobCancelled } from "./errors.ts";
import type { FileTransport, NetProbes, StepRecorder } from "./ports.ts";
import type { ShellGate } from "./recorded-shell.ts";

/** A TLS handshake to an appliance's NTLS port presenting a client host's certificate (as that client would). */
export interface ClientHandshakeOptions {
  /** The client's certificate (PEM), as read from the client host; the matching key comes from the fleet file. */
  clientCertPem: string;
  timeoutMs: number;
}

export type StepProbes = NetProbes & {
  /**
   * TLS handshake to `device`'s NTLS port presenting `host`'s client certificate, with the key the fleet file
   * holds for it (`clientHosts[].credentials.ntlsKey`). The key never reaches the step or the evidence.
   */
  tlsAsClient(device: string, host: string, opts: ClientHandshakeOptions): Promise<TlsProbeResult>;
};

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

/** What the step may reach: names checked against the job's locked targets (TargetNotLocked otherwise). */
export interface StepScope extends ShellGate {
  stepId: string;
  fleet: Fleet;
  record: StepRecorder;
  device(name: string): string;
  clientHost(name: string): string;
}

export function recordedProbes(probes: NetProbes, scope: StepScope): StepProbes {
  const { record } = scope;
  return {
    async tcp(host, port, timeoutMs) {
      const on = `${host}:${port}`;
      scope.assertLocked();
      await record("command", { via: "tcp", on, command: "connect" });
      const result = await probes.tcp(host, port, timeoutMs);
      await record("parse", { via: "tcp", on, command: "connect", result });
      return result;
    },
    async tls(host, port, opts) {
      // Options may carry a client key: record only where we went, never what we presented.
      const on = `${host}:${port}`;
      await record("command", { via: "tls", on, command: "handshake" });
      const result = await probes.tls(host, port, opts);
      await record("parse", { via: "tls", on, command: "handshake", result });
      return result;
    },
    async tlsAsClient(deviceName, hostName, opts) {
      const device = getDevice(scope.fleet, scope.device(deviceName));
      const host = getClientHost(scope.fleet, scope.clientHost(hostName));
      const key = clientHostSecret(scope.fleet, host, "ntlsKey");
      if (!key)
        throw new CapabilityUnavailable(
          `step '${scope.stepId}': no clientHosts.${host.name}.credentials.ntlsKey in the fleet file; a handshake as ${host.name} needs its NTLS client key`,
        );
      const on = `${device.host}:${device.ntlsPort}`;
      const command = `handshake as client ${host.clientName ?? host.name}`;
      beforeSend(scope, `the TLS handshake to ${on}`);
      await record("command", { via: "tls", on, command });
      const result = await probes.tls(device.host, device.ntlsPort, {
        timeoutMs: opts.timeoutMs,
        clientCert: opts.clientCertPem,
        clientKey: key.reveal(),
        awaitClientCertVerdict: true,
      });
      await record("parse", { via: "tls", on, command, result });
      return result;
    },
  };
}

export { hostWriteCommand };

export function recordedFiles(files: FileTransport | undefined, scope: StepScope): StepFiles {
  const { fleet } = scope;
  const port = (): FileTransport => {
    if (!files)
      throw new CapabilityUnavailable(`step '${scope.stepId}': this engine was given no file transport`);
    return files;
  };
  /** A file transfer with command/parse/error evidence. */
  const transfer = async <T>(
    via: "sftp" | "host",
    on: string,
    command: string,
    act: () => Promise<T>,
    describe: (value: T) => Record<string, unknown>,
  ): Promise<T> => {
    beforeSend(scope, `'${command}' on ${on}`);
    await scope.record("command", { via, on, command });
    try {
      const value = await act();
      await scope.record("parse", { via, on, command, result: describe(value) });
      return value;
    } catch (err) {
      await scope.record("error", { via, on, command, error: describeError(err) });
      throw err;
    }
  };
  return {
    applianceGet: (deviceName, name) =>
      transfer(
        "sftp",
        scope.device(deviceName),
        `get ${name}`,
        () => port().readApplianceFile(getDevice(fleet, deviceName), name),
        digest,
      ),
    appliancePut: (deviceName, name, text) =>
      transfer(
        "sftp",
        scope.device(deviceName),
        `put ${name}`,
        () => port().writeApplianceFile(getDevice(fleet, deviceName), name, text),
        () => ({ written: digest(text) }),
      ),
    hostRead: (hostName, path) =>
      transfer(
        "host",
        scope.clientHost(hostName),
        `cat ${path}`,
        () => port().readHostFile(getClientHost(fleet, hostName), path),
        digest,
      ),
    hostWrite: (hostName, path, text) =>
      transfer(
        "host",
        scope.clientHost(hostName),
        hostWriteCommand(path),
        () => port().writeHostFile(getClientHost(fleet, hostName), path, text),
        () => ({ written: digest(text) }),
      ),
  };
}

function beforeSend(scope: StepScope, what: string): void {
  if (scope.signal.aborted) throw new JobCancelled(`job cancelled before ${what}`);
  scope.assertLocked();
}

function digest(text: string): { bytes: number; sha256: string } {
  return { bytes: Buffer.byteLength(text), sha256: createHash("sha256").update(text).digest("hex") };
}
