// A session's transcript: what was sent and received, redacted as it is recorded (never later), so a transcript
// held in memory, written to evidence or attached to an error cannot contain a password. Typed input at a password
// prompt is recorded as [REDACTED] and never passes through here in the clear.
import { redact } from "../config/secret.ts";

const REDACTED_INPUT = "[REDACTED]";

export interface TranscriptEntry {
  /** ms since the epoch */
  at: number;
  dir: "sent" | "received" | "event";
  text: string;
}

export class Transcript {
  readonly #entries: TranscriptEntry[] = [];
  readonly #maxEntries: number;

  constructor(maxEntries = 5000) {
    this.#maxEntries = maxEntries;
  }

  sent(text: string): void {
    this.#push("sent", text);
  }

  /** Typed input at a password prompt: the text itself is never seen by the transcript. */
  sentSecret(): void {
    this.#push("sent", REDACTED_INPUT);
  }

  received(text: string): void {
    this.#push("received", text);
  }

  event(text: string): void {
    this.#push("event", text);
  }

  #push(dir: TranscriptEntry["dir"], text: string): void {
    this.#entries.push({ at: Date.now(), dir, text: redact(text) });
    if (this.#entries.length > this.#maxEntries)
      this.#entries.splice(0, this.#entries.length - this.#maxEntries);
  }

  get entries(): readonly TranscriptEntry[] {
    return this.#entries;
  }

  /** Human-readable form: received text as is, sent lines prefixed with `>>> `, events with `### `. */
  toText(): string {
    return this.#entries
      .map((e) => (e.dir === "received" ? e.text : `${e.dir === "sent" ? ">>> " : "### "}${e.text}\n`))
      .join("");
  }
}
