// The one exception to "the LAST-attempt caution is never answered": the sanctioned zeroize of a device being
// deprovisioned (src/guard/sanctioned-zeroize.ts), which must fail the third HSM SO login on purpose. The issuer can
// be claimed ONCE per process; sanctioned-zeroize.ts claims it when it is loaded, so any other module that tries
// (or a second copy) throws, and the grep test keeps every other import of this file out of src/.
// An exception is bound to one device (session target), one deprovision job, and is spent by the one answer it
// authorizes. It is honoured only for `hsm login` sent with a LoginToken (see session.ts).

const ISSUER: unique symbol = Symbol("last-attempt-exception-issuer");
let claimed = false;

export interface LastAttemptExceptionGrant {
  /** Device name (the lunash session's target). */
  target: string;
  /** The deprovision job that holds the approvals; echoed in transcripts. */
  jobId: string;
}

class LastAttemptExceptionUsedError extends Error {
  override name = "LastAttemptExceptionUsedError";
}

export class LastAttemptException {
  readonly target: string;
  readonly jobId: string;
  #used = false;

  constructor(issuer: typeof ISSUER, grant: LastAttemptExceptionGrant) {
    if (issuer !== ISSUER)
      throw new TypeError("LastAttemptException is issued only to the sanctioned zeroize");
    this.target = grant.target;
    this.jobId = grant.jobId;
  }

  get used(): boolean {
    return this.#used;
  }

  /** Spend it on the one `proceed` it authorizes; throws on a second call. */
  consume(): void {
    if (this.#used)
      throw new LastAttemptExceptionUsedError(`last-attempt exception of ${this.jobId} was already used`);
    this.#used = true;
  }

  toJSON(): { target: string; jobId: string; used: boolean } {
    return { target: this.target, jobId: this.jobId, used: this.#used };
  }
}

class IssuerAlreadyClaimedError extends Error {
  override name = "IssuerAlreadyClaimedError";
}

/** For src/guard/sanctioned-zeroize.ts only: hands out the issuer once per process. */
export function claimLastAttemptExceptionIssuer(): (
  grant: LastAttemptExceptionGrant,
) => LastAttemptException {
  if (claimed)
    throw new IssuerAlreadyClaimedError(
      "the last-attempt exception issuer was already claimed (only the sanctioned zeroize may hold it)",
    );
  claimed = true;
  return (grant) => new LastAttemptException(ISSUER, grant);
}
