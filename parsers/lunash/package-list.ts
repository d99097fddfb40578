// `package list`: every installed RPM, grouped in sections (`RPM LIST (SYSTEM)`, `RPM LIST (SOFTWARE)`). Used to
// verify patches (e.g. the KB0019789 reboot patch) are installed, so it is strict: a section header must read
// `RPM LIST (<NAME>)`, and a package must look like an RPM (`name-<version>...`). Anything else — a line with
// blanks, a mangled header, a name without a version — is refused, not skipped: a garbled listing read as
// "patch absent" would be a wrong answer even if the safe one.
import { z } from "zod";
import { conform, describeLine, ParseError } from "../common.ts";
import { readLunashOutput } from "./capture.ts";

export const command = "package list";

export const schema = z.strictObject({
  /** Every RPM of every section, in order. */
  packages: z.array(z.string().min(1)),
  sections: z.array(z.strictObject({ name: z.string().min(1), packages: z.array(z.string().min(1)) })),
});
export type PackageList = z.infer<typeof schema>;

const DASH_RULE = /^\s*-{3,}\s*$/;
const RPM =
  /^\s*([A-Za-z0-9][A-Za-z0-9._+~]*(?:-[A-Za-z0-9._+~]+)*-\d[A-Za-z0-9._+~]*(?:-[A-Za-z0-9._+~]+)*)\s*$/;
const SECTION = /^RPM LIST\s*\(([A-Z][A-Z ]*)\)\s*:?$/;

export function parse(raw: string): PackageList {
  const capture = readLunashOutput(raw, command);
  const lines = capture.lines;
  const sections: PackageList["sections"] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? "";
    if (line.trim() === "") continue;
    if (DASH_RULE.test(lines[i + 1] ?? "")) {
      const m = SECTION.exec(line.trim());
      if (!m)
        throw new ParseError(
          `unrecognised section header in 'package list' output: ${describeLine(line)}`,
          raw,
        );
      sections.push({ name: (m[1] ?? "").trim(), packages: [] });
      i++;
      continue;
    }
    const current = sections[sections.length - 1];
    if (!current) throw new ParseError(`package line before any section header: ${describeLine(line)}`, raw);
    const rpm = RPM.exec(line);
    if (!rpm) throw new ParseError(`unrecognised line in 'package list' output: ${describeLine(line)}`, raw);
    current.packages.push(rpm[1] ?? "");
  }
  const packages = sections.flatMap((s) => s.packages);
  if (packages.length === 0) throw new ParseError("no packages listed (output truncated?)", raw);
  const names = new Set(sections.map((s) => s.name));
  if (names.size !== sections.length) throw new ParseError("a package section is printed twice", raw);
  return conform(schema, { packages, sections }, raw);
}
