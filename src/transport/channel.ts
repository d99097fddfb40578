// The byte pipe a shell driver talks through: an interactive SSH shell channel or a local pty. The driver sees
// only this, so lunash over SSH and lunacm on a local pty run through the same code.

export interface ShellChannel {
  /** Device or client-host name, for errors and transcripts. */
  readonly target: string;
  readonly closed: boolean;
  /** Why the channel closed (set once closed). */
  readonly closeReason: string | undefined;
  write(data: string): void;
  /** Subscribe to output; returns an unsubscribe function. */
  onData(listener: (chunk: string) => void): () => void;
  /** Called once, when the channel closes for any reason. */
  onClose(listener: (reason: string) => void): void;
  /** Close the channel (the device-side session ends). Idempotent. */
  close(): void;
}

/** Shared bookkeeping for ShellChannel implementations. */
export abstract class BaseShellChannel implements ShellChannel {
  #closed = false;
  #closeReason: string | undefined;
  readonly #dataListeners = new Set<(chunk: string) => void>();
  readonly #closeListeners: ((reason: string) => void)[] = [];
  /** Output that arrived before anyone listened (the banner races the driver's subscription). */
  #early: string[] = [];

  constructor(readonly target: string) {}

  get closed(): boolean {
    return this.#closed;
  }

  get closeReason(): string | undefined {
    return this.#closeReason;
  }

  abstract write(data: string): void;
  abstract close(): void;

  onData(listener: (chunk: string) => void): () => void {
    this.#dataListeners.add(listener);
    if (this.#early.length > 0) {
      const early = this.#early.join("");
      this.#early = [];
      listener(early);
    }
    return () => this.#dataListeners.delete(listener);
  }

  onClose(listener: (reason: string) => void): void {
    if (this.#closed) queueMicrotask(() => listener(this.#closeReason ?? "closed"));
    else this.#closeListeners.push(listener);
  }

  protected emitData(chunk: string): void {
    if (this.#dataListeners.size === 0) {
      this.#early.push(chunk);
      return;
    }
    for (const l of [...this.#dataListeners]) l(chunk);
  }

  protected markClosed(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeReason = reason;
    for (const l of this.#closeListeners.splice(0)) l(reason);
  }
}
