// The seam between the twin's interpreters (lunash on appliances, lunacm/vtl on client hosts) and whatever carries
// their bytes: an ssh2 shell or exec channel, or stdio under a real OpenSSH sshd's ForceCommand.

/** Where an interpreter writes. Text uses "\r\n" line ends on a pty, "\n" otherwise: the carrier decides. */
export interface ShellIO {
  write(text: string): void;
  /** End the session (after `exit`, a reboot, or a dropped-connection fault). `exitCode` for exec channels. */
  close(exitCode?: number): void;
  /** Drop the connection abruptly, mid-output (fault injection): no exit status, no clean close. */
  destroy(): void;
}

/** An interactive session: banner, prompt, line editing, password and `proceed` prompts. */
export interface InteractiveShell {
  /** Print the banner and the first prompt. */
  start(): void;
  /** Raw input from the peer (may hold partial lines, several lines, CR or LF). */
  input(data: string): void;
  /** The peer went away. */
  end(): void;
}

/** Creates interactive sessions and runs single commands (`ssh host 'hsm show'`, `lunacm -q ...`). */
export interface ShellHost {
  /** Interactive session for `user`; `session` is a unique id the twin uses in its command and session logs. */
  openShell(io: ShellIO, ctx: { user: string; session: number; pty: boolean }): InteractiveShell;
  /** Run one command non-interactively, write its output, then `io.close(exitCode)`. */
  exec(command: string, io: ShellIO, ctx: { user: string; session: number }): void;
}
