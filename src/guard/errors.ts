// The guard's failures. None is ever retried automatically (each is NonRetryable): a retry around a login is exactly the loop that zeroizes a device. A job that ends with one of
// these stops; an operator reads the reason, fixes the cause and releases the quarantine.
import { redact } from "../config/secret.ts";
import { NonRetryable } from "../errors/non-retryable.ts";

interface GuardErrorInit {
  device: string;
  partition?: string | undefined;
  role: string;
  reason: string;
}

abstract class GuardError extends NonRetryable {
  readonly device: string;
  readonly partition: string | undefined;
  readonly role: string;
  readonly reason: string;

  constructor(init: GuardErrorInit, what: string) {
    const where = `${init.device}${init.partition ? `/${init.partition}` : ""} ${init.role}`;
    super(redact(`${where}: ${what}: ${init.reason}`));
    this.device = init.device;
    this.partition = init.partition;
    this.role = init.role;
    this.reason = redact(init.reason);
  }

  toJSON(): Record<string, unknown> {
    return {
      type: this.name,
      device: this.device,
      ...(this.partition ? { partition: this.partition } : {}),
      role: this.role,
      reason: this.reason,
      retryable: false,
    };
  }
}

/** The guard did not send the login: budget, quarantine, unreadable counter, lock not held, wrong session. */
export class GuardRefused extends GuardError {
  override name = "GuardRefused";
  constructor(init: GuardErrorInit) {
    super(init, "login refused by the guard");
  }
}

/**
 * The login was sent and did not succeed (wrong credential, or an unknown outcome: timeout, dropped connection,
 * unparsed reply). The ledger counted it as a failure and quarantined the credential.
 */
export class LoginFailed extends GuardError {
  override name = "LoginFailed";
  readonly outcome: "wrong" | "unknown";
  /** Kind of the underlying transport/shell error when the outcome is unknown (CommandTimeout, ConnectionLost…). */
  readonly underlying: string | undefined;

  constructor(init: GuardErrorInit & { outcome: "wrong" | "unknown"; underlying?: string | undefined }) {
    super(
      init,
      init.outcome === "wrong" ? "wrong credential" : "login outcome unknown (counted as a failure)",
    );
    this.outcome = init.outcome;
    this.underlying = init.underlying;
  }
}

/** The sanctioned zeroize refused to start (approvals, confirmation, job id, identity) or could not verify. */
export class SanctionedZeroizeRefused extends GuardError {
  override name = "SanctionedZeroizeRefused";
  constructor(init: Omit<GuardErrorInit, "role">) {
    super({ ...init, role: "hsmSo" }, "sanctioned zeroize refused");
  }
}

/** The sanctioned zeroize ran but the device does not report itself zeroized. */
export class ZeroizeNotVerified extends GuardError {
  override name = "ZeroizeNotVerified";
  constructor(init: Omit<GuardErrorInit, "role">) {
    super({ ...init, role: "hsmSo" }, "zeroize not verified");
  }
}

/** The login ran but its outcome could not be written to the ledger (Redis gone): the pending attempt stays and
 * counts as a failure when resolved. Never retried. */
export class LedgerUnavailable extends GuardError {
  override name = "LedgerUnavailable";
  constructor(init: GuardErrorInit) {
    super(init, "ledger unavailable");
  }
}
