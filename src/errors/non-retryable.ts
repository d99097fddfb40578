// The root of lunafleet's error taxonomy: errors no retry policy may touch (Temporal's non-retryable types). A retry
// resumes a job after its last checkpoint; for these it would either repeat something dangerous (a wrong credential
// brings a device closer to zeroization; a command whose outcome is unknown might run twice) or cannot change the
// outcome (a host key that does not match, output that cannot be parsed, a command the policy refuses, a device the
// job did not lock). The queue asks one question: `err instanceof NonRetryable`.
//
// Most such errors extend NonRetryable. A class whose base is fixed elsewhere and whose instances differ (a lost
// connection is retryable before a login was sent and never after it) marks the instances that must not be retried
// with markNonRetryable(); `instanceof NonRetryable` answers for both.

const MARK: unique symbol = Symbol.for("lunafleet.nonRetryable");

export class NonRetryable extends Error {
  constructor(message?: string) {
    super(message);
    markNonRetryable(this);
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    // Subclasses inherit this static: for them, `instanceof` keeps its ordinary meaning (their own prototype chain).
    // biome-ignore lint/complexity/noThisInStatic: `this` is the class instanceof was asked about (possibly a subclass)
    if (this !== NonRetryable) return Function.prototype[Symbol.hasInstance].call(this, value);
    return typeof value === "object" && value !== null && (value as { [MARK]?: unknown })[MARK] === true;
  }
}

/** Mark one error as never to be retried (for classes that cannot extend NonRetryable). Returns it. */
export function markNonRetryable<E extends Error>(err: E): E {
  Object.defineProperty(err, MARK, { value: true, enumerable: false });
  return err;
}

/** Whether a retry (resuming after the last checkpoint) may help: never for NonRetryable, never for a non-Error. */
export function isRetryable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  // Unknown error types: transient until proven otherwise. A retry resumes after the last checkpoint and logins are
  // never inside a retry loop (the guard quarantines after any failure), so this cannot repeat a dangerous action.
  return !(err instanceof NonRetryable);
}
