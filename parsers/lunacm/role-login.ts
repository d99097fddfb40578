// `role login -name <role>`: the only reading that counts as a successful partition-role login is a `No Error`
// footer with no error line. A missing footer is an unknown outcome (the guard counts it as a failure); wrong
// passwords (`0xa0 CKR_PIN_INCORRECT`), locked PINs and the like surface as device errors from the footer.
import { z } from "zod";
import { conform, ParseError } from "../common.ts";
import { readLunacmOutput } from "./capture.ts";

export const command = "role login";

export const schema = z.strictObject({ loggedIn: z.literal(true) });
export type RoleLogin = z.infer<typeof schema>;

// `Enter the password: ********`, `Enter password for Crypto Officer: ********`, or the mask on a line of its own.
const PASSWORD_LINE = /^(?:Please\s+)?enter\s+(?:the\s+)?(?:password|PIN)\b[^:]*:\s*\**\s*$/i;
const MASK_LINE = /^>?\s*\*+\s*$/;

export function parse(raw: string): RoleLogin {
  const capture = readLunacmOutput(raw, command);
  if (capture.footer === null) throw new ParseError("no Command Result footer: login outcome unknown", raw);
  for (const [index, line] of capture.lines.entries()) {
    const t = line.trim();
    if (t === "" || PASSWORD_LINE.test(t) || MASK_LINE.test(t)) continue;
    // Not quoted: in a login transcript an unexpected line may be an unmasked password.
    throw new ParseError(
      `unrecognised line ${index + 1} of the 'role login' output (not quoted: may hold a secret)`,
      raw,
    );
  }
  return conform(schema, { loggedIn: true }, raw);
}
