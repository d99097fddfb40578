// The replies of the client registration changes on an appliance. Each counts as done only with its own success line
// (reference §8.4: `'client register' successful.`, `'client assignPartition' successful.`) and a success footer; a
// reply whose body is cut or garbled is an unknown outcome, never a change that happened. `client delete` asks for
// `proceed` first (its CAUTION is answered by the shell driver; what follows the answer is its reply); its success
// line is [I] by analogy with the other client commands (the reference captures only the CAUTION).
import { z } from "zod";
import { conform, describeLine, ParseError } from "../common.ts";
import { afterConfirmation, readLunashChange } from "./capture.ts";

const schema = z.strictObject({ done: z.literal(true) });
export type ClientChange = z.infer<typeof schema>;

function changeParser(canonical: string) {
  const success = new RegExp(`^'${canonical}' successful\\.$`);
  return {
    command: canonical,
    schema,
    parse(raw: string): ClientChange {
      const capture = readLunashChange(raw, canonical, success);
      for (const line of afterConfirmation(capture.lines, raw)) {
        const t = line.trim();
        // The answer typed at the CAUTION may come back as an echo before the reply.
        if (t === "" || success.test(t) || /^>?\s*proceed$/i.test(t)) continue;
        throw new ParseError(`unrecognised line in the reply to '${canonical}': ${describeLine(line)}`, raw);
      }
      return conform(schema, { done: true }, raw);
    },
  };
}

export const clientRegister = changeParser("client register");
export const clientAssignPartition = changeParser("client assignPartition");
export const clientDelete = changeParser("client delete");
