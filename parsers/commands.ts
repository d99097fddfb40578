// The command words each shell knows, so that an operator's abbreviation (`hsm sh`, `par list`, `hsm showP`,
// `haGroup listGroups`) resolves to one canonical command before a parser is chosen. LunaSH and LunaCM accept any
// unambiguous prefix, case-insensitively; a few short forms are explicit aliases on the device (`hsm sh` is `hsm show`
// even though `hsm showPolicies` shares the prefix; `par si` is `partition showinfo`).
//
// The verb lists name every verb of a group that the reference knows, not only the parsed ones: a prefix is resolved
// against the whole group, so `hsm sho` stays ambiguous instead of being guessed.
import type { Shell } from "./common.ts";

interface WordNode {
  name: string;
  aliases?: readonly string[];
  children?: readonly WordNode[];
}

const leaf = (name: string, ...aliases: string[]): WordNode => ({ name, aliases });
const group = (name: string, children: WordNode[], ...aliases: string[]): WordNode => ({
  name,
  aliases,
  children,
});

const LUNASH: readonly WordNode[] = [
  group("hsm", [
    leaf("show", "sh"),
    leaf("showPolicies"),
    leaf("changePolicy"),
    leaf("login"),
    leaf("logout"),
    leaf("init"),
    leaf("zeroize"),
    leaf("factoryReset"),
    leaf("supportInfo"),
    leaf("restart"),
  ]),
  group("partition", [
    leaf("list"),
    leaf("show", "sh"),
    leaf("showContents"),
    leaf("create"),
    leaf("delete"),
    leaf("resetPw"),
  ]),
  group("package", [
    leaf("list"),
    leaf("listfile"),
    leaf("verify"),
    leaf("update"),
    leaf("deletefile"),
    leaf("erase"),
  ]),
  group("client", [
    leaf("list"),
    leaf("show"),
    leaf("fingerprint"),
    leaf("register"),
    leaf("assignPartition"),
    leaf("revokePartition"),
    leaf("delete"),
    group("hostip", [leaf("map"), leaf("unmap")]),
  ]),
  group("user", [
    leaf("list"),
    leaf("add"),
    leaf("delete"),
    leaf("enable"),
    leaf("disable"),
    leaf("password"),
    group("role", [leaf("add"), leaf("delete")]),
  ]),
  group("ntls", [
    leaf("show"),
    leaf("bind"),
    group("information", [leaf("show")]),
    group("certificate", [leaf("show")]),
    group("ipcheck", [leaf("show"), leaf("enable"), leaf("disable")]),
    group("tcp_keepalive", [leaf("set"), leaf("show")]),
  ]),
  group("syslog", [
    leaf("tail"),
    group("remotehost", [leaf("add"), leaf("delete"), leaf("list")]),
    leaf("rotate"),
    leaf("cleanup"),
    leaf("tarlogs"),
  ]),
  group("sysconf", [
    leaf("regenCert"),
    group("appliance", [leaf("reboot"), leaf("poweroff"), leaf("version")]),
    leaf("time"),
    leaf("ntp"),
    group("config", [leaf("factoryReset")]),
    leaf("ssh"),
  ]),
  group("status", [
    leaf("sensors"),
    group("sysstat", [leaf("show")]),
    leaf("disk"),
    leaf("interface"),
    leaf("date"),
    leaf("time"),
    leaf("version"),
  ]),
  group("network", [
    leaf("show"),
    leaf("interface"),
    group("route", [leaf("add"), leaf("delete"), leaf("show")]),
    leaf("hostname"),
    leaf("dns"),
  ]),
  group("service", [leaf("restart"), leaf("start"), leaf("stop"), leaf("status")]),
  group("audit", [leaf("login"), leaf("logout"), leaf("config"), leaf("show")]),
  group("my", [group("file", [leaf("list")]), group("password", [leaf("set")])]),
  group("token", [group("backup", [leaf("factoryReset")])]),
];

const LUNACM: readonly WordNode[] = [
  group("slot", [leaf("list"), leaf("set")]),
  group(
    "partition",
    [
      leaf("showinfo", "si"),
      leaf("showpolicies"),
      leaf("changepolicy"),
      leaf("init"),
      leaf("login"),
      leaf("logout"),
      leaf("show"),
    ],
    "par",
  ),
  group("role", [
    leaf("show"),
    leaf("list"),
    leaf("login"),
    leaf("logout"),
    leaf("init"),
    leaf("changepw"),
    leaf("resetpw"),
  ]),
  group("hagroup", [
    leaf("listgroups"),
    leaf("synchronize"),
    leaf("creategroup"),
    leaf("addmember"),
    leaf("removemember"),
    leaf("addstandby"),
    leaf("removestandby"),
    leaf("deletegroup"),
    leaf("recover"),
    leaf("retry"),
    leaf("interval"),
    leaf("recoverymode"),
    leaf("haonly"),
    leaf("halog"),
  ]),
  group("hsm", [leaf("showinfo")]),
  group("clientconfig", [leaf("deploy"), leaf("listservers"), leaf("verify")]),
  // vtl is its own client tool, not a LunaCM command, but it runs on the same client host.
  group("vtl", [
    leaf("listServers"),
    leaf("verify"),
    leaf("addServer"),
    leaf("deleteServer"),
    leaf("createcert"),
    leaf("fingerprint"),
    leaf("haAdmin"),
    leaf("listslots"),
  ]),
];

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

export type Resolution = { ok: true; canonical: string } | { ok: false; reason: string };

function pick(nodes: readonly WordNode[], word: string): WordNode | string {
  const w = word.toLowerCase();
  const exact = nodes.filter(
    (n) => n.name.toLowerCase() === w || (n.aliases ?? []).some((a) => a.toLowerCase() === w),
  );
  if (exact.length === 1 && exact[0]) return exact[0];
  const byPrefix = nodes.filter((n) => n.name.toLowerCase().startsWith(w));
  if (byPrefix.length === 1 && byPrefix[0]) return byPrefix[0];
  if (byPrefix.length > 1) return `'${word}' is ambiguous (${byPrefix.map((n) => n.name).join(", ")})`;
  return `'${word}' is not a known word here`;
}

/**
 * Resolve a command line (options included, e.g. `partition show -partition p1`) to its canonical command words
 * (`partition show`). Options start at the first word beginning with `-`.
 */
export function resolveCommand(shell: Shell, commandLine: string): Resolution {
  const words = commandLine.trim().split(/\s+/).filter(Boolean);
  const path: string[] = [];
  let nodes: readonly WordNode[] | undefined = shell === "lunash" ? LUNASH : LUNACM;
  for (const word of words) {
    if (!nodes) break;
    if (word.startsWith("-")) break;
    const found = pick(nodes, word);
    if (typeof found === "string")
      return { ok: false, reason: `${shell} command '${commandWords(commandLine)}': ${found}` };
    path.push(found.name);
    nodes = found.children;
  }
  if (path.length === 0) return { ok: false, reason: `empty ${shell} command` };
  if (nodes) {
    return {
      ok: false,
      reason: `${shell} command '${commandWords(commandLine)}' is incomplete (after '${path.join(" ")}')`,
    };
  }
  return { ok: true, canonical: path.join(" ") };
}
