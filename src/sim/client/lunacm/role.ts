// `role login`, `role logout`, `role show`.
import { attemptPartitionLogin, type PartitionRole, partitionAttemptsLeft } from "../../state.ts";
import { CKR, OK } from "../render.ts";
import { liveMembers } from "./hagroup.ts";
import { currentPartition } from "./partition.ts";
import {
  type CommandStep,
  done,
  failed,
  isStep,
  loginFooter,
  ROLE_NAMES,
  type Subcommand,
  withPassword,
} from "./step.ts";

function roleOption(raw: string | true | undefined): PartitionRole | CommandStep {
  if (typeof raw !== "string")
    return failed(CKR.argumentsBad, "Argument '-name' is required (po, so, co or cu).");
  const role = raw.toLowerCase();
  if (role === "po" || role === "so" || role === "co" || role === "cu") return role;
  return failed(CKR.argumentsBad, `role '${raw}' is not supported on this partition (po, so, co or cu).`);
}

export const roleLogin: Subcommand = {
  name: "login",
  aliases: ["li"],
  options: [
    { name: "name", aliases: ["n"], kind: "value" },
    { name: "password", aliases: ["p", "pw"], kind: "value" },
  ],
  run(s, opts) {
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

export const roleLogout: Subcommand = {
  name: "logout",
  aliases: ["lo"],
  options: [],
  run(s, _opts) {
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

export const roleShow: Subcommand = {
  name: "show",
  aliases: ["sh"],
  options: [{ name: "name", aliases: ["n"], kind: "value" }],
  run(s, opts) {
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
