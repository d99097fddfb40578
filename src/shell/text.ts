// Terminal noise out, text in: ANSI escape sequences, carriage returns, backspace-erased echo.

const ANSI =
  // CSI ... final byte | OSC ... BEL/ST | two-byte ESC sequences (charset selection, keypad modes, ...)
  /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[=>78NOPc\\]/g;

function stripAnsi(text: string): string {
  return text.replace(ANSI, "");
}

/** Normalise line ends to "\n", drop stray CRs, apply backspaces, drop other control characters except tab. */
export function cleanTerminalText(text: string): string {
  let out = stripAnsi(text).replace(/\r+\n/g, "\n").replace(/\r/g, "");
  // A backspace erases the previous character on the line (masked password echo, line editing).
  while (/[^\n]\x08/.test(out)) out = out.replace(/[^\n]\x08/g, "");
  return out.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, "");
}

/** The last line of a buffer (text after the final "\n"). */
export function lastLine(text: string): string {
  const i = text.lastIndexOf("\n");
  return i < 0 ? text : text.slice(i + 1);
}

/** The last `n` lines, for error messages. */
export function tailLines(text: string, n: number): string {
  return text.split("\n").slice(-n).join("\n");
}
