// Line input of an interactive lunash session: turns raw bytes from the peer (partial lines, several lines at once,
// CR, LF or CRLF, backspace, Ctrl-C, Ctrl-D, arrow-key escape sequences) into complete lines, and echoes what the
// peer typed. Echo happens when the shell reads a line, so a transcript shows every command right after its prompt
// even when the peer typed ahead; on a pty the characters are also echoed live while the shell is waiting.

export type LineResult = { kind: "line"; text: string } | { kind: "cancel" } | { kind: "eof" };

interface Waiter {
  mask: boolean;
  resolve(r: LineResult): void;
}

export class LineInput {
  readonly #echo: (text: string) => void;
  readonly #pty: boolean;
  #partial = "";
  /** How many characters of `#partial` were already echoed live. */
  #echoed = 0;
  #queue: LineResult[] = [];
  #waiter: Waiter | undefined;
  #lastWasCr = false;
  #escape: "none" | "esc" | "csi" = "none";
  #ended = false;

  readonly #display: (line: string) => string;

  /**
   * `display` turns a (partial) command line into what the terminal shows, same length; lunash masks passwords
   * given as arguments with it. Password prompts (`mask`) show only `*`.
   */
  constructor(opts: { pty: boolean; echo: (text: string) => void; display?: (line: string) => string }) {
    this.#pty = opts.pty;
    this.#echo = opts.echo;
    this.#display = opts.display ?? ((l) => l);
  }

  /** Wait for the next line. `mask` echoes `*` for each character (password prompts). */
  read(mask = false): Promise<LineResult> {
    const queued = this.#queue.shift();
    if (queued) {
      this.#echoDelivered(queued, mask);
      return Promise.resolve(queued);
    }
    if (this.#ended) return Promise.resolve({ kind: "eof" });
    return new Promise((resolve) => {
      this.#waiter = { mask, resolve };
      // Characters typed ahead of this read appear now, as a terminal would show them.
      if (this.#pty && this.#partial.length > this.#echoed) {
        this.#echo(this.#shown(this.#partial, mask).slice(this.#echoed));
        this.#echoed = this.#partial.length;
      }
    });
  }

  /** The peer closed its side: pending and future reads see end of input. */
  end(): void {
    this.#ended = true;
    if (this.#partial.length > 0) {
      const text = this.#partial;
      this.#partial = "";
      this.#deliver({ kind: "line", text });
    }
    this.#deliver({ kind: "eof" });
  }

  feed(data: string): void {
    for (const ch of data) this.#char(ch);
  }

  #char(ch: string): void {
    if (this.#escape !== "none") {
      // Swallow ESC [ ... final-byte sequences (arrow keys etc.): lunash has no history or cursor movement here.
      if (this.#escape === "esc") this.#escape = ch === "[" || ch === "O" ? "csi" : "none";
      else if (ch >= "@" && ch <= "~") this.#escape = "none";
      return;
    }
    const wasCr = this.#lastWasCr;
    this.#lastWasCr = ch === "\r";
    switch (ch) {
      case "\r":
        this.#completeLine();
        return;
      case "\n":
        if (!wasCr) this.#completeLine();
        return;
      case "\x1b":
        this.#escape = "esc";
        return;
      case "\x7f":
      case "\b":
        if (this.#partial.length > 0) {
          this.#partial = this.#partial.slice(0, -1);
          if (this.#echoed > this.#partial.length) {
            this.#echoed = this.#partial.length;
            this.#echo("\b \b");
          }
        }
        return;
      case "\x03": // Ctrl-C: drop the line being typed; a prompt waiting for an answer is cancelled.
        this.#partial = "";
        this.#echoed = 0;
        if (this.#pty) this.#echo("^C\n");
        this.#deliver({ kind: "cancel" }, true);
        return;
      case "\x04": // Ctrl-D on an empty line: end of input.
        if (this.#partial.length === 0) this.end();
        return;
      default:
        if (ch < " " && ch !== "\t") return;
        this.#partial += ch;
        if (this.#pty && this.#waiter && this.#queue.length === 0) {
          this.#echo(this.#shown(this.#partial, this.#waiter.mask).slice(this.#echoed));
          this.#echoed = this.#partial.length;
        }
    }
  }

  #completeLine(): void {
    const text = this.#partial;
    this.#partial = "";
    this.#deliver({ kind: "line", text });
  }

  #deliver(r: LineResult, echoed = false): void {
    const w = this.#waiter;
    if (w) {
      this.#waiter = undefined;
      if (!echoed) this.#echoDelivered(r, w.mask);
      this.#echoed = 0;
      w.resolve(r);
      return;
    }
    // Nobody is reading: keep it. The live echo (if any) belonged to a line that is now queued, so it is forgotten.
    if (r.kind === "cancel" && this.#queue.length === 0) return;
    this.#queue.push(r);
    this.#echoed = 0;
  }

  #echoDelivered(r: LineResult, mask: boolean): void {
    if (r.kind !== "line") return;
    this.#echo(`${this.#shown(r.text, mask).slice(this.#echoed)}\n`);
    this.#echoed = 0;
  }

  /** What the terminal shows for the whole line `text` (indexes match `text`'s UTF-16 positions). */
  #shown(text: string, mask: boolean): string {
    if (mask) return text.replace(/[\s\S]/g, "*");
    const shown = this.#display(text);
    return shown.length === text.length ? shown : text.replace(/[\s\S]/g, "*");
  }
}
