import {
  attemptPartitionLogin,
  type PartitionRole,
  type PartitionState,
  partitionAttemptsLeft,
  type RoleLoginOutcome,
} from "../state.ts";
import { intOption, matchName, type OptionSpec, parseOptions, tokenize } from "./args.ts";
import {
  type ClientHostModel,
  type HaGroupState,
  type HaMemberState,
  LINK_FAULT_TEXT,
  type SlotTarget,
} from "./model.ts";
import {
  CKR,
  type Footer,
  haGroupBlock,
  OK,
  renderCommandOutput,
  slotListing,
  slotSummary,
} from "./render.ts";

/** A command either finishes, or needs a password first (interactive prompt; `null` = no input / cancelled). */
export type CommandStep =
  | { kind: "done"; body: string[]; footer: Footer }
  | { kind: "password"; prompt: string; resume(password: string | null): CommandStep };

export const PASSWORD_PROMPT = "Enter the password: ";

const done = (footer: Footer, body: string[] = []): CommandStep => ({ kind: "done", body, footer });
const failed = (footer: Footer, message: string): CommandStep => done(footer, [`Error: ${message}`]);

/** Ask for a password unless `-password` was given; an empty password is refused without counting an attempt. */
function withPassword(
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

type SlotRef = { kind: "partition"; device: string; label: string } | { kind: "ha"; label: string };

interface Subcommand {
  name: string;
  aliases?: readonly string[];
  run(session: LunacmSession, args: string[]): CommandStep;
}

interface CommandGroup {
  name: string;
  aliases?: readonly string[];
  subs: readonly Subcommand[];
}

const ROLE_NAMES: Record<PartitionRole, string> = {
  po: "Partition SO",
  so: "Partition SO",
  co: "Crypto Officer",
  cu: "Crypto User",
};

export class LunacmSession {
  private current: SlotRef | undefined;
  /** Roles this session logged in, per partition ("device/label"): logged out again when the session ends. */
  private readonly logins = new Map<string, { partition: PartitionState; role: PartitionRole }>();

  constructor(readonly model: ClientHostModel) {
    const first = model.slots()[0];
    this.current = first ? refOf(first) : undefined;
  }

  /** The interactive start: banner, `Available HSMs:` slot blocks, current slot. */
  banner(): string {
    this.model.noticeFailedMembers();
    const slots = this.model.slots();
    return [
      `lunacm (64-bit) v${this.model.version}. Copyright (c) 2024 Thales Group. All rights reserved.`,
      "",
      "",
      "        Available HSMs:",
      "",
      ...slotListing(this.model, slots, this.currentSlot(slots)?.id),
      "",
      "",
    ].join("\n");
  }

  /** Run one command line (without the `lunacm:>` prompt). */
  run(line: string): CommandStep {
    const tok = tokenize(line.trim(), { shellMeta: false });
    if (!tok.ok) return failed(CKR.argumentsBad, `cannot parse the command line (${tok.reason}).`);
    const [groupWord, subWord, ...args] = tok.tokens;
    if (groupWord === undefined) return done(OK);
    this.model.noticeFailedMembers();
    const group = matchName(groupWord, COMMANDS);
    if (!group) return done(CKR.unknownCommand);
    if (subWord === undefined)
      return failed(
        CKR.argumentsBad,
        `'${group.name}' needs a subcommand: ${group.subs.map((s) => s.name).join(", ")}.`,
      );
    const sub = matchName(subWord, group.subs);
    if (!sub) return done(CKR.unknownCommand);
    return sub.run(this, args);
  }

  /** Log out every role this session logged in (the session, and with it its PKCS#11 logins, is gone). */
  end(): void {
    for (const { partition, role } of this.logins.values())
      if (partition.loggedIn === role) partition.loggedIn = undefined;
    this.logins.clear();
  }

  currentSlot(slots = this.model.slots()): SlotTarget | undefined {
    const ref = this.current;
    if (!ref) return undefined;
    return slots.find((s) =>
      ref.kind === "ha"
        ? s.kind === "ha" && s.group.label === ref.label
        : s.kind === "partition" && s.device === ref.device && s.partition.label === ref.label,
    );
  }

  setCurrent(slot: SlotTarget): void {
    this.current = refOf(slot);
  }

  loginOf(device: string, label: string): PartitionRole | undefined {
    return this.logins.get(`${device}/${label}`)?.role;
  }

  recordLogin(device: string, partition: PartitionState, role: PartitionRole): void {
    this.logins.set(`${device}/${partition.label}`, { partition, role });
  }

  forgetLogin(device: string, partition: PartitionState): boolean {
    const key = `${device}/${partition.label}`;
    const had = this.logins.get(key);
    if (!had) return false;
    if (partition.loggedIn === had.role) partition.loggedIn = undefined;
    this.logins.delete(key);
    return true;
  }
}

function refOf(slot: SlotTarget): SlotRef {
  return slot.kind === "ha"
    ? { kind: "ha", label: slot.group.label }
    : { kind: "partition", device: slot.device, label: slot.partition.label };
}

function options(args: string[], spec: readonly OptionSpec[]): Map<string, string | true> | CommandStep {
  const parsed = parseOptions(args, spec);
  return parsed.ok ? parsed.values : failed(CKR.argumentsBad, parsed.error);
}

const isStep = (x: unknown): x is CommandStep =>
  typeof x === "object" &&
  x !== null &&
  !(x instanceof Map) &&
  ((x as { kind?: unknown }).kind === "done" || (x as { kind?: unknown }).kind === "password");

/** The outcome of one role login attempt as lunacm reports it. */
function loginFooter(outcome: RoleLoginOutcome, role: PartitionRole): CommandStep {
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

// ---- slot -----------------------------------------------------------------------------------------------------

const slotList: Subcommand = {
  name: "list",
  aliases: ["l"],
  run(s, args) {
    const opts = options(args, []);
    if (isStep(opts)) return opts;
    const slots = s.model.slots();
    return done(OK, slotListing(s.model, slots, s.currentSlot(slots)?.id));
  },
};

const slotSet: Subcommand = {
  name: "set",
  aliases: ["s"],
  run(s, args) {
    const opts = options(args, [{ name: "slot", kind: "value" }]);
    if (isStep(opts)) return opts;
    const n = intOption(opts.get("slot"), "slot", 0, 10_000);
    if (!n.ok) return failed(CKR.argumentsBad, n.error);
    const slot = s.model.slots().find((x) => x.id === n.value);
    if (!slot) return failed(CKR.slotIdInvalid, `slot ${n.value} does not exist.`);
    s.setCurrent(slot);
    return done(OK, [`        Current Slot Id: ${slot.id} (${slotSummary(slot)})`]);
  },
};

// ---- partition --------------------------------------------------------------------------------------------------

/** The current slot as a reachable partition, or the step that explains why not. */
function currentPartition(s: LunacmSession): Extract<SlotTarget, { kind: "partition" }> | CommandStep {
  const slots = s.model.slots();
  const slot = s.currentSlot(slots);
  if (!slot)
    return failed(
      CKR.tokenNotPresent,
      "the current slot is not available (no slot selected or its server is unreachable).",
    );
  if (slot.kind === "ha")
    return failed(CKR.functionNotSupported, "this command is not supported on an HA virtual slot.");
  return slot;
}

function attemptsText(partition: PartitionState, role: "so" | "co" | "cu"): string {
  const left = partitionAttemptsLeft(partition, role);
  if (role === "so")
    return partition.zeroized ? "0 (partition zeroized)" : `${left} before partition zeroization`;
  if (partition.coLockout === "permanent") return "0 (permanently locked out)";
  if (partition.coLockout === "locked") return "0 (locked out)";
  return `${left} before lockout`;
}

function lockedText(partition: PartitionState): string {
  return partition.coLockout === "permanent"
    ? "yes (permanent)"
    : partition.coLockout === "locked"
      ? "yes"
      : "no";
}

const partitionShowinfo: Subcommand = {
  name: "showinfo",
  aliases: ["si"],
  run(s, args) {
    const opts = options(args, []);
    if (isStep(opts)) return opts;
    const slot = currentPartition(s);
    if (isStep(slot)) return slot;
    const p = slot.partition;
    const loggedIn = s.loginOf(slot.device, p.label);
    const init = (r: "so" | "co" | "cu") => (p.passwords[r] !== undefined ? "yes" : "no");
    return done(OK, [
      `        Partition Label -> ${p.label}`,
      `        Partition Serial Number -> ${p.serial}`,
      `        Partition Status -> ${p.zeroized ? "Zeroized" : "L3 Device"}`,
      `        HSM Serial Number -> ${slot.appliance.serial}`,
      `        Firmware Version -> ${slot.appliance.firmware}`,
      `        Slot Id -> ${slot.id}`,
      `        Role Status -> ${loggedIn ? `${ROLE_NAMES[loggedIn]} logged in` : "none logged in"}`,
      "        Partition SO:",
      `                Initialized -> ${init("so")}`,
      `                Login Attempts Left -> ${attemptsText(p, "so")}`,
      "        Crypto Officer:",
      `                Initialized -> ${init("co")}`,
      `                Locked Out -> ${lockedText(p)}`,
      `                Login Attempts Left -> ${attemptsText(p, "co")}`,
      "        Crypto User:",
      `                Initialized -> ${init("cu")}`,
      ...(p.passwords.cu !== undefined
        ? [
            `                Locked Out -> ${lockedText(p)}`,
            `                Login Attempts Left -> ${attemptsText(p, "cu")}`,
          ]
        : []),
      "        Partition Storage:",
      `                Object Count:         ${p.objects}`,
    ]);
  },
};

// ---- role -------------------------------------------------------------------------------------------------------

function roleOption(raw: string | true | undefined): PartitionRole | CommandStep {
  if (typeof raw !== "string")
    return failed(CKR.argumentsBad, "Argument '-name' is required (po, so, co or cu).");
  const role = raw.toLowerCase();
  if (role === "po" || role === "so" || role === "co" || role === "cu") return role;
  return failed(CKR.argumentsBad, `role '${raw}' is not supported on this partition (po, so, co or cu).`);
}

const roleLogin: Subcommand = {
  name: "login",
  aliases: ["li"],
  run(s, args) {
    const opts = options(args, [
      { name: "name", aliases: ["n"], kind: "value" },
      { name: "password", aliases: ["p", "pw"], kind: "value" },
    ]);
    if (isStep(opts)) return opts;
    const role = roleOption(opts.get("name"));
    if (isStep(role)) return role;
    const slots = s.model.slots();
    const slot = s.currentSlot(slots);
    if (!slot) return failed(CKR.tokenNotPresent, "the current slot is not available.");
    // Targets: the partition, or every live member of the HA group (the HA library logs in to each).
    const targets =
      slot.kind === "partition"
        ? [{ device: slot.device, appliance: slot.appliance, partition: slot.partition }]
        : liveMembers(s.model, slot.group, slots).map((m) => ({ device: m.member.device, ...m.state }));
    if (targets.length === 0) return failed(CKR.tokenNotPresent, "no member of the HA group is available.");
    if (targets.some((t) => s.loginOf(t.device, t.partition.label) !== undefined))
      return failed(
        CKR.userAlreadyLoggedIn,
        "a role is already logged in on this slot; use 'role logout' first.",
      );
    return withPassword(opts.get("password"), (password) => {
      for (const t of targets) {
        const outcome = attemptPartitionLogin(t.appliance, t.partition, role, password);
        if (outcome !== "success") return loginFooter(outcome, role);
        s.recordLogin(t.device, t.partition, role);
      }
      return done(OK);
    });
  },
};

const roleLogout: Subcommand = {
  name: "logout",
  aliases: ["lo"],
  run(s, args) {
    const opts = options(args, []);
    if (isStep(opts)) return opts;
    const slots = s.model.slots();
    const slot = s.currentSlot(slots);
    if (!slot) return failed(CKR.tokenNotPresent, "the current slot is not available.");
    const targets =
      slot.kind === "partition"
        ? [{ device: slot.device, partition: slot.partition }]
        : liveMembers(s.model, slot.group, slots).map((m) => ({
            device: m.member.device,
            partition: m.state.partition,
          }));
    let any = false;
    for (const t of targets) any = s.forgetLogin(t.device, t.partition) || any;
    return any ? done(OK) : done(CKR.userNotLoggedIn);
  },
};

const roleShow: Subcommand = {
  name: "show",
  aliases: ["sh"],
  run(s, args) {
    const opts = options(args, [{ name: "name", aliases: ["n"], kind: "value" }]);
    if (isStep(opts)) return opts;
    const role = roleOption(opts.get("name"));
    if (isStep(role)) return role;
    const slot = currentPartition(s);
    if (isStep(slot)) return slot;
    const p = slot.partition;
    const r = role === "po" ? "so" : role;
    const initialized = p.passwords[r] !== undefined;
    const locked = r !== "so" && p.coLockout !== "none";
    const status = p.zeroized
      ? "Zeroized"
      : !initialized
        ? "Not initialized"
        : locked
          ? "Locked out"
          : s.loginOf(slot.device, p.label) !== undefined && s.loginOf(slot.device, p.label) === role
            ? "Logged in"
            : "Not logged in";
    const lines = [
      `        Role:                   ${ROLE_NAMES[role]} (${role})`,
      `        Initialized:            ${initialized ? "yes" : "no"}`,
      `        Status:                 ${status}`,
    ];
    if (r !== "so")
      lines.push(`        Permanent Lockout:      ${p.coLockout === "permanent" ? "yes" : "no"}`);
    lines.push(`        Login Attempts Left:    ${partitionAttemptsLeft(p, r)}`);
    lines.push(`        Failed Login Count:     ${p.failures[r]}`);
    return done(OK, lines);
  },
};

// ---- hagroup ----------------------------------------------------------------------------------------------------

function liveMembers(model: ClientHostModel, group: HaGroupState, slots: SlotTarget[]) {
  const out: {
    member: HaMemberState;
    slot: number;
    state: NonNullable<ReturnType<ClientHostModel["memberPartition"]>>;
  }[] = [];
  for (const member of group.members) {
    if (member.down) continue;
    const slot = model.memberSlot(member, slots);
    const state = model.memberPartition(member);
    if (slot !== undefined && state) out.push({ member, slot, state });
  }
  return out;
}

function findGroup(
  s: LunacmSession,
  label: string | true | undefined,
  option: string,
): HaGroupState | CommandStep {
  if (typeof label !== "string") return failed(CKR.argumentsBad, `Argument '-${option}' is required.`);
  const group = s.model.haGroups.find((g) => g.label.toLowerCase() === label.toLowerCase());
  return group ?? failed(CKR.argumentsBad, `HA group '${label}' does not exist.`);
}

function needsSync(model: ClientHostModel, group: HaGroupState, slots: SlotTarget[]): boolean {
  const counts = new Set(liveMembers(model, group, slots).map((m) => m.state.partition.objects));
  return counts.size > 1;
}

/** The partition slot named by `-slot n` or `-serialnumber sn`. */
function memberSlotOption(
  s: LunacmSession,
  opts: Map<string, string | true>,
): Extract<SlotTarget, { kind: "partition" }> | CommandStep {
  const slots = s.model.slots();
  const rawSlot = opts.get("slot");
  const rawSerial = opts.get("serialnumber");
  if (rawSlot !== undefined && rawSerial !== undefined)
    return failed(CKR.argumentsBad, "give either -slot or -serialnumber, not both.");
  if (typeof rawSerial === "string") {
    const slot = slots.find((x) => x.kind === "partition" && x.partition.serial === rawSerial);
    if (slot?.kind === "partition") return slot;
    return failed(CKR.slotIdInvalid, `no available slot has serial number ${rawSerial}.`);
  }
  const n = intOption(rawSlot, "slot", 0, 10_000);
  if (!n.ok) return failed(CKR.argumentsBad, "Argument '-slot' or '-serialnumber' is required.");
  const slot = slots.find((x) => x.id === n.value);
  if (!slot) return failed(CKR.slotIdInvalid, `slot ${n.value} does not exist.`);
  if (slot.kind === "ha")
    return failed(CKR.slotIdInvalid, `slot ${n.value} is an HA virtual slot, not a partition.`);
  return slot;
}

/** A new, live HA member for the partition in `slot` (what creategroup and addmember record). */
function memberInSlot(slot: Extract<SlotTarget, { kind: "partition" }>): HaMemberState {
  return {
    device: slot.device,
    partition: slot.partition.label,
    serial: slot.partition.serial,
    down: false,
    recoverFails: false,
  };
}

function cloningWarning(slotA: number, slotB: number): string {
  return `Warning: Synchronize may fail.  The members in slot ${slotA} and slot ${slotB} have conflicting settings for private key cloning.`;
}

/** A CO login used only to authorize an HA operation: counts like any login, leaves nobody logged in. */
function authorizeCo(
  appliance: Parameters<typeof attemptPartitionLogin>[0],
  partition: PartitionState,
  password: string,
): RoleLoginOutcome {
  const before = partition.loggedIn;
  const outcome = attemptPartitionLogin(appliance, partition, "co", password);
  if (outcome === "success") partition.loggedIn = before;
  return outcome;
}

// [I] The reference (luna-cli.md §15) shows `listgroups` only with groups. The twin's statement for a client with no
// HA group is this one line (then the `No Error` footer); parsers/lunacm/hagroup-listgroups.ts accepts exactly it
// as "no groups" and nothing else. Change both together if a real client's capture shows other wording.
const NO_HA_GROUPS = "HA Group list is empty.";

const haListgroups: Subcommand = {
  name: "listgroups",
  aliases: ["lg", "list"],
  run(s, args) {
    const opts = options(args, [
      { name: "group", aliases: ["g"], kind: "value" },
      { name: "password", aliases: ["p"], kind: "value" },
    ]);
    if (isStep(opts)) return opts;
    let groups = s.model.haGroups;
    if (opts.has("group")) {
      const g = findGroup(s, opts.get("group"), "group");
      if (isStep(g)) return g;
      groups = [g];
    }
    if (groups.length === 0) return done(OK, [NO_HA_GROUPS]);
    const slots = s.model.slots();
    const body: string[] = [];
    for (const group of groups) {
      if (body.length > 0) body.push("");
      const groupSlot = slots.find((x) => x.kind === "ha" && x.group === group)?.id;
      const rows = group.members.map((m) => {
        const slot = s.model.memberSlot(m, slots);
        const label = s.model.memberPartition(m)?.partition.label ?? m.partition;
        const status: "alive" | "down" = m.down || slot === undefined ? "down" : "alive";
        return { slot, serial: m.serial, label, status };
      });
      body.push(...haGroupBlock(group, groupSlot, rows, needsSync(s.model, group, slots)));
    }
    return done(OK, body);
  },
};

const haCreategroup: Subcommand = {
  name: "creategroup",
  aliases: ["cg"],
  run(s, args) {
    const opts = options(args, [
      { name: "label", aliases: ["l"], kind: "value" },
      { name: "slot", kind: "value" },
      { name: "serialnumber", aliases: ["sn"], kind: "value" },
      { name: "password", aliases: ["p"], kind: "value" },
    ]);
    if (isStep(opts)) return opts;
    const label = opts.get("label");
    if (typeof label !== "string" || !/^[A-Za-z0-9._-]{1,32}$/.test(label))
      return failed(
        CKR.argumentsBad,
        "Argument '-label' is required (1-32 letters, digits, '.', '_' or '-').",
      );
    if (s.model.haGroups.some((g) => g.label.toLowerCase() === label.toLowerCase()))
      return failed(CKR.argumentsBad, `an HA group labelled '${label}' already exists.`);
    const slot = memberSlotOption(s, opts);
    if (isStep(slot)) return slot;
    return withPassword(opts.get("password"), (password) => {
      const outcome = authorizeCo(slot.appliance, slot.partition, password);
      if (outcome !== "success") return loginFooter(outcome, "co");
      const group: HaGroupState = {
        label,
        serial: `1${slot.partition.serial}`,
        members: [memberInSlot(slot)],
        standby: [],
      };
      s.model.haGroups.push(group);
      return done(OK, [`        HA Group Number: ${group.serial}`]);
    });
  },
};

const haAddmember: Subcommand = {
  name: "addmember",
  aliases: ["am"],
  run(s, args) {
    const opts = options(args, [
      { name: "group", aliases: ["g"], kind: "value" },
      { name: "slot", kind: "value" },
      { name: "serialnumber", aliases: ["sn"], kind: "value" },
      { name: "password", aliases: ["p"], kind: "value" },
    ]);
    if (isStep(opts)) return opts;
    const group = findGroup(s, opts.get("group"), "group");
    if (isStep(group)) return group;
    const slot = memberSlotOption(s, opts);
    if (isStep(slot)) return slot;
    if (group.members.some((m) => m.serial === slot.partition.serial))
      return failed(
        CKR.argumentsBad,
        `${slot.partition.serial} is already a member of group '${group.label}'.`,
      );
    return withPassword(opts.get("password"), (password) => {
      const outcome = authorizeCo(slot.appliance, slot.partition, password);
      if (outcome !== "success") return loginFooter(outcome, "co");
      const body: string[] = [];
      const slots = s.model.slots();
      const primary = liveMembers(s.model, group, slots)[0];
      if (primary && primary.state.partition.cloningDomain !== slot.partition.cloningDomain)
        body.push(cloningWarning(primary.slot, slot.id), "");
      group.members.push(memberInSlot(slot));
      body.push(`        Member ${slot.partition.serial} successfully added to group ${group.label}.`);
      return done(OK, body);
    });
  },
};

const haRemovemember: Subcommand = {
  name: "removemember",
  aliases: ["rm"],
  run(s, args) {
    const opts = options(args, [
      { name: "group", aliases: ["g"], kind: "value" },
      { name: "slot", kind: "value" },
      { name: "serialnumber", aliases: ["sn"], kind: "value" },
    ]);
    if (isStep(opts)) return opts;
    const group = findGroup(s, opts.get("group"), "group");
    if (isStep(group)) return group;
    // A down member has no slot; it can still be named by serial number.
    const rawSerial = opts.get("serialnumber");
    let serial: string;
    if (typeof rawSerial === "string") serial = rawSerial;
    else {
      const slot = memberSlotOption(s, opts);
      if (isStep(slot)) return slot;
      serial = slot.partition.serial;
    }
    const index = group.members.findIndex((m) => m.serial === serial);
    if (index < 0) return failed(CKR.argumentsBad, `${serial} is not a member of group '${group.label}'.`);
    if (group.members.length === 1)
      return failed(
        CKR.argumentsBad,
        `${serial} is the last member of '${group.label}'; use 'hagroup deletegroup'.`,
      );
    group.members.splice(index, 1);
    return done(OK, [`        Member ${serial} successfully removed from group ${group.label}.`]);
  },
};

const haDeletegroup: Subcommand = {
  name: "deletegroup",
  aliases: ["dg"],
  run(s, args) {
    const opts = options(args, [{ name: "label", aliases: ["l", "group"], kind: "value" }]);
    if (isStep(opts)) return opts;
    const group = findGroup(s, opts.get("label"), "label");
    if (isStep(group)) return group;
    s.model.haGroups.splice(s.model.haGroups.indexOf(group), 1);
    return done(OK, [`        Group ${group.label} successfully deleted.`]);
  },
};

const haRecover: Subcommand = {
  name: "recover",
  aliases: ["rc"],
  run(s, args) {
    const opts = options(args, [{ name: "group", aliases: ["g"], kind: "value" }]);
    if (isStep(opts)) return opts;
    let groups = s.model.haGroups;
    if (opts.has("group")) {
      const g = findGroup(s, opts.get("group"), "group");
      if (isStep(g)) return g;
      groups = [g];
    }
    const body: string[] = [];
    for (const group of groups)
      for (const member of group.members) {
        if (!member.down) continue;
        const link = s.model.linkTo(member.device);
        const partition = s.model.memberPartition(member);
        const visible = s.model.memberSlot(member) !== undefined;
        if (link.ok && partition && visible && !member.recoverFails) {
          member.down = false;
          continue;
        }
        const why = member.recoverFails
          ? "the member did not respond to recovery"
          : !link.ok
            ? LINK_FAULT_TEXT[link.fault]
            : "the partition is not available to this client";
        body.push(`Warning: member ${member.serial} of group ${group.label} could not be recovered: ${why}.`);
      }
    return body.length === 0 ? done(OK) : done(CKR.deviceError, body);
  },
};

const haRetry: Subcommand = {
  name: "retry",
  aliases: ["rt"],
  run(s, args) {
    const opts = options(args, [
      { name: "count", aliases: ["c"], kind: "value" },
      { name: "show", kind: "flag" },
    ]);
    if (isStep(opts)) return opts;
    if (opts.has("show") || !opts.has("count")) {
      const n = s.model.haSettings.retryCount;
      return done(OK, [
        `        HA Auto Recovery: ${n === 0 ? "disabled" : "enabled"}`,
        `        Maximum Auto Recovery Retry: ${n}`,
      ]);
    }
    const n = intOption(opts.get("count"), "count", -1, 500);
    if (!n.ok) return failed(CKR.argumentsBad, n.error);
    s.model.haSettings.retryCount = n.value;
    return done(OK);
  },
};

const haInterval: Subcommand = {
  name: "interval",
  aliases: ["in"],
  run(s, args) {
    const opts = options(args, [
      { name: "interval", aliases: ["i"], kind: "value" },
      { name: "show", kind: "flag" },
    ]);
    if (isStep(opts)) return opts;
    if (opts.has("show") || !opts.has("interval"))
      return done(OK, [`        Auto Recovery Poll Interval: ${s.model.haSettings.intervalSeconds} seconds`]);
    const n = intOption(opts.get("interval"), "interval", 60, 1200);
    if (!n.ok) return failed(CKR.argumentsBad, n.error);
    s.model.haSettings.intervalSeconds = n.value;
    return done(OK);
  },
};

const haSynchronize: Subcommand = {
  name: "synchronize",
  aliases: ["sync", "synch"],
  run(s, args) {
    const opts = options(args, [
      { name: "group", aliases: ["g"], kind: "value" },
      { name: "password", aliases: ["p"], kind: "value" },
    ]);
    if (isStep(opts)) return opts;
    const group = findGroup(s, opts.get("group"), "group");
    if (isStep(group)) return group;
    const synchronize = (password: string | undefined): CommandStep => {
      const live = liveMembers(s.model, group, s.model.slots());
      if (live.length === 0)
        return failed(CKR.tokenNotPresent, `no member of group '${group.label}' is available.`);
      // Members that do not share the cloning domain cannot exchange private keys: warn and copy nothing.
      const first = live[0]!;
      const foreign = live.find(
        (m) => m.state.partition.cloningDomain !== first.state.partition.cloningDomain,
      );
      if (foreign) return done(CKR.deviceError, [cloningWarning(first.slot, foreign.slot)]);
      // The password authorizes the members this session has not logged in as CO (each check counts as a login).
      for (const m of live) {
        if (s.loginOf(m.member.device, m.state.partition.label) === "co") continue;
        if (password === undefined)
          return failed(CKR.userNotLoggedIn, "the Crypto Officer is not logged in.");
        const outcome = authorizeCo(m.state.appliance, m.state.partition, password);
        if (outcome !== "success") return loginFooter(outcome, "co");
      }
      // Replication makes every live member hold the union of the objects: with counts only, the largest set.
      const objects = Math.max(...live.map((m) => m.state.partition.objects));
      for (const m of live) m.state.partition.objects = objects;
      return done(OK);
    };
    // [I] The reference does not say whether synchronize asks for the password when the session is already logged
    // in. The twin's model: a session logged in as Crypto Officer (`role login -name co`, on each member's slot or
    // on the HA virtual slot) on every live member of the group synchronizes without a prompt, as other commands
    // of a logged-in PKCS#11 session do; otherwise it prompts (or takes -password), and the password is checked as
    // a CO login on each member not logged in, a wrong one counting as a failed CO login there.
    const live = liveMembers(s.model, group, s.model.slots());
    const allLoggedIn =
      live.length > 0 && live.every((m) => s.loginOf(m.member.device, m.state.partition.label) === "co");
    if (allLoggedIn && opts.get("password") === undefined) return synchronize(undefined);
    return withPassword(opts.get("password"), (password) => synchronize(password));
  },
};

const COMMANDS: readonly CommandGroup[] = [
  { name: "slot", subs: [slotList, slotSet] },
  { name: "partition", aliases: ["par"], subs: [partitionShowinfo] },
  { name: "role", subs: [roleLogin, roleLogout, roleShow] },
  {
    name: "hagroup",
    aliases: ["ha"],
    subs: [
      haListgroups,
      haCreategroup,
      haAddmember,
      haRemovemember,
      haDeletegroup,
      haRecover,
      haRetry,
      haInterval,
      haSynchronize,
    ],
  },
];

/** The full text of a finished command (after the echoed line): body and footer in the §13 layout. */
export function renderDone(step: Extract<CommandStep, { kind: "done" }>): string {
  return renderCommandOutput(step.body, step.footer);
}
