// LunaSH prints reports as sections: a header line, an underline of `=` (or `-`) of the same length, then lines.
// This splits a body into such sections so a parser can hold each line against the section it belongs to.

export interface Section {
  /** Header text without the trailing colon; "" for lines before the first header. */
  title: string;
  lines: string[];
}

export function splitSections(lines: string[], rule: "=" | "-" = "="): Section[] {
  const sections: Section[] = [{ title: "", lines: [] }];
  const ruleRe = rule === "=" ? /^\s*=+\s*$/ : /^\s*-+\s*$/;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? "";
    const next = lines[i + 1];
    if (line.trim() !== "" && next !== undefined && ruleRe.test(next)) {
      sections.push({ title: line.trim().replace(/:$/, "").trim(), lines: [] });
      i++;
      continue;
    }
    const current = sections[sections.length - 1];
    if (current) current.lines.push(line);
  }
  return sections;
}
