// Over 400 lines: the twin's lunash command table, one short entry per command, found by lookup; one table keeps the
//  twin's vocabulary in one place.
// The lunash commands the twin implements, as a table of specs and handlers. A handler writes the command body
// (everything between the echoed command line and the `Command Result` footer) and returns the result code; the
// session adds the footer. Interactive steps (password prompts, `proceed` confirmations) go through `ctx.io.ask`.
import { generateSelfSignedCert, md5ColonFingerprint } from "../certs.ts";
import { type ApplianceState, attemptHsmSoLogin, hsmSoAttemptsLeft, zeroizeHsm } from "../state.ts";
import { findClient } from "./clients.ts";
import { type CommandSpec, CommandTable } from "./command-line.ts";
import { beginReboot } from "./power.ts";
import {
  renderClientList,
  renderClientShow,
  renderHsmShow,
  renderHsmShowPolicies,
  renderNtlsShow,
  renderPackageList,
  renderPartitionList,
  renderPartitionShow,
  renderUserList,
} from "./render.ts";
import {
  failedLine,
  LUNA_RET_SO_LOGIN_FAILURE_THRESHOLD,
  LUNA_RET_UM_PIN_INCORRECT,
  type LunaError,
  RC_OBJECT_NOT_IN_LIST,
  type ResultCode,
} from "./text.ts";

export interface CommandIO {
  /** Append command output ("\n" line ends). */
  write(text: string): void;
  /**
   * Write `promptText` (no newline) and read one line. The typed line is echoed (as `*` when `mask`), followed by
   * a newline. `null` when there is no answer: end of input, Ctrl-C, or a non-interactive session.
   */
  ask(promptText: string, opts?: { mask?: boolean }): Promise<string | null>;
}

export interface CommandContext {
  state: ApplianceState;
  user: string;
  session: number;
  /** Canonical command name, e.g. "hsm login" (what `Error:  '<cmd>' failed.` quotes). */
  canonical: string;
  options: Map<string, string | true>;
  io: CommandIO;
  /** How long a patched appliance takes to come back from a reboot. */
  bootMs: number;
  /** Validity of a certificate made by `sysconf regenCert` without `-days`. */
  regenCertDays: number;
}

export interface CommandOutcome {
  code: ResultCode;
  /** `exit`: the session ends without a footer; `reboot`: after the footer, then the appliance reboots. */
  after?: "exit" | "reboot";
}

export type Handler = (ctx: CommandContext) => Promise<CommandOutcome>;

const OK: CommandOutcome = { code: 0 };
const FAIL: CommandOutcome = { code: 65535 };

function opt(ctx: CommandContext, name: string): string | undefined {
  const v = ctx.options.get(name);
  return typeof v === "string" ? v : undefined;
}

function flag(ctx: CommandContext, name: string): boolean {
  return ctx.options.get(name) === true;
}

/** `Error:  '<cmd>' failed. (<code>)` + explanation lines, framed by the blank lines the appliance prints. */
function failWith(ctx: CommandContext, err: LunaError, ...explanation: string[]): CommandOutcome {
  // A line that starts with blanks continues the explanation above it (`        Use 'client list' ...`).
  const body = explanation.flatMap((e) => (/^\s/.test(e) ? [e] : ["", `Error:  ${e}`]));
  const lines = ["", failedLine(ctx.canonical, err), ...body, "", ""];
  ctx.io.write(lines.join("\n") + "\n");
  return FAIL;
}

/** A shell-level error with no Luna return code (bad syntax, missing option, refused operation). */
function shellError(ctx: CommandContext, ...explanation: string[]): CommandOutcome {
  const body = explanation.map((e) => (/^\s{4,}/.test(e) ? e : `Error:  ${e}`));
  ctx.io.write(["", ...body, "", ""].join("\n") + "\n");
  return FAIL;
}

function success(ctx: CommandContext, ...extra: string[]): CommandOutcome {
  ctx.io.write(["", `'${ctx.canonical}' successful.`, ...extra, ""].join("\n") + "\n");
  return OK;
}

function aborted(ctx: CommandContext): CommandOutcome {
  ctx.io.write("\nCommand Aborted.\n\n");
  return FAIL;
}

function requireOption(ctx: CommandContext, name: string): string | CommandOutcome {
  const v = opt(ctx, name);
  if (v === undefined || v === "") return shellError(ctx, `'${ctx.canonical}' requires the -${name} option.`);
  return v;
}

/** The CAUTION block of destructive commands, then the literal `proceed` (anything else aborts). `-force` skips. */
async function confirm(ctx: CommandContext, question: string[], action: string): Promise<boolean> {
  if (flag(ctx, "force")) return true;
  const [first, ...rest] = question;
  const lines = [
    "",
    `CAUTION:  ${first ?? ""}`,
    ...rest.map((l) => `            ${l}`),
    "",
    `          Type 'proceed' to ${action}, or 'quit'`,
    "          to quit now.",
  ];
  ctx.io.write(lines.join("\n") + "\n");
  const answer = await ctx.io.ask("          > ");
  return answer?.trim() === "proceed";
}

function requireSoLogin(ctx: CommandContext): CommandOutcome | undefined {
  if (ctx.state.soLoggedIn) return undefined;
  return shellError(
    ctx,
    `'${ctx.canonical}' requires the HSM Administrator to be logged in. Use 'hsm login' first.`,
  );
}

// ---------------------------------------------------------------------------------------------------- hsm ----

const hsmShow: Handler = async (ctx) => {
  ctx.io.write(renderHsmShow(ctx.state));
  return OK;
};

const hsmShowPolicies: Handler = async (ctx) => {
  ctx.io.write(renderHsmShowPolicies(ctx.state));
  return OK;
};

const TWO_LEFT = [
  "",
  "Caution:  You have only TWO HSM Admin logins attempts left (including",
  "          this one). If you fail two more consecutive login attempts",
  "          (i.e. with no successful logins in between) the HSM will",
  "          be ZEROIZED!!!",
];

const LAST_LEFT = [
  "",
  "Caution:  This is your LAST available HSM Admin login attempt.",
  "          If the wrong HSM Admin password is provided the HSM will",
  "          be ZEROIZED!!!",
  "",
  "          Type 'proceed' if you are certain you have the right",
  "          HSM Admin login credentials or 'quit' to quit now.",
];

const hsmLogin: Handler = async (ctx) => {
  const s = ctx.state;
  if (s.zeroized) {
    return shellError(
      ctx,
      "  The HSM is in the factory reset (zeroized) state.",
      "  Use 'hsm init' to initialize the HSM before logging in.",
    );
  }
  const left = hsmSoAttemptsLeft(s);
  if (left === 2) ctx.io.write(TWO_LEFT.join("\n") + "\n");
  if (left === 1) {
    ctx.io.write(LAST_LEFT.join("\n") + "\n");
    const answer = await ctx.io.ask("          > ");
    // Anything but the literal word aborts, and an aborted login is not an attempt: the counter stays.
    if (answer?.trim() !== "proceed") return aborted(ctx);
  }
  let password = opt(ctx, "password");
  if (password === undefined) {
    ctx.io.write("\n  Please enter the HSM Administrators' password:\n");
    const typed = await ctx.io.ask("  > ", { mask: true });
    if (typed === null) return aborted(ctx);
    password = typed;
  }
  // Pressing Enter with no input is not a login attempt (Luna 7 does not count it).
  if (password === "") return shellError(ctx, "No password was entered; no login attempt was made.");
  const outcome = attemptHsmSoLogin(s, password);
  switch (outcome) {
    case "success":
      return success(ctx);
    case "wrong":
      return failWith(ctx, LUNA_RET_UM_PIN_INCORRECT);
    case "zeroized-now":
      ctx.io.write(
        [
          "",
          "",
          failedLine(ctx.canonical, LUNA_RET_SO_LOGIN_FAILURE_THRESHOLD),
          "",
          "Error:    The HSM is in the factory reset (zeroized) state.",
          "",
          "",
        ].join("\n") + "\n",
      );
      // The appliance really reports success here (reference §3.4): parsers must look for the Error: lines.
      return OK;
    case "already-zeroized":
      return shellError(ctx, "  The HSM is in the factory reset (zeroized) state.");
  }
};

const hsmLogout: Handler = async (ctx) => {
  ctx.state.soLoggedIn = false;
  return success(ctx);
};

async function askTwice(
  ctx: CommandContext,
  what: string,
  again: string,
): Promise<string | null | "mismatch"> {
  ctx.io.write(`\n  ${what}\n`);
  const first = await ctx.io.ask("  > ", { mask: true });
  if (first === null) return null;
  ctx.io.write(`\n  ${again}\n`);
  const second = await ctx.io.ask("  > ", { mask: true });
  if (second === null) return null;
  return first === second ? first : "mismatch";
}

const hsmInit: Handler = async (ctx) => {
  const s = ctx.state;
  const label = requireOption(ctx, "label");
  if (typeof label !== "string") return label;
  if (!s.zeroized) {
    // Soft init of an initialized HSM: only the SO may do it; partitions go, SO password and domain stay.
    const refused = requireSoLogin(ctx);
    if (refused) return refused;
    if (
      !(await confirm(
        ctx,
        ["Are you sure you wish to re-initialize this HSM?", "All partitions and data will be erased."],
        "re-initialize the HSM",
      ))
    )
      return aborted(ctx);
    zeroizeHsm(s);
    s.zeroized = false;
    s.label = label;
    s.soLoggedIn = false;
    return success(ctx);
  }
  let password = opt(ctx, "password");
  if (password === undefined) {
    const pw = await askTwice(
      ctx,
      "Please enter a password for the HSM Administrator:",
      "Please re-enter password to confirm:",
    );
    if (pw === null) return aborted(ctx);
    if (pw === "mismatch") return shellError(ctx, "The passwords do not match.");
    password = pw;
  }
  if (password.length < 8) return shellError(ctx, "The password must be at least 8 characters long.");
  if (!flag(ctx, "defaultdomain") && opt(ctx, "domain") === undefined) {
    const dom = await askTwice(
      ctx,
      "Please enter a cloning domain to use for initializing this HSM:",
      "Please re-enter cloning domain to confirm:",
    );
    if (dom === null) return aborted(ctx);
    if (dom === "mismatch") return shellError(ctx, "The cloning domains do not match.");
  }
  if (!(await confirm(ctx, ["Are you sure you wish to initialize this HSM?"], "initialize the HSM")))
    return aborted(ctx);
  s.hsmSoPassword = password;
  s.label = label;
  s.zeroized = false;
  s.soFailures = 0;
  s.soLoggedIn = false;
  ctx.io.write(`'${ctx.canonical}' successful.\n\n`);
  return OK;
};

const hsmZeroize: Handler = async (ctx) => {
  const question = [
    "Are you sure you wish to zeroize this HSM?",
    "All partitions and their contents will be erased.",
  ];
  if (!(await confirm(ctx, question, "zeroize the HSM"))) return aborted(ctx);
  zeroizeHsm(ctx.state);
  return success(ctx);
};

const hsmFactoryReset: Handler = async (ctx) =>
  shellError(
    ctx,
    `'${ctx.canonical}' can only be run from a local serial (console) connection.`,
    "        It is not available over SSH.",
  );

// ----------------------------------------------------------------------------------------------- partition ----

const partitionList: Handler = async (ctx) => {
  ctx.io.write(renderPartitionList(ctx.state));
  return OK;
};

const partitionShow: Handler = async (ctx) => {
  const s = ctx.state;
  const wanted = opt(ctx, "partition");
  const parts = wanted === undefined ? s.partitions : s.partitions.filter((p) => p.label === wanted);
  if (wanted !== undefined && parts.length === 0)
    return failWith(ctx, RC_OBJECT_NOT_IN_LIST, `The partition '${wanted}' does not exist.`);
  if (parts.length === 0) {
    ctx.io.write("\n   There are no partitions.\n\n\n");
    return OK;
  }
  ctx.io.write(`\n${parts.map(renderPartitionShow).join("\n")}\n\n`);
  return OK;
};

const partitionDelete: Handler = async (ctx) => {
  const s = ctx.state;
  const name = requireOption(ctx, "partition");
  if (typeof name !== "string") return name;
  const refused = requireSoLogin(ctx);
  if (refused) return refused;
  const idx = s.partitions.findIndex((p) => p.label === name);
  if (idx === -1) return failWith(ctx, RC_OBJECT_NOT_IN_LIST, `The partition '${name}' does not exist.`);
  if (
    !(await confirm(
      ctx,
      ["Are you sure you wish to delete the partition named:", name],
      "delete the partition",
    ))
  )
    return aborted(ctx);
  s.partitions.splice(idx, 1);
  for (const c of s.clients.values()) c.partitions = c.partitions.filter((p) => p !== name);
  return success(ctx);
};

// ------------------------------------------------------------------------------------------------- client ----

function clientNotFound(ctx: CommandContext): CommandOutcome {
  return failWith(
    ctx,
    RC_OBJECT_NOT_IN_LIST,
    "The client you specified does not exist.",
    "        Use 'client list' to list all available clients.",
  );
}

const clientList: Handler = async (ctx) => {
  ctx.io.write(renderClientList(ctx.state));
  return OK;
};

const clientShow: Handler = async (ctx) => {
  const name = requireOption(ctx, "client");
  if (typeof name !== "string") return name;
  const c = findClient(ctx.state, name);
  if (!c) return clientNotFound(ctx);
  ctx.io.write(renderClientShow(c));
  return OK;
};

const clientFingerprint: Handler = async (ctx) => {
  const name = requireOption(ctx, "client");
  if (typeof name !== "string") return name;
  const c = findClient(ctx.state, name);
  if (!c) return clientNotFound(ctx);
  ctx.io.write(`\nCertificate fingerprint: ${md5ColonFingerprint(c.certPem)}\n\n`);
  return OK;
};

const clientRegister: Handler = async (ctx) => {
  const s = ctx.state;
  const name = requireOption(ctx, "client");
  if (typeof name !== "string") return name;
  const host = opt(ctx, "hostname") ?? opt(ctx, "ip");
  if (!host) return shellError(ctx, `'${ctx.canonical}' requires -hostname or -ip.`);
  if (s.clients.has(name)) return shellError(ctx, `A client named '${name}' is already registered.`);
  // The client's certificate must first be copied to the appliance (scp <host>.pem admin@hsm:).
  const certPem = s.scpFiles.get(`${host}.pem`) ?? s.scpFiles.get(`${name}.pem`);
  if (!certPem)
    return shellError(
      ctx,
      `Unable to find the certificate file '${host}.pem'.`,
      "        Use 'scp' to copy the client certificate to the appliance first.",
    );
  s.clients.set(name, { name, hostname: host, certPem, partitions: [] });
  return success(ctx);
};

function clientPartitionChange(kind: "assign" | "revoke"): Handler {
  return async (ctx) => {
    const s = ctx.state;
    const name = requireOption(ctx, "client");
    if (typeof name !== "string") return name;
    const partition = requireOption(ctx, "partition");
    if (typeof partition !== "string") return partition;
    const c = findClient(s, name);
    if (!c) return clientNotFound(ctx);
    const has = c.partitions.includes(partition);
    if (kind === "assign") {
      if (!s.partitions.some((p) => p.label === partition))
        return failWith(ctx, RC_OBJECT_NOT_IN_LIST, `The partition '${partition}' does not exist.`);
      if (has) return shellError(ctx, `Partition '${partition}' is already assigned to client '${name}'.`);
      c.partitions.push(partition);
    } else {
      if (!has)
        return failWith(
          ctx,
          RC_OBJECT_NOT_IN_LIST,
          `Partition '${partition}' is not assigned to client '${name}'.`,
        );
      c.partitions = c.partitions.filter((p) => p !== partition);
    }
    return success(ctx);
  };
}

const clientDelete: Handler = async (ctx) => {
  const name = requireOption(ctx, "client");
  if (typeof name !== "string") return name;
  if (!findClient(ctx.state, name)) return clientNotFound(ctx);
  if (!(await confirm(ctx, ["Are you sure you wish to delete client named:", name], "delete the client")))
    return aborted(ctx);
  ctx.state.clients.delete(name);
  return success(ctx);
};

// --------------------------------------------------------------------------------- user, package, ntls, log ----

const userList: Handler = async (ctx) => {
  ctx.io.write(renderUserList(ctx.state));
  return OK;
};

const packageList: Handler = async (ctx) => {
  ctx.io.write(renderPackageList(ctx.state));
  return OK;
};

const ntlsShow: Handler = async (ctx) => {
  ctx.io.write(renderNtlsShow(ctx.state));
  return OK;
};

const syslogTail: Handler = async (ctx) => {
  const logname = opt(ctx, "logname") ?? "messages";
  if (logname !== "messages") return shellError(ctx, `The log file '${logname}' does not exist.`);
  const entriesText = opt(ctx, "entries") ?? "20";
  const entries = Number(entriesText);
  if (!/^\d+$/.test(entriesText) || entries < 1)
    return shellError(ctx, `Invalid value for -entries: '${entriesText}'. It must be a positive number.`);
  const search = opt(ctx, "search");
  const lines = ctx.state.syslog.filter((l) => search === undefined || l.includes(search)).slice(-entries);
  ctx.io.write(`\n${lines.map((l) => `${l}\n`).join("")}\n`);
  return OK;
};

// ---------------------------------------------------------------------------------------------- sysconf ----

const sysconfRegenCert: Handler = async (ctx) => {
  const s = ctx.state;
  const daysText = opt(ctx, "days");
  const days = daysText === undefined ? ctx.regenCertDays : Number(daysText);
  if (!Number.isInteger(days) || days < 1) return shellError(ctx, `Invalid value for -days: '${daysText}'.`);
  if (!flag(ctx, "force")) {
    ctx.io.write(
      [
        "",
        "WARNING !!  This command will overwrite the current server certificate and private key.",
        "All clients will have to add this server again with this new certificate.",
        "If you are sure that you wish to proceed, then type 'proceed', otherwise type 'quit'",
        "",
      ].join("\n"),
    );
    const answer = await ctx.io.ask("> ");
    if (answer?.trim() !== "proceed") return aborted(ctx);
    ctx.io.write("Proceeding...\n");
  }
  const cert = await generateSelfSignedCert({
    commonName: s.hostname,
    validDays: days,
    altNames: [s.ntls.bindAddress].filter((a) => a && a !== s.hostname),
  });
  s.ntls.certPem = cert.certPem;
  s.ntls.keyPem = cert.keyPem;
  s.ntls.notAfter = cert.notAfter;
  s.ntls.certGeneration += 1;
  ctx.io.write(
    [
      "'sysconf regenCert' successful. NTLS must be (re)started before clients can connect.",
      "Please use the 'ntls show' command to ensure that NTLS is bound to an appropriate network device or IP address/hostname",
      "for the network device(s) NTLS should be active on. Use 'ntls bind' to change this binding if necessary.",
      "",
    ].join("\n") + "\n",
  );
  return OK;
};

const sysconfReboot: Handler = async (ctx) => {
  if (!(await confirm(ctx, ["Are you sure you wish to reboot the appliance?"], "reboot the appliance")))
    return aborted(ctx);
  ctx.io.write("\nThe system is going down for reboot NOW!\n\nReboot commencing\n\n");
  return { code: 0, after: "reboot" };
};

/** Called by the session after the reboot command's footer went out. */
export function rebootAppliance(ctx: Pick<CommandContext, "state" | "bootMs">): void {
  beginReboot(ctx.state, ctx.bootMs);
}

// ------------------------------------------------------------------------------------------------- misc ----

let table: CommandTable<Handler> | undefined;

const help: Handler = async (ctx) => {
  const names = lunashTable().commands();
  ctx.io.write(["", "Available commands:", "", ...names.map((n) => `  ${n}`), "", ""].join("\n") + "\n");
  return OK;
};

const exit: Handler = async () => ({ code: 0, after: "exit" });

const force = { name: "force", flag: true } as const;
const password = { name: "password", secret: true } as const;

const SPECS: CommandSpec<Handler>[] = [
  { words: ["hsm", "show"], aliases: ["sh"], options: [], handler: hsmShow },
  { words: ["hsm", "showPolicies"], options: [{ name: "exporttemplate" }], handler: hsmShowPolicies },
  { words: ["hsm", "login"], options: [password], handler: hsmLogin },
  { words: ["hsm", "logout"], options: [], handler: hsmLogout },
  {
    words: ["hsm", "init"],
    options: [
      { name: "label" },
      password,
      { name: "domain", secret: true },
      { name: "defaultdomain", flag: true },
      force,
    ],
    handler: hsmInit,
  },
  { words: ["hsm", "zeroize"], options: [force], handler: hsmZeroize },
  { words: ["hsm", "factoryReset"], options: [force], handler: hsmFactoryReset },
  { words: ["partition", "list"], options: [], handler: partitionList },
  { words: ["partition", "show"], aliases: ["sh"], options: [{ name: "partition" }], handler: partitionShow },
  { words: ["partition", "delete"], options: [{ name: "partition" }, force], handler: partitionDelete },
  { words: ["package", "list"], options: [], handler: packageList },
  { words: ["client", "list"], options: [], handler: clientList },
  { words: ["client", "show"], options: [{ name: "client" }], handler: clientShow },
  { words: ["client", "fingerprint"], options: [{ name: "client" }], handler: clientFingerprint },
  {
    words: ["client", "register"],
    options: [{ name: "client" }, { name: "hostname" }, { name: "ip" }],
    handler: clientRegister,
  },
  {
    words: ["client", "assignPartition"],
    options: [{ name: "client" }, { name: "partition" }],
    handler: clientPartitionChange("assign"),
  },
  {
    words: ["client", "revokePartition"],
    options: [{ name: "client" }, { name: "partition" }],
    handler: clientPartitionChange("revoke"),
  },
  { words: ["client", "delete"], options: [{ name: "client" }, force], handler: clientDelete },
  { words: ["user", "list"], options: [], handler: userList },
  { words: ["ntls", "show"], options: [], handler: ntlsShow },
  {
    words: ["syslog", "tail"],
    options: [{ name: "logname" }, { name: "entries" }, { name: "search" }],
    handler: syslogTail,
  },
  { words: ["sysconf", "regenCert"], options: [{ name: "days" }, force], handler: sysconfRegenCert },
  { words: ["sysconf", "appliance", "reboot"], options: [force], handler: sysconfReboot },
  { words: ["help"], options: [], handler: help },
  { words: ["exit"], options: [], handler: exit },
];

export function lunashTable(): CommandTable<Handler> {
  table ??= new CommandTable(SPECS);
  return table;
}
