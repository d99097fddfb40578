// Typed failures of reaching a device: the base every device-operation error extends (DeviceOpError: target,
// command, cause, redacted) and the connection-level ones. The errors of talking through a shell (a refused command,
// an unexpected prompt, a timeout, a device error, an unreadable reply) live with the shell (src/shell/errors.ts).
// A host-key mismatch or a refused appliance login is never retried (NonRetryable): repeating them either hides an
// attack or spends a login attempt. Messages pass through redact(): a secret that leaked into a device's reply never
// leaves through an error.
import { redact } from "../config/secret.ts";
import { markNonRetryable } from "../errors/non-retryable.ts";

export type OpErrorKind =
  | "HostKeyMismatch"
  | "ConnectTimeout"
  | "AuthFailed"
  | "ConnectionLost"
  | "SftpStatus"
  // Shell-level kinds (src/shell/errors.ts).
  | "CommandTimeout"
  | "UnexpectedPrompt"
  | "CommandRefused"
  | "DeviceError"
  | "ParseFailed";

export interface OpErrorInit {
  /** Device or client-host name from the fleet file. */
  target: string;
  /** The command being run (as typed), or undefined for connection-level failures. */
  command?: string | undefined;
  /** Why, in words an operator can act on. */
  cause: string;
  /** Override of the kind's default (e.g. a lost connection during a login is never retryable). */
  retryable?: boolean;
}

/**
 * Base of every transport/shell failure. `kind` is stable and safe to store in job data. `retryable` is the fact the
 * pool reconnects on; an instance that is not retryable is also NonRetryable (src/errors), which is what the queue asks.
 */
export abstract class DeviceOpError extends Error {
  abstract readonly kind: OpErrorKind;
  readonly target: string;
  readonly command: string | undefined;
  readonly reason: string;
  readonly retryable: boolean;

  constructor(init: OpErrorInit, defaultRetryable: boolean) {
    const what = init.command === undefined ? "" : ` '${redact(init.command)}'`;
    super(redact(`${init.target}${what}: ${init.cause}`));
    this.target = init.target;
    this.command = init.command === undefined ? undefined : redact(init.command);
    this.reason = redact(init.cause);
    this.retryable = init.retryable ?? defaultRetryable;
    if (!this.retryable) markNonRetryable(this);
  }

  /** `device` is the name the rest of lunafleet uses; a client host is a target too. */
  get device(): string {
    return this.target;
  }

  toJSON(): { kind: OpErrorKind; target: string; command?: string; reason: string; retryable: boolean } {
    return {
      kind: this.kind,
      target: this.target,
      ...(this.command === undefined ? {} : { command: this.command }),
      reason: this.reason,
      retryable: this.retryable,
    };
  }
}

/** The server's host key is not the pinned one (or none is pinned). Refused before any credential is sent. */
export class HostKeyMismatch extends DeviceOpError {
  override name = "HostKeyMismatch";
  readonly kind = "HostKeyMismatch" as const;
  constructor(
    target: string,
    readonly expected: string | undefined,
    readonly received: string,
  ) {
    super(
      {
        target,
        cause:
          expected === undefined
            ? `no pinned host key (received ${received}); pin it with 'lunafleet fleet trust ${target}' or hostKey: in the fleet file`
            : `host key mismatch: expected ${expected}, received ${received}`,
      },
      false,
    );
  }
}

/** TCP connect or the SSH handshake did not finish in time (nothing was authenticated). */
export class ConnectTimeout extends DeviceOpError {
  override name = "ConnectTimeout";
  readonly kind = "ConnectTimeout" as const;
  constructor(init: OpErrorInit) {
    super(init, true);
  }
}

/** The appliance/host account was refused, or authentication did not finish in time. Never retried. */
export class AuthFailed extends DeviceOpError {
  override name = "AuthFailed";
  readonly kind = "AuthFailed" as const;
  constructor(init: OpErrorInit) {
    super(init, false);
  }
}

/** The connection or the shell went away (before or during a command). */
export class ConnectionLost extends DeviceOpError {
  override name = "ConnectionLost";
  readonly kind = "ConnectionLost" as const;
  constructor(init: OpErrorInit) {
    super(init, true);
  }
}

/** The sftp server answered a file operation with a status (no such file, permission denied): its answer, not a lost line. */
export class SftpStatus extends DeviceOpError {
  override name = "SftpStatus";
  readonly kind = "SftpStatus" as const;
  constructor(
    init: Omit<OpErrorInit, "cause">,
    /** The SSH_FX status code. */
    readonly code: string,
    message: string,
  ) {
    super({ ...init, cause: `sftp status ${code}: ${message}` }, false);
  }
}
