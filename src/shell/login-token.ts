// The one key to a login prompt. Only src/guard imports this module: it issues a token after it has recorded the
// attempt in its write-ahead ledger, and the shell sends a login command (and answers its password prompt) only when
// handed an unused token for that target and command. A token is consumed when the command is sent, so a retry loop
// cannot replay a login by accident; a second use is refused by the command policy before anything is sent.
import type { Secret } from "../config/secret.ts";

/** Only this module can construct tokens: the constructor demands a value no other module can reach. */
const ISSUER: unique symbol = Symbol("login-token-issuer");

export interface LoginTokenGrant {
  /** Device or client-host name the login is for. */
  target: string;
  /** Canonical command the token authorizes, e.g. "hsm login", "role login", "audit login". */
  command: string;
  /** The role, for logs and the transcript (e.g. "hsmSo", "co"). */
  role: string;
  /** The password typed at the prompt. */
  secret: Secret;
  /** Ledger reference from the guard (attempt id), echoed in transcripts; never a secret. */
  attemptId: string;
}

class LoginTokenUsedError extends Error {
  override name = "LoginTokenUsedError";
}

export class LoginToken {
  readonly target: string;
  readonly command: string;
  readonly role: string;
  readonly attemptId: string;
  readonly #secret: Secret;
  #used = false;

  constructor(issuer: typeof ISSUER, grant: LoginTokenGrant) {
    if (issuer !== ISSUER) throw new TypeError("LoginToken can only be issued by the login guard");
    this.target = grant.target;
    this.command = grant.command;
    this.role = grant.role;
    this.attemptId = grant.attemptId;
    this.#secret = grant.secret;
  }

  get used(): boolean {
    return this.#used;
  }

  /** Spend the token; returns the password to type. Throws on a second call. */
  consume(): Secret {
    if (this.#used) throw new LoginTokenUsedError(`login token ${this.attemptId} was already used`);
    this.#used = true;
    return this.#secret;
  }

  toJSON(): { target: string; command: string; role: string; attemptId: string; used: boolean } {
    return {
      target: this.target,
      command: this.command,
      role: this.role,
      attemptId: this.attemptId,
      used: this.#used,
    };
  }
}

/** For src/guard only (see module comment). */
export function issueLoginToken(grant: LoginTokenGrant): LoginToken {
  return new LoginToken(ISSUER, grant);
}

/** Type guard usable anywhere (checking a token is harmless; issuing one is not). */
export function isLoginToken(x: unknown): x is LoginToken {
  return x instanceof LoginToken;
}
