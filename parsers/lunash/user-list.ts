// `user list`: appliance accounts with role, status and RADIUS flag, in right-aligned columns under a dashed rule.
// Older appliances print no RADIUS column; the header decides which columns each row must have.
import { z } from "zod";
import { conform, describeLine, isRule, ParseError } from "../common.ts";
import { readLunashOutput } from "./capture.ts";

export const command = "user list";

export const schema = z.strictObject({
  users: z.array(
    z.strictObject({
      name: z.string().min(1),
      role: z.string().min(1),
      status: z.enum(["enabled", "disabled"]),
      /** null when the appliance prints no RADIUS column. */
      radius: z.boolean().nullable(),
    }),
  ),
});
export type UserList = z.infer<typeof schema>;

export function parse(raw: string): UserList {
  const capture = readLunashOutput(raw, command);
  const lines = capture.lines;
  const header = lines[0] ?? "";
  const columns = header
    .trim()
    .split(/\s+/)
    .map((c) => c.toLowerCase());
  const withRadius = columns.length === 4 && columns[3] === "radius";
  if (!(columns[0] === "users" && columns[1] === "roles" && columns[2] === "status") || columns.length > 4) {
    throw new ParseError(`unrecognised 'user list' header: ${describeLine(header)}`, raw);
  }
  if (columns.length === 4 && !withRadius)
    throw new ParseError(`unknown column in ${describeLine(header)}`, raw);
  if (!isRule(lines[1] ?? "", "-"))
    throw new ParseError("missing dashed rule under the 'user list' header", raw);
  const users: UserList["users"] = [];
  for (const line of lines.slice(2)) {
    if (line.trim() === "") continue;
    const cells = line.trim().split(/\s+/);
    if (cells.length !== columns.length) {
      throw new ParseError(
        `'user list' row has ${cells.length} cells, expected ${columns.length}: ${describeLine(line)}`,
        raw,
      );
    }
    const [name, role, statusText, radiusText] = cells as [string, string, string, string | undefined];
    const status = statusText.toLowerCase();
    if (status !== "enabled" && status !== "disabled") {
      throw new ParseError(`unknown user status ${JSON.stringify(statusText)}`, raw);
    }
    let radius: boolean | null = null;
    if (withRadius) {
      if (!/^(yes|no)$/i.test(radiusText ?? ""))
        throw new ParseError(`unknown RADIUS flag in ${describeLine(line)}`, raw);
      radius = /^yes$/i.test(radiusText ?? "");
    }
    users.push({ name, role, status, radius });
  }
  if (users.length === 0) throw new ParseError("'user list' has no rows (truncated?)", raw);
  return conform(schema, { users }, raw);
}
