// The canonical command trees of lunash and lunacm, used to normalise what a step types. Luna accepts any
// unambiguous prefix of each word, case-insensitively (`hsm zer`, `sysc conf fact`, `par sh`), so the command policy
// must see the canonical words behind an abbreviation before it decides. The trees list every command the deny
// rules name, plus the everyday ones, so that an abbreviation resolves the way the device would resolve it.
// A node is either a subtree or `null` (a leaf: the words after it are arguments).

export type CommandTree = { [word: string]: CommandTree | null };

const leaves = (...words: string[]): CommandTree => Object.fromEntries(words.map((w) => [w, null]));

export const lunashTree: CommandTree = {
  audit: leaves(
    "changePw",
    "config",
    "export",
    "import",
    "init",
    "login",
    "logout",
    "remotehost",
    "secret",
    "show",
    "sync",
    "time",
    "verify",
  ),
  client: {
    ...leaves("assignPartition", "delete", "fingerprint", "list", "register", "revokePartition", "show"),
    hostip: leaves("map", "show", "unmap"),
  },
  exit: null,
  help: null,
  hsm: {
    ...leaves(
      "changePolicy",
      "changePw",
      "checkCertificates",
      "displayLicenses",
      "factoryReset",
      "fwUpgrade",
      "information",
      "init",
      "login",
      "logout",
      "restart",
      "rollbackFW",
      "selfTest",
      "show",
      "showPolicies",
      "supportInfo",
      "zeroize",
    ),
    ped: leaves("connect", "disconnect", "show", "timeout", "vector"),
    stc: leaves("disable", "enable", "status"),
  },
  my: {
    file: leaves("clear", "delete", "list"),
    password: leaves("expiry", "set"),
    "public-key": leaves("add", "clear", "delete", "list"),
  },
  network: {
    ...leaves("bonding", "dns", "domain", "hostname", "interface", "ping", "show", "traceroute"),
    route: leaves("add", "clear", "delete", "show"),
  },
  ntls: {
    ...leaves("bind", "information", "ipcheck", "show", "tcp_keepalive", "threads"),
    certificate: leaves("monitor", "show"),
  },
  package: leaves("deletefile", "erase", "list", "listfile", "update", "verify"),
  partition: leaves(
    "archive",
    "changePolicy",
    "clear",
    "create",
    "delete",
    "init",
    "list",
    "login",
    "resetPw",
    "resize",
    "show",
    "showContents",
    "showPolicies",
  ),
  service: leaves("list", "restart", "start", "status", "stop"),
  status: leaves(
    "date",
    "disk",
    "interface",
    "mac",
    "netstat",
    "ps",
    "sensors",
    "sysstat",
    "time",
    "version",
  ),
  sysconf: {
    appliance: leaves("hardreboot", "poweroff", "reboot", "rebootonpanic", "show"),
    config: leaves(
      "backup",
      "clear",
      "delete",
      "export",
      "factoryReset",
      "import",
      "list",
      "restore",
      "show",
    ),
    ...leaves(
      "drift",
      "fingerprint",
      "forceSOlogin",
      "hwinfo",
      "ntp",
      "regenCert",
      "snmp",
      "time",
      "timezone",
    ),
    ssh: leaves("device", "ip", "password", "port", "publickey", "show"),
  },
  syslog: leaves(
    "cleanup",
    "export",
    "period",
    "remotehost",
    "rotate",
    "rotations",
    "severity",
    "show",
    "tail",
    "tarlogs",
  ),
  token: { backup: leaves("factoryReset", "init", "list", "login", "logout", "partition", "show") },
  user: leaves("add", "delete", "disable", "enable", "list", "password", "radiusAdd", "role", "show"),
  webserver: leaves("bind", "certificate", "disable", "enable", "show"),
};

export const lunacmTree: CommandTree = {
  audit: leaves("changepw", "config", "export", "import", "init", "login", "logout", "show", "time"),
  clientconfig: leaves("deploy", "listcred", "listservers", "restart", "verify"),
  exit: null,
  hagroup: leaves(
    "addmember",
    "addstandby",
    "creategroup",
    "deletegroup",
    "halog",
    "haonly",
    "interval",
    "listgroups",
    "recover",
    "recoverymode",
    "removemember",
    "removestandby",
    "retry",
    "synchronize",
  ),
  help: null,
  hsm: leaves(
    "changehsmpolicy",
    "factoryReset",
    "init",
    "information",
    "showinfo",
    "showpolicies",
    "zeroize",
  ),
  partition: leaves(
    "archive",
    "changepolicy",
    "changepw",
    "clear",
    "contents",
    "create",
    "delete",
    "init",
    "list",
    "login",
    "logout",
    "showinfo",
    "showpolicies",
  ),
  quit: null,
  role: leaves("changepw", "deactivate", "init", "list", "login", "logout", "resetpw", "setdomain", "show"),
  slot: leaves("configset", "list", "partitionlist", "set"),
  stc: leaves("disable", "enable", "status"),
};

/** On a client host's OS shell only these programs may be started. */
export const hostTree: CommandTree = { exit: null, lunacm: null, vtl: null };

export interface Resolution {
  /** Canonical words (original case of the tree); an unknown word appears as `?word`. */
  path: string[];
  /** Words after the resolved command (options and values). */
  args: string[];
}

/**
 * Every canonical reading of `words`. More than one means the abbreviation is ambiguous; the policy then refuses if
 * any reading is refused (fail closed), because the device might pick that one.
 */
export function resolveCommand(words: string[], tree: CommandTree | null): Resolution[] {
  const [w, ...rest] = words;
  if (w === undefined || tree === null || w.startsWith("-")) return [{ path: [], args: words }];
  const lw = w.toLowerCase();
  const keys = Object.keys(tree);
  const exact = keys.find((k) => k.toLowerCase() === lw);
  const candidates = exact !== undefined ? [exact] : keys.filter((k) => k.toLowerCase().startsWith(lw));
  if (candidates.length === 0) return [{ path: [`?${w}`], args: rest }];
  return candidates.flatMap((c) =>
    resolveCommand(rest, tree[c] ?? null).map((r) => ({ path: [c, ...r.path], args: r.args })),
  );
}

/** Split a command line into words (Luna's shell has no quoting beyond plain words and double quotes). */
export function splitWords(command: string): string[] {
  const out: string[] = [];
  const re = /"([^"]*)"|(\S+)/g;
  for (let m = re.exec(command); m !== null; m = re.exec(command)) out.push(m[1] ?? m[2] ?? "");
  return out;
}
