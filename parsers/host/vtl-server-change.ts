// `vtl addServer -n <server> -c <cert>` and `vtl deleteServer -n <server>` on a client host. vtl prints no footer:
// the one success line is the whole answer (reference §8.5 verbatim for add: `New server <n> successfully added to
// server list.`; the delete line is [I], by analogy: `Server <n> successfully deleted from server list.`), an `Error:`
// line is the tool's refusal. Nothing else is accepted, so a garbled reply is never taken for a change that happened.
import { z } from "zod";
import { conform, describeLine, ParseError } from "../common.ts";
import { readHostOutput } from "./capture.ts";

const schema = z.strictObject({
  /** The server name vtl names in its success line. */
  server: z.string().min(1),
});
export type VtlServerChange = z.infer<typeof schema>;

function serverChange(canonical: string, success: RegExp) {
  return {
    command: canonical,
    schema,
    parse(raw: string): VtlServerChange {
      const capture = readHostOutput(raw, canonical);
      let server: string | null = null;
      for (const line of capture.lines) {
        const t = line.trim();
        if (t === "") continue;
        const m = success.exec(t);
        if (m && server === null) {
          server = m[1] ?? "";
          continue;
        }
        throw new ParseError(`unrecognised line in the reply to '${canonical}': ${describeLine(line)}`, raw);
      }
      if (server === null)
        throw new ParseError(`no success line in the reply to '${canonical}': its outcome is unknown`, raw);
      return conform(schema, { server }, raw);
    },
  };
}

export const vtlAddServer = serverChange(
  "vtl addServer",
  /^New server (\S+) successfully added to server list\.$/,
);
export const vtlDeleteServer = serverChange(
  "vtl deleteServer",
  /^Server (\S+) successfully deleted from server list\.$/,
);
