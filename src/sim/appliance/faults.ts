// Output faults of a simulated appliance: what a flaky serial-over-IP console or a dying SSH session does to bytes.
// The corruption is deterministic (tests can rely on it) and always damages the labels a parser anchors on, so a
// parser that accepts garbled output is caught.
import type { ApplianceFaults } from "../state.ts";

/** Whether `command` (canonical or as typed) falls under a fault's command prefix, case-insensitively. */
export function matchesFault(prefix: string | undefined, ...commands: string[]): boolean {
  if (!prefix) return false;
  const p = prefix.trim().toLowerCase();
  return p !== "" && commands.some((c) => c.trim().toLowerCase().startsWith(p));
}

/**
 * Corrupt command output: in every labelled line the label's letters are swapped pairwise and its colon becomes a
 * semicolon, other lines have all their letters swapped pairwise; every 9th byte of the text is dropped. Blank lines survive so the shape still looks like output.
 */
export function garble(text: string): string {
  const mangled = text
    .split("\n")
    .map((line) => {
      const colon = line.indexOf(":");
      // Lines without a label (table headers, package names) have all their letter pairs swapped.
      if (colon <= 0) return swapPairs(line);
      return `${swapPairs(line.slice(0, colon))};${line.slice(colon + 1)}`;
    })
    .join("\n");
  let out = "";
  let n = 0;
  for (const ch of mangled) {
    if (ch !== "\n" && ++n % 9 === 0) continue;
    out += ch;
  }
  return out;
}

/** The part of an output written before a mid-command drop: the first half, cut inside a line. */
export function truncateForDrop(text: string): string {
  const half = Math.max(1, Math.floor(text.length / 2));
  return text.slice(0, half);
}

export function slowReplyMs(faults: ApplianceFaults): number {
  const ms = faults.slowReplyMs ?? 0;
  return Number.isFinite(ms) && ms > 0 ? ms : 0;
}

function swapPairs(text: string): string {
  return text.replace(/([A-Za-z])([A-Za-z])/g, "$2$1");
}
