// What a twin lunacm command is made of: a subcommand declares its options (parsed for it, lunacm's way: names
// case-insensitive, unambiguous prefixes) and runs on the session with them; it either finishes (body + footer) or
// first asks for a password. The helpers here are the outcomes every command group shares.
import type { PartitionRole, RoleLoginOutcome } from "../../state.ts";
import type { OptionSpec } from "../args.ts";
import { CKR, type Footer, OK } from "../render.ts";
import type { LunacmSession } from "./session.ts";

export type CommandStep =
  | { kind: "done"; body: string[]; footer: Footer }
  | { kind: "password"; prompt: string; resume(password: string | null): CommandStep };

export const PASSWORD_PROMPT = "Enter the password: ";

export const done = (footer: Footer, body: string[] = []): CommandStep => ({ kind: "done", body, footer });
export const failed = (footer: Footer, message: string): CommandStep => done(footer, [`Error: ${message}`]);

/** Ask for a password unless `-password` was given; an empty password is refused without counting an attempt. */
export function withPassword(
  given: string | true | undefined,
  then: (password: string) => CommandStep,
): CommandStep {
  const use = (pw: string | null): CommandStep => {
    if (pw === null || pw === "") return done(CKR.cancelled, ["Error in execution: command cancelled."]);
    return then(pw);
  };
  if (typeof given === "string") return use(given);
  return { kind: "password", prompt: PASSWORD_PROMPT, resume: use };
}

/** Parsed options: the value of each `-name value`, or `true` for a flag. */
export type Options = Map<string, string | true>;

export interface Subcommand {
  name: string;
  aliases?: readonly string[];
  /** The options it takes; anything else is refused with `0x7 (CKR_ARGUMENTS_BAD)` before it runs. */
  options: readonly OptionSpec[];
  run(session: LunacmSession, opts: Options): CommandStep;
}

export interface CommandGroup {
  name: string;
  aliases?: readonly string[];
  subs: readonly Subcommand[];
}

export const ROLE_NAMES: Record<PartitionRole, string> = {
  po: "Partition SO",
  so: "Partition SO",
  co: "Crypto Officer",
  cu: "Crypto User",
};

export const isStep = (x: unknown): x is CommandStep =>
  typeof x === "object" &&
  x !== null &&
  !(x instanceof Map) &&
  ((x as { kind?: unknown }).kind === "done" || (x as { kind?: unknown }).kind === "password");

/** The outcome of one role login attempt as lunacm reports it. */
export function loginFooter(outcome: RoleLoginOutcome, role: PartitionRole): CommandStep {
  switch (outcome) {
    case "success":
      return done(OK);
    case "wrong":
      return done(CKR.pinIncorrect);
    case "locked-out":
    case "locked-out-now":
      return failed(CKR.pinLocked, `${ROLE_NAMES[role]} is locked out.`);
    case "not-initialized":
      return failed(CKR.userPinNotInitialized, `${role} is not yet initialized.`);
    case "partition-zeroized":
      return failed(CKR.userPinNotInitialized, "the partition is zeroized; its roles are not initialized.");
    case "partition-zeroized-now":
      return failed(CKR.pinLocked, "too many failed Partition SO logins: the partition has been zeroized.");
  }
}
