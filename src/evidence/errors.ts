// The evidence layer's errors: something about a job's evidence is wrong, and nothing more is appended until an
// operator looks (the job stops; evidence is never silently repaired).
import type { EvidenceVerification } from "./verify.ts";

export class EvidenceError extends Error {
  override name = "EvidenceError";
}

/** A copy failed verification, or the copies disagree: nothing more is appended until an operator looks. */
export class EvidenceTamperedError extends EvidenceError {
  override name = "EvidenceTamperedError";
  constructor(
    readonly jobId: string,
    readonly where: "redis" | "file" | "both",
    readonly verification: Extract<EvidenceVerification, { ok: false }>,
  ) {
    super(`evidence of job ${jobId} (${where}): ${verification.detail}; refusing to append`);
  }
}
