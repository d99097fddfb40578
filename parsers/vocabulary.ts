// The one command vocabulary: every lunash, lunacm and client-host (vtl) command lunafleet knows, as data — its
// canonical words, the device's own short aliases, its class and the parser of its reply. The command policy
// (src/shell/policy.ts) resolves what a step types against it before deciding, and the parser registry
// (parsers/index.ts) picks the one parser of a command through it, so an abbreviation means the same thing to both.
// The twin keeps its own command table (src/sim): it is the device, not a reader of this one.
//
// LunaSH and LunaCM accept any unambiguous prefix of each word, case-insensitively (`hsm zer`, `sysc conf fact`,
// `par list`); a few short forms are aliases on the device (`hsm sh` is `hsm show` although `hsm showPolicies` shares
// the prefix; `par si` is `partition showinfo`). Each group lists every verb the reference knows, not only the ones
// lunafleet sends: a prefix is resolved against the whole group, so `hsm sho` stays ambiguous instead of guessed.
// vtl runs on the client host's OS shell and takes its subcommands spelled out (no prefixes are assumed there).

/**
 * read: observes only. change: alters the device (a setting, a registration, the current slot's login state).
 * login: authenticates a role (only the login guard sends it, with a LoginToken). destructive: erases key material,
 * credentials or configuration, or cuts the management path — never sent (the command policy refuses it).
 */
export type CommandClass = "read" | "change" | "login" | "destructive";

/** lunash on an appliance, lunacm on a client host, or the client host's OS shell (where `vtl` runs). */
export type Shell = "lunash" | "lunacm" | "host";

export interface CommandEntry {
  shell: Shell;
  /** Canonical words, e.g. `hsm showPolicies`. */
  words: string;
  class: CommandClass;
  /** Device aliases of the last word that are not plain prefixes of it (`sh` for `show`). */
  aliases: readonly string[];
  /** Slug of the parser of its reply (parsers/<shell>/<slug>.ts, fixtures/<slug>/), when lunafleet sends it. */
  parser: string | undefined;
}

type Spec = [words: string, cls: CommandClass, parser?: string, aliases?: string[]];

/** Every leaf of a group of one class: `group("hsm ped", "change", "connect", "disconnect")`. */
const group = (prefix: string, cls: CommandClass, ...verbs: string[]): Spec[] =>
  verbs.map((v) => [`${prefix} ${v}`, cls]);

const LUNASH: Spec[] = [
  ["audit init", "destructive"],
  ["audit login", "login"],
  ["audit show", "read"],
  ["audit verify", "read"],
  ["audit export", "read"],
  ...group(
    "audit",
    "change",
    "changePw",
    "config",
    "import",
    "logout",
    "remotehost",
    "secret",
    "sync",
    "time",
  ),
  ["client assignPartition", "change", "client-assign-partition"],
  ["client delete", "change", "client-delete"],
  ["client fingerprint", "read", "client-fingerprint"],
  ["client list", "read", "client-list"],
  ["client register", "change", "client-register"],
  ["client revokePartition", "change"],
  ["client show", "read", "client-show"],
  ["client hostip show", "read"],
  ...group("client hostip", "change", "map", "unmap"),
  ["exit", "read"],
  ["help", "read"],
  ...group("hsm", "destructive", "factoryReset", "init", "rollbackFW", "zeroize"),
  ["hsm login", "login", "hsm-login"],
  ["hsm show", "read", "hsm-show", ["sh"]],
  ["hsm showPolicies", "read", "hsm-show-policies"],
  ...group("hsm", "read", "checkCertificates", "displayLicenses", "information", "selfTest", "supportInfo"),
  ...group("hsm", "change", "changePolicy", "changePw", "fwUpgrade", "logout", "restart"),
  ["hsm ped show", "read"],
  ...group("hsm ped", "change", "connect", "disconnect", "timeout", "vector"),
  ["hsm stc status", "read"],
  ...group("hsm stc", "change", "disable", "enable"),
  ["my file list", "read"],
  ...group("my file", "change", "clear", "delete"),
  ...group("my password", "change", "expiry", "set"),
  ["my public-key list", "read"],
  ...group("my public-key", "change", "add", "clear", "delete"),
  ...group("network", "read", "ping", "show", "traceroute"),
  ...group("network", "destructive", "bonding", "dns", "domain", "hostname", "interface"),
  ["network route show", "read"],
  ...group("network route", "destructive", "add", "clear", "delete"),
  ["ntls bind", "change"],
  ["ntls show", "read", "ntls-show"],
  ["ntls threads", "read"],
  ["ntls information show", "read"],
  ["ntls ipcheck show", "read"],
  ...group("ntls ipcheck", "change", "disable", "enable"),
  ["ntls tcp_keepalive show", "read"],
  ["ntls tcp_keepalive set", "change"],
  ["ntls certificate show", "read"],
  ["ntls certificate monitor", "change"],
  ["package list", "read", "package-list"],
  ...group("package", "read", "listfile", "verify"),
  ...group("package", "change", "deletefile", "erase", "update"),
  ...group("partition", "destructive", "clear", "create", "delete", "init", "resetPw"),
  ["partition list", "read", "partition-list"],
  ["partition login", "login"],
  ["partition show", "read", "partition-show", ["sh"]],
  ...group("partition", "read", "showContents", "showPolicies"),
  ...group("partition", "change", "archive", "changePolicy"),
  ...group("service", "read", "list", "status"),
  ...group("service", "change", "restart", "start", "stop"),
  ...group(
    "status",
    "read",
    "date",
    "disk",
    "interface",
    "mac",
    "netstat",
    "ps",
    "sensors",
    "time",
    "version",
  ),
  ["status sysstat show", "read"],
  ["sysconf appliance poweroff", "destructive"],
  ...group("sysconf appliance", "change", "hardreboot", "reboot", "rebootonpanic"),
  ...group("sysconf appliance", "read", "show", "version"),
  ...group("sysconf config", "destructive", "factoryReset", "import", "restore"),
  ...group("sysconf config", "read", "list", "show", "export"),
  ...group("sysconf config", "change", "backup", "clear", "delete"),
  ["sysconf regenCert", "change", "sysconf-regen-cert"],
  ...group("sysconf", "read", "fingerprint", "hwinfo"),
  ...group("sysconf", "change", "drift", "forceSOlogin", "ntp", "snmp", "time", "timezone"),
  ["sysconf ssh show", "read"],
  ...group("sysconf ssh", "destructive", "device", "ip", "password", "port", "publickey"),
  ["syslog tail", "read", "syslog-tail"],
  ...group("syslog", "read", "show", "export", "tarlogs"),
  ...group("syslog", "change", "cleanup", "period", "rotate", "rotations", "severity"),
  ["syslog remotehost list", "read"],
  ...group("syslog remotehost", "change", "add", "delete"),
  ...group("token backup", "destructive", "factoryReset", "init", "partition"),
  ["token backup login", "login"],
  ...group("token backup", "read", "list", "show"),
  ["token backup logout", "change"],
  ["user delete", "destructive"],
  ["user list", "read", "user-list"],
  ["user show", "read"],
  ...group("user", "change", "add", "disable", "enable", "password", "radiusAdd"),
  ...group("user role", "change", "add", "delete"),
  ["webserver show", "read"],
  ...group("webserver", "change", "bind", "certificate", "disable", "enable"),
];

const LUNACM: Spec[] = [
  ["audit init", "destructive"],
  ["audit login", "login"],
  ["audit show", "read"],
  ...group("audit", "change", "changepw", "config", "export", "import", "logout", "time"),
  ...group("clientconfig", "read", "listcred", "listservers", "verify"),
  ...group("clientconfig", "change", "deploy", "restart"),
  ["exit", "read"],
  ["help", "read"],
  ["quit", "read"],
  ["hagroup listgroups", "read", "hagroup-listgroups"],
  ["hagroup synchronize", "change", "hagroup-synchronize"],
  ["hagroup recover", "change", "hagroup-recover"],
  ["hagroup retry", "change", "hagroup-retry"],
  ["hagroup interval", "change", "hagroup-interval"],
  ["hagroup halog", "read"],
  ...group(
    "hagroup",
    "change",
    "addmember",
    "addstandby",
    "creategroup",
    "deletegroup",
    "haonly",
    "recoverymode",
    "removemember",
    "removestandby",
  ),
  ...group("hsm", "destructive", "changehsmpolicy", "factoryReset", "init", "zeroize"),
  ...group("hsm", "read", "information", "showinfo", "showpolicies"),
  ...group("partition", "destructive", "changepw", "clear", "create", "delete", "init"),
  ["partition login", "login"],
  ["partition showinfo", "read", "partition-showinfo", ["si"]],
  ...group("partition", "read", "contents", "list", "showpolicies"),
  ...group("partition", "change", "archive", "changepolicy", "logout"),
  ...group("role", "destructive", "changepw", "deactivate", "init", "resetpw"),
  ["role login", "login", "role-login"],
  ["role logout", "change", "role-logout"],
  ["role show", "read", "role-show"],
  ["role list", "read"],
  ["role setdomain", "change"],
  ["slot list", "read", "slot-list"],
  ["slot set", "change", "slot-set"],
  ...group("slot", "read", "partitionlist"),
  ["slot configset", "change"],
  ["stc status", "read"],
  ...group("stc", "change", "disable", "enable"),
];

/** A client host's OS shell runs only these; anything else is refused there. */
const HOST: Spec[] = [
  ["exit", "read"],
  /** Started interactively, so every lunacm command passes the lunacm vocabulary and policy. */
  ["lunacm", "read"],
  ["vtl addServer", "change", "vtl-add-server"],
  ["vtl deleteServer", "change", "vtl-delete-server"],
  ["vtl createcert", "change"],
  ["vtl fingerprint", "read"],
  ["vtl listServers", "read", "vtl-list-servers"],
  ["vtl listslots", "read"],
  ["vtl verify", "read", "vtl-verify"],
];

const entriesOf = (shell: Shell, specs: Spec[]): CommandEntry[] =>
  specs.map(([words, cls, parser, aliases]) => ({
    shell,
    words,
    class: cls,
    aliases: aliases ?? [],
    parser,
  }));

/** The whole vocabulary, one entry per command. */
export const VOCABULARY: readonly CommandEntry[] = [
  ...entriesOf("lunash", LUNASH),
  ...entriesOf("lunacm", LUNACM),
  ...entriesOf("host", HOST),
];

// ---------------------------------------------------------------------------------------------------------------
// Resolution

interface Node {
  name: string;
  aliases: readonly string[];
  /** Leaf: the command. Group: undefined (its children follow). */
  entry: CommandEntry | undefined;
  children: Node[];
}

function buildTree(shell: Shell): Node[] {
  const root: Node[] = [];
  for (const entry of VOCABULARY.filter((e) => e.shell === shell)) {
    let level = root;
    const words = entry.words.split(" ");
    words.forEach((word, i) => {
      let node = level.find((n) => n.name === word);
      const leaf = i === words.length - 1;
      if (!node) {
        node = { name: word, aliases: leaf ? entry.aliases : [], entry: undefined, children: [] };
        level.push(node);
      }
      if (leaf) {
        if (node.entry || node.children.length > 0) throw new Error(`vocabulary: '${entry.words}' twice`);
        node.entry = entry;
      } else if (node.entry) throw new Error(`vocabulary: '${entry.words}' extends the leaf '${node.name}'`);
      level = node.children;
    });
  }
  return root;
}

const TREES: Record<Shell, Node[]> = {
  lunash: buildTree("lunash"),
  lunacm: buildTree("lunacm"),
  host: buildTree("host"),
};

/** Hosts take tool subcommands spelled out: a prefix there could run something nobody reviewed. */
const EXACT_ONLY: Record<Shell, boolean> = { lunash: false, lunacm: false, host: true };

export interface Reading {
  /** Canonical words as far as they resolve; an unknown word appears as `?word` and ends the path. */
  path: string[];
  /** The words after the path (options and values). */
  args: string[];
  /** The command, when the path reached one. */
  entry: CommandEntry | undefined;
}

/**
 * Every canonical reading of a command line's words. More than one means an ambiguous abbreviation (the policy then
 * refuses if any reading is refused, because the device might pick that one). Options start at the first `-` word.
 */
export function readings(shell: Shell, words: readonly string[]): Reading[] {
  const walk = (nodes: Node[], rest: readonly string[], path: string[]): Reading[] => {
    const [w, ...tail] = rest;
    if (w === undefined || nodes.length === 0 || w.startsWith("-"))
      return [{ path, args: [...rest], entry: undefined }];
    const lw = w.toLowerCase();
    const exact = nodes.filter(
      (n) => n.name.toLowerCase() === lw || n.aliases.some((a) => a.toLowerCase() === lw),
    );
    const candidates =
      exact.length > 0 || EXACT_ONLY[shell]
        ? exact
        : nodes.filter((n) => n.name.toLowerCase().startsWith(lw));
    if (candidates.length === 0) return [{ path: [...path, `?${w}`], args: [...tail], entry: undefined }];
    return candidates.flatMap((n) =>
      n.entry
        ? [{ path: [...path, n.name], args: [...tail], entry: n.entry }]
        : walk(n.children, tail, [...path, n.name]),
    );
  };
  return walk(TREES[shell], words, []);
}

/** Split a command line into words (Luna's shell has no quoting beyond plain words and double quotes). */
export function splitWords(command: string): string[] {
  const out: string[] = [];
  const re = /"([^"]*)"|(\S+)/g;
  for (let m = re.exec(command); m !== null; m = re.exec(command)) out.push(m[1] ?? m[2] ?? "");
  return out;
}

/**
 * The command words of a command line, options and their values left out. Reasons and messages quote only this:
 * option values can be secrets (`hsm login -password …`, `-domain …`, `package update … -authcode …`).
 */
export function commandWords(commandLine: string): string {
  const words: string[] = [];
  for (const word of commandLine.trim().split(/\s+/)) {
    if (word === "" || word.startsWith("-")) break;
    words.push(word);
  }
  return words.join(" ");
}

export type Resolution = { ok: true; canonical: string; entry: CommandEntry } | { ok: false; reason: string };

/** Resolve a command line (options included) to exactly one known command, or say why it cannot be. */
export function resolveCommand(shell: Shell, commandLine: string): Resolution {
  const words = commandLine.trim().split(/\s+/).filter(Boolean);
  const what = `${shell} command '${commandWords(commandLine)}'`;
  if (words.length === 0 || words[0]?.startsWith("-")) return { ok: false, reason: `empty ${shell} command` };
  const all = readings(shell, words);
  if (all.length > 1) {
    // Say where the ambiguity is: the first word position where the readings part.
    const at = all[0]!.path.findIndex((w, i) => all.some((r) => r.path[i] !== w));
    const choices = [...new Set(all.map((r) => r.path[at]))].join(", ");
    return { ok: false, reason: `${what}: '${words[at]}' is ambiguous (${choices})` };
  }
  const r = all[0]!;
  const unknown = r.path.find((w) => w.startsWith("?"));
  if (unknown) return { ok: false, reason: `${what}: '${unknown.slice(1)}' is not a known word here` };
  if (!r.entry) return { ok: false, reason: `${what} is incomplete (after '${r.path.join(" ")}')` };
  return { ok: true, canonical: r.entry.words, entry: r.entry };
}

/** The entry of a canonical command, if known. */
export function findCommand(shell: Shell, canonical: string): CommandEntry | undefined {
  return VOCABULARY.find((e) => e.shell === shell && e.words.toLowerCase() === canonical.toLowerCase());
}
