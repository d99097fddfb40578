// `sysconf regenCert`: after the `proceed` its WARNING asks for, the appliance prints `Proceeding...` and
//   'sysconf regenCert' successful. NTLS must be (re)started before clients can connect.
// followed by a reminder to check the NTLS binding (reference §8.1, Luna 5 wording; Luna 7 assumed identical [I]).
// Only that success line with a success footer counts as a regenerated certificate.
import { z } from "zod";
import { conform, describeLine, ParseError } from "../common.ts";
import { afterConfirmation, readLunashChange } from "./capture.ts";

export const command = "sysconf regenCert";

export const schema = z.strictObject({
  regenerated: z.literal(true),
  /** The appliance's reminder that NTLS must be restarted before clients connect. */
  ntlsRestartNeeded: z.boolean(),
});
export type SysconfRegenCert = z.infer<typeof schema>;

const SUCCESS = /^'sysconf regenCert' successful\.(.*)$/;
const KNOWN = [
  /^>?\s*proceed$/i,
  /^Proceeding\.\.\.$/,
  /^Please use the 'ntls show' command to ensure that NTLS is bound to an appropriate network device or IP address\/hostname$/,
  /^for the network device\(s\) NTLS should be active on\. Use 'ntls bind' to change this binding if necessary\.$/,
];

export function parse(raw: string): SysconfRegenCert {
  const capture = readLunashChange(raw, command, SUCCESS);
  let restart = false;
  for (const line of afterConfirmation(capture.lines, raw)) {
    const t = line.trim();
    if (t === "" || KNOWN.some((re) => re.test(t))) continue;
    const m = SUCCESS.exec(t);
    if (m) {
      restart = /NTLS must be \(re\)started/.test(m[1] ?? "");
      continue;
    }
    throw new ParseError(`unrecognised line in the reply to 'sysconf regenCert': ${describeLine(line)}`, raw);
  }
  return conform(schema, { regenerated: true, ntlsRestartNeeded: restart }, raw);
}
