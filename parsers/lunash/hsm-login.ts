// `hsm login`: the only reading the guard trusts as a successful HSM SO login is the device's own
// `'hsm login' successful.` with no `Error:` line and a success footer. Wrong passwords (A00000) and the zeroizing
// third failure (30000F, which prints a success footer) surface as device errors through the error block.
import { z } from "zod";
import { conform, ParseError } from "../common.ts";
import { readLunashOutput } from "./capture.ts";

export const command = "hsm login";

export const schema = z.strictObject({
  loggedIn: z.literal(true),
  /** The device warned before the prompt that only this many attempts were left (TWO → 2, LAST → 1). */
  warnedAttemptsLeft: z.number().int().min(1).nullable(),
  /** `proceed` was typed at the last-attempt caution. */
  proceedConfirmed: z.boolean(),
});
export type HsmLogin = z.infer<typeof schema>;

const SUCCESS = /^\s*'hsm login' successful\.?\s*$/;
const PASSWORD_PROMPT = /^\s*Please enter the HSM Administrators?' password:\s*$/i;
const MASKED = /^\s*>\s*\**\s*$/;
const PROCEED = /^\s*>\s*proceed\s*$/i;
// Caution block lines (TWO attempts left / LAST attempt), verbatim wording from the reference.
const CAUTION = [
  /^Caution:\s+You have only TWO HSM Admin logins? attempts left \(including$/i,
  /^this one\)\. If you fail two more consecutive login attempts$/i,
  /^\(i\.e\. with no successful logins in between\) the HSM will$/i,
  /^be ZEROIZED!*$/i,
  /^Caution:\s+This is your LAST available HSM Admin login attempt\.$/i,
  /^If the wrong HSM Admin password is provided the HSM will$/i,
  /^Type 'proceed' if you are certain you have the right$/i,
  /^HSM Admin login credentials or 'quit' to quit now\.$/i,
];

export function parse(raw: string): HsmLogin {
  const capture = readLunashOutput(raw, command);
  if (capture.footer === null) throw new ParseError("no Command Result footer: login outcome unknown", raw);
  let success = false;
  let warned: number | null = null;
  let proceed = false;
  for (const [index, line] of capture.lines.entries()) {
    const t = line.trim();
    if (t === "" || PASSWORD_PROMPT.test(t) || MASKED.test(t)) continue;
    if (SUCCESS.test(t)) {
      success = true;
      continue;
    }
    if (PROCEED.test(t)) {
      proceed = true;
      continue;
    }
    if (CAUTION.some((re) => re.test(t))) {
      if (/TWO HSM Admin/i.test(t)) warned = 2;
      if (/LAST available/i.test(t)) warned = 1;
      continue;
    }
    // The line is not quoted: in a login transcript an unexpected line may be an unmasked password.
    throw new ParseError(
      `unrecognised line ${index + 1} of the 'hsm login' output (not quoted: may hold a secret)`,
      raw,
    );
  }
  if (!success) throw new ParseError("no \"'hsm login' successful.\" line: login outcome unknown", raw);
  return conform(schema, { loggedIn: true, warnedAttemptsLeft: warned, proceedConfirmed: proceed }, raw);
}
