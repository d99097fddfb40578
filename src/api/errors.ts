// A refusal the API sends as-is and the CLI prints as-is, whichever transport carried it: an HTTP status and a
// message for the caller (never a stack, never a secret), with optional details (the approval state, the refusal
// code). Kept apart from server.ts so the operations (ops/) and the CLI's local transport load without fastify.
export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly statusCode: number,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

/** One line naming every field a request got wrong (the CLI prints it as is, whichever transport carried it). */
export function schemaRefusal(issues: { path: string; message: string }[]): string {
  return `request does not match the schema: ${issues.map((i) => `${i.path}: ${i.message}`).join("; ")}`;
}
