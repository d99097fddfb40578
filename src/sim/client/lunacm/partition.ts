// `partition showinfo`, and the current slot as a partition (what the role commands act on).
import { type PartitionState, partitionAttemptsLeft } from "../../state.ts";
import type { SlotTarget } from "../model.ts";
import { CKR, OK } from "../render.ts";
import type { LunacmSession } from "./session.ts";
import { type CommandStep, done, failed, isStep, ROLE_NAMES, type Subcommand } from "./step.ts";

/** The current slot as a reachable partition, or the step that explains why not. */
export function currentPartition(s: LunacmSession): Extract<SlotTarget, { kind: "partition" }> | CommandStep {
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

export const partitionShowinfo: Subcommand = {
  name: "showinfo",
  aliases: ["si"],
  options: [],
  run(s, _opts) {
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
