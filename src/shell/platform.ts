// Platforms as data (the Scrapli model): everything the generic driver knows about a shell lives in one table —
// its prompt, banner, how its result footer line looks, the confirmations that exist (and which may be answered),
// the password prompts (answered only with a LoginToken) and the notices that precede them. A Luna 10 variant is a
// new table, not a new class. Strings follow the Luna CLI reference §1, §3, §13. What a footer or an error line means
// is not the platform's business: the command's parser reads it (parsers/).

export type ShellKind = "lunash" | "lunacm" | "host";

export interface ConfirmationSpec {
  id: string;
  /** Matches the text since the last input when the device waits for an answer at its end. */
  pattern: RegExp;
  /** The answer a step may declare; undefined = never answered automatically (e.g. the LAST-attempt caution). */
  answer?: "proceed";
  /** The documented way out. */
  decline: string;
}

export interface PasswordPromptSpec {
  id: string;
  pattern: RegExp;
}

export interface NoticeSpec {
  id: string;
  pattern: RegExp;
}

export interface PlatformTable {
  kind: ShellKind;
  /** The ready prompt, tested against the last line of the cleaned buffer (anchored at its end). */
  prompt: RegExp;
  /** The banner printed before the first prompt; its first capture group is the version. */
  banner?: RegExp;
  /** Confirmations, most specific first (the LAST caution before the generic 'proceed'). */
  confirmations: ConfirmationSpec[];
  /** Login password prompts a LoginToken may answer. */
  loginPasswordPrompts: PasswordPromptSpec[];
  /** Any other password-like prompt: never answered; aborts the step. */
  otherPasswordPrompt: RegExp;
  /** Prompts that are refused at once, with the reason (no waiting for them to settle as "unknown"). */
  refusedPrompts: { pattern: RegExp; why: string }[];
  /** Informational cautions worth surfacing to the caller (e.g. "TWO ... attempts left"). */
  notices: NoticeSpec[];
  /** The result footer line; `required` makes a reply without it unreadable (ParseFailed, session abandoned). */
  footer?: { pattern: RegExp; required: boolean };
  /** Line ending to send after input. */
  enter: string;
  /** What interrupts the device's current question without answering it. */
  interrupt: string;
  exit: string;
}

/**
 * A user-name prompt inside an interactive shell: the appliance (or a host in front of it) wants a second login.
 * lunafleet logs in to the SSH account once and never types a user name into a shell.
 */
const LOGIN_AS = {
  pattern: /(?:^|\n)[ \t]*(?:login as|login|username):[ \t]*$/i,
  why: "a user-name prompt inside the shell (a second login), which lunafleet never answers",
};

export const lunashPlatform: PlatformTable = {
  kind: "lunash",
  prompt: /^\[[^\]\r\n]+\] lunash:>$/,
  banner: /Command Line Shell (?:v|- )?([0-9](?:[0-9A-Za-z.-]*[0-9A-Za-z])?)/,
  confirmations: [
    {
      id: "last-attempt-caution",
      pattern: /This is your LAST available [\s\S]*\n[ \t]*> ?$/,
      decline: "quit",
    },
    {
      id: "proceed",
      pattern: /type 'proceed'[\s\S]*\n[ \t]*> ?$/i,
      answer: "proceed",
      decline: "quit",
    },
  ],
  loginPasswordPrompts: [
    { id: "hsm-admin-password", pattern: /Please enter the HSM Administrators' password:\s*> ?$/ },
  ],
  otherPasswordPrompt: /(password|passphrase|PIN|cloning domain)[^\n]*:\s*(> ?)?$/i,
  refusedPrompts: [LOGIN_AS],
  notices: [{ id: "two-attempts-left", pattern: /You have only TWO HSM Admin logins attempts left/ }],
  // Found loosely (the parser reads it, and refuses a garbled one): the driver only needs to know it came.
  footer: { pattern: /^[ \t]*Command Result[ \t]*:.*$/m, required: true },
  enter: "\r",
  interrupt: "\x03",
  exit: "exit",
};

export const lunacmPlatform: PlatformTable = {
  kind: "lunacm",
  prompt: /^lunacm:>$/,
  banner: /lunacm \(64-bit\) v([0-9](?:[0-9A-Za-z.-]*[0-9A-Za-z])?)/,
  confirmations: [
    { id: "proceed", pattern: /type 'proceed'[^\n]*-> ?$/i, answer: "proceed", decline: "quit" },
  ],
  loginPasswordPrompts: [{ id: "lunacm-password", pattern: /Enter the password:\s?$/ }],
  otherPasswordPrompt: /(password|passphrase|PIN|domain)[^\n]*:\s*$/i,
  refusedPrompts: [LOGIN_AS],
  notices: [],
  footer: { pattern: /^[ \t]*Command Result[ \t]*:.*$/m, required: true },
  enter: "\r",
  interrupt: "\x03",
  exit: "exit",
};

/** The OS shell of a client host (where `lunacm`/`vtl` are started). No footer: exit status is not visible. */
export const hostShellPlatform: PlatformTable = {
  kind: "host",
  prompt: /^(?:\[[^\]\n]*\]|[A-Za-z0-9_.@:~/-]+) ?[$#] ?$/,
  confirmations: [],
  loginPasswordPrompts: [],
  otherPasswordPrompt: /(password|passphrase)[^\n]*:\s*$/i,
  refusedPrompts: [LOGIN_AS],
  notices: [],
  enter: "\r",
  interrupt: "\x03",
  exit: "exit",
};
