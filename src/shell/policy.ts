// What may be sent to a device. A table of deny rules, each with an id and a reason, read against the canonical
// form of the command (abbreviations resolved by the one command vocabulary, parsers/vocabulary.ts). A refused
// command throws CommandRefused naming the rule; nothing reaches the device. A command the vocabulary classes
// `destructive` is refused even where no rule below names it; a `login` command passes only with an unused LoginToken
// for that very target and command, which only src/guard can issue (login-token.ts).
import { type Reading, readings, splitWords, VOCABULARY } from "../../parsers/index.ts";
import { CommandRefused } from "./errors.ts";
import type { LoginToken } from "./login-token.ts";
import type { ShellKind } from "./platform.ts";

export interface PolicyContext {
  shell: ShellKind;
  /** Device or client-host name the command is for. */
  target: string;
  /** Required for login commands; must be unused and issued for this target and command. */
  token?: LoginToken | undefined;
  /** The step declares it reboots the appliance (a reboot is refused otherwise). */
  allowReboot?: boolean;
  /**
   * Whether a reboot could hang the device (KB0019789 reboot patch missing). Undefined = not known, which refuses
   * a reboot: the caller must have checked the patch state first.
   */
  rebootUnsafe?: boolean | undefined;
}

export interface DenyRule {
  id: string;
  shell: ShellKind;
  /** Canonical command prefixes the rule covers (any of them). */
  paths: string[][];
  /** Canonical command prefixes under `paths` that stay allowed (read-only forms). */
  except?: string[][];
  /** Extra condition on the arguments/context; the rule applies only when it returns true. */
  when?: (args: string[], ctx: PolicyContext) => boolean;
  reason: string;
}

export type PolicyDecision =
  | { allowed: true; canonical: string; login: boolean }
  | { allowed: false; rule: string; reason: string };

/** Commands that authenticate a role (the vocabulary's `login` class): only with a LoginToken. */
const LOGIN_COMMANDS: Record<ShellKind, string[][]> = {
  lunash: loginPaths("lunash"),
  lunacm: loginPaths("lunacm"),
  host: loginPaths("host"),
};

function loginPaths(shell: ShellKind): string[][] {
  return VOCABULARY.filter((e) => e.shell === shell && e.class === "login").map((e) => e.words.split(" "));
}

/** Commands that take a password option, where `-p` may mean `-password`. */
const PASSWORD_TAKING: Record<ShellKind, string[][]> = {
  lunash: [
    ...LOGIN_COMMANDS.lunash,
    ["hsm", "init"],
    ["hsm", "changePw"],
    ["audit", "changePw"],
    ["user", "password"],
  ],
  lunacm: [
    ...LOGIN_COMMANDS.lunacm,
    ["hagroup", "creategroup"],
    ["hagroup", "addmember"],
    ["hagroup", "synchronize"],
    ["partition", "init"],
    ["partition", "changepw"],
    ["role", "init"],
    ["role", "changepw"],
    ["clientconfig", "deploy"],
  ],
  host: [],
};

/** HSM policies the reference lists as non-destructive; any other code is treated as destructive (fail closed). */
const NON_DESTRUCTIVE_HSM_POLICIES = new Set(["16", "21"]);

/** `-name value` with Luna's option abbreviations (`-pol 12`). */
function optionValue(args: string[], name: string, minPrefix = 2): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]?.toLowerCase() ?? "";
    if (!a.startsWith("-")) continue;
    const o = a.slice(1);
    if (o.length >= minPrefix && name.toLowerCase().startsWith(o)) return args[i + 1];
  }
  return undefined;
}

const firstPositional = (args: string[]): string | undefined => args.find((a) => !a.startsWith("-"));

/**
 * `-force`, `-f` or any abbreviation of it (`-fo`, `-forc`; also `--force`), on any command. Luna's `-force` skips the
 * command's confirmation prompt; a prefix of "force" is refused even where another option could share it (fail closed).
 */
function hasForceOption(args: string[]): boolean {
  return args.some((a) => {
    if (!a.startsWith("-")) return false;
    const o = a.replace(/^-+/, "").toLowerCase();
    return o.length > 0 && "force".startsWith(o);
  });
}

const ALL_SHELLS: readonly ShellKind[] = ["lunash", "lunacm", "host"];
const isPrefixOf = (word: string | undefined, ...full: string[]) =>
  word !== undefined && full.some((f) => f.startsWith(word.toLowerCase()));

export const DENY_RULES: DenyRule[] = [
  // lunash: the HSM itself
  {
    id: "hsm-zeroize",
    shell: "lunash",
    paths: [["hsm", "zeroize"]],
    reason: "zeroizes the HSM (only the sanctioned deprovisioning path may)",
  },
  {
    id: "hsm-init",
    shell: "lunash",
    paths: [["hsm", "init"]],
    reason: "re-initialises the HSM and erases every partition",
  },
  {
    id: "hsm-factory-reset",
    shell: "lunash",
    paths: [["hsm", "factoryReset"]],
    reason: "returns the HSM to factory state",
  },
  {
    id: "hsm-rollback-firmware",
    shell: "lunash",
    paths: [["hsm", "rollbackFW"]],
    reason: "a firmware rollback zeroizes the HSM",
  },
  {
    id: "hsm-destructive-policy",
    shell: "lunash",
    paths: [["hsm", "changePolicy"]],
    when: (args) => !NON_DESTRUCTIVE_HSM_POLICIES.has(optionValue(args, "policy", 2) ?? ""),
    reason: "changing a destructive (or unknown) HSM policy zeroizes the HSM",
  },
  // lunash: partitions
  {
    id: "partition-destroy",
    shell: "lunash",
    paths: [
      ["partition", "delete"],
      ["partition", "clear"],
      ["partition", "init"],
      ["partition", "create"],
      ["partition", "resetPw"],
    ],
    reason: "creates, re-initialises, clears or deletes a partition (key material)",
  },
  {
    id: "token-backup-destroy",
    shell: "lunash",
    paths: [
      ["token", "backup", "factoryReset"],
      ["token", "backup", "init"],
      ["token", "backup", "partition"],
    ],
    reason: "erases a backup token",
  },
  { id: "audit-init", shell: "lunash", paths: [["audit", "init"]], reason: "re-initialises the audit role" },
  // lunash: the appliance and its management path
  {
    id: "sysconf-config-reset",
    shell: "lunash",
    paths: [
      ["sysconf", "config", "factoryReset"],
      ["sysconf", "config", "restore"],
      ["sysconf", "config", "import"],
    ],
    reason: "replaces the appliance configuration (can cut the management and NTLS paths)",
  },
  {
    id: "network-change",
    shell: "lunash",
    paths: [["network"]],
    except: [
      ["network", "show"],
      ["network", "ping"],
      ["network", "traceroute"],
      ["network", "route", "show"],
    ],
    reason:
      "changes the appliance network (can make the device unreachable; on Azure only a reset recovers it)",
  },
  {
    id: "ssh-restriction",
    shell: "lunash",
    paths: [["sysconf", "ssh"]],
    except: [["sysconf", "ssh", "show"]],
    reason: "changes how SSH is reachable (can lock lunafleet and operators out)",
  },
  {
    id: "service-stop-network",
    shell: "lunash",
    paths: [
      ["service", "stop"],
      ["service", "restart"],
    ],
    when: (args) => {
      const svc = firstPositional(args);
      return svc === undefined || isPrefixOf(svc, "network", "ssh", "sshd", "all");
    },
    reason: "stops the network or SSH service (cuts the management path)",
  },
  {
    id: "appliance-poweroff",
    shell: "lunash",
    paths: [["sysconf", "appliance", "poweroff"]],
    reason: "powers the appliance off (needs hands in the datacenter)",
  },
  {
    id: "appliance-reboot",
    shell: "lunash",
    paths: [
      ["sysconf", "appliance", "reboot"],
      ["sysconf", "appliance", "hardreboot"],
    ],
    when: (_args, ctx) => ctx.allowReboot !== true || ctx.rebootUnsafe !== false,
    reason:
      "reboots the appliance: allowed only in a step that declares it, on a device known to have the KB0019789 reboot patch",
  },
  { id: "user-delete", shell: "lunash", paths: [["user", "delete"]], reason: "deletes an appliance user" },
  // lunacm
  {
    id: "lunacm-partition-destroy",
    shell: "lunacm",
    paths: [
      ["partition", "init"],
      ["partition", "clear"],
      ["partition", "delete"],
      ["partition", "create"],
    ],
    reason: "re-initialises, clears, creates or deletes a partition (key material)",
  },
  {
    id: "lunacm-hsm-destroy",
    shell: "lunacm",
    paths: [
      ["hsm", "init"],
      ["hsm", "zeroize"],
      ["hsm", "factoryReset"],
      ["hsm", "changehsmpolicy"],
    ],
    reason: "re-initialises, zeroizes or changes the policy of the HSM",
  },
  {
    id: "lunacm-role-credentials",
    shell: "lunacm",
    paths: [
      ["role", "init"],
      ["role", "resetpw"],
      ["role", "changepw"],
      ["role", "deactivate"],
      ["partition", "changepw"],
    ],
    reason: "initialises a role or changes/resets its credential (applications would lose access)",
  },
  {
    id: "lunacm-audit-init",
    shell: "lunacm",
    paths: [["audit", "init"]],
    reason: "re-initialises the audit role",
  },
  // Every shell, every command; after the specific rules above, so a destructive command keeps its own rule id.
  ...ALL_SHELLS.map(
    (shell): DenyRule => ({
      id: "no-force",
      shell,
      paths: [[]],
      when: (args) => hasForceOption(args),
      reason: "confirmations are answered by the step that declared them; -force would skip them",
    }),
  ),
];

function startsWithPath(path: string[], prefix: string[]): boolean {
  return prefix.length <= path.length && prefix.every((w, i) => path[i]?.toLowerCase() === w.toLowerCase());
}

function ruleApplies(rule: DenyRule, r: Reading, ctx: PolicyContext): boolean {
  if (!rule.paths.some((p) => startsWithPath(r.path, p))) return false;
  if (rule.except?.some((p) => startsWithPath(r.path, p))) return false;
  return rule.when ? rule.when(r.args, ctx) : true;
}

const deny = (rule: string, reason: string): PolicyDecision => ({ allowed: false, rule, reason });

/** Decide whether `command` may be sent. Pure: does not consume the token. */
export function checkCommand(command: string, ctx: PolicyContext): PolicyDecision {
  // A newline or control character would smuggle a second command (or an answer to a prompt) past the policy.
  if (/[\x00-\x1f\x7f]/.test(command))
    return deny("control-characters", "commands must be one line without control characters");
  const words = splitWords(command);
  if (words.length === 0) return deny("empty-command", "empty command");
  const all = readings(ctx.shell, words);

  if (ctx.shell === "host") {
    // An OS shell runs anything: allow only the Luna client tools the vocabulary lists, never a second command.
    if (/[;&|`$<>()\\]/.test(command))
      return deny("host-shell-metacharacters", "shell metacharacters are refused on a client host");
    if (all.some((r) => r.path.length === 0 || r.path[0]?.startsWith("?") || words[0] !== r.path[0]))
      return deny("host-allowlist", "only 'lunacm', 'vtl' and 'exit' may run on a client host's shell");
    if (words[0] === "lunacm" && words.length > 1)
      return deny(
        "host-lunacm-arguments",
        "lunacm is started interactively only, so every lunacm command passes the lunacm policy (no -q/-c one-shots)",
      );
    if (words[0] === "vtl" && all.some((r) => r.entry === undefined)) {
      const allowed = VOCABULARY.filter((e) => e.shell === "host" && e.words.startsWith("vtl "));
      return deny(
        "host-vtl-subcommand",
        `vtl may only run ${allowed.map((e) => e.words.slice(4)).join(", ")}`,
      );
    }
  }

  for (const r of all)
    for (const rule of DENY_RULES)
      if (rule.shell === ctx.shell && ruleApplies(rule, r, ctx))
        return deny(
          rule.id,
          all.length > 1
            ? `${rule.reason} (ambiguous abbreviation could mean '${r.path.join(" ")}')`
            : rule.reason,
        );

  // The vocabulary's destructive commands that no rule above names (each is refused all the same).
  for (const r of all)
    if (r.entry?.class === "destructive")
      return deny(
        "destructive-command",
        `'${r.entry.words}' erases key material, credentials or configuration, or cuts the management path`,
      );

  const passwordTaking = all.some((r) => PASSWORD_TAKING[ctx.shell].some((p) => startsWithPath(r.path, p)));
  for (const r of all)
    for (const a of r.args) {
      if (!a.startsWith("-") || a.length < 2) continue;
      const o = a.slice(1).toLowerCase();
      const inline =
        ((o.length >= 3 || passwordTaking) && "password".startsWith(o)) ||
        o === "pw" ||
        o === "pwd" ||
        o === "passwd";
      if (inline)
        return deny(
          "inline-password",
          "passwords are never put on the command line; they are typed at the device's prompt through the login guard",
        );
    }

  const loginReadings = all.filter((r) => LOGIN_COMMANDS[ctx.shell].some((p) => startsWithPath(r.path, p)));
  const canonical = all.length === 1 ? (all[0]?.path ?? []).join(" ") : "";
  if (loginReadings.length > 0 || ctx.token !== undefined) {
    if (all.length > 1) return deny("login-ambiguous", "a login command must be spelled unambiguously");
    const login = loginReadings.length > 0;
    const token = ctx.token;
    if (!token)
      return deny("login-requires-token", "login commands are sent only by the login guard (no LoginToken)");
    if (token.used)
      return deny("login-token-used", "this LoginToken was already used; a login is never replayed");
    if (token.target !== ctx.target)
      return deny(
        "login-token-target",
        `the LoginToken was issued for '${token.target}', not '${ctx.target}'`,
      );
    if (token.command.toLowerCase() !== canonical.toLowerCase())
      return deny("login-token-command", `the LoginToken authorizes '${token.command}', not '${canonical}'`);
    return { allowed: true, canonical, login };
  }
  return { allowed: true, canonical: canonical || words.join(" "), login: false };
}

/** checkCommand, throwing CommandRefused. */
export function assertCommandAllowed(
  command: string,
  ctx: PolicyContext,
): { canonical: string; login: boolean } {
  const d = checkCommand(command, ctx);
  if (!d.allowed) throw new CommandRefused({ target: ctx.target, command }, d.rule, d.reason);
  return d;
}
