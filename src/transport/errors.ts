// Typed failures of talking to a device. Every error names the target (device or client host), the command (when
// there was one) and the cause, and says whether a retry policy may touch it (Temporal's non-retryable types): a
// host-key mismatch, a failed appliance login, an unexpected prompt or a refused command must never be retried
// automatically, because repeating them either hides an attack or spends a login attempt.
// Messages pass through redact(): a secret that leaked into a device's reply never leaves through an error.
import { redact } from "../config/secret.ts";

export type OpErrorKind =
  | "HostKeyMismatch"
  | "ConnectTimeout"
  | "AuthFailed"
  | "CommandTimeout"
  | "ConnectionLost"
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
  /** Override of the kind's default retry flag (e.g. a lost connection during a login is never retryable). */
  retryable?: boolean;
}

/** Base of every transport/shell failure. `kind` is stable and safe to store in job data. */
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

/** A command did not come back to the prompt in time; its outcome is unknown. */
export class CommandTimeout extends DeviceOpError {
  override name = "CommandTimeout";
  readonly kind = "CommandTimeout" as const;
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

/** The device asked something the step did not expect (unknown prompt, undeclared confirmation, LAST caution). */
export class UnexpectedPrompt extends DeviceOpError {
  override name = "UnexpectedPrompt";
  readonly kind = "UnexpectedPrompt" as const;
  constructor(
    init: OpErrorInit,
    /** The tail of the output that held the prompt (redacted, at most a few lines). */
    readonly prompt: string,
  ) {
    super(init, false);
  }
}

/** The command policy refused to send the command; nothing reached the device. */
export class CommandRefused extends DeviceOpError {
  override name = "CommandRefused";
  readonly kind = "CommandRefused" as const;
  constructor(
    init: Omit<OpErrorInit, "cause">,
    readonly rule: string,
    readonly ruleReason: string,
  ) {
    super({ ...init, cause: `refused by command policy rule '${rule}': ${ruleReason}` }, false);
  }
}

/** The device answered with an error (`Error:` block, non-zero `Command Result`). */
export class DeviceError extends DeviceOpError {
  override name = "DeviceError";
  readonly kind = "DeviceError" as const;
  constructor(
    init: Omit<OpErrorInit, "cause">,
    /** Luna return code as printed (`A00000`, `0xa0`), or the `Command Result` number when no code was printed. */
    readonly code: string,
    /** Symbolic name (`LUNA_RET_UM_PIN_INCORRECT`) or the footer text. */
    readonly errorName: string,
    readonly deviceMessage: string,
  ) {
    super({ ...init, cause: `device error ${code} (${errorName}): ${deviceMessage}` }, false);
  }
}

/** The output could not be understood; never guessed at. `raw` is redacted. */
export class ParseFailed extends DeviceOpError {
  override name = "ParseFailed";
  readonly kind = "ParseFailed" as const;
  readonly raw: string;
  constructor(init: OpErrorInit, raw: string) {
    super(init, false);
    this.raw = redact(raw);
  }
}
