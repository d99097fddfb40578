// LunaCM text layouts (reference/luna-cli.md §13–§15): the footer, slot blocks, the HA group listing. Pure
// functions over the client model so that the same text serves the banner, `slot list` and `lunacm -q`.
import type { ClientHostModel, HaGroupState, SlotTarget } from "./model.ts";

/** A lunacm command's outcome: `No Error`, a PKCS#11-style code, or the unknown-command form. */
export type Footer = { kind: "ok" } | { kind: "error"; code: number; text: string } | { kind: "unknown" };

export const OK: Footer = { kind: "ok" };

export function err(code: number, text: string): Footer {
  return { kind: "error", code, text };
}

/** PKCS#11 return values lunacm prints in its footer. */
export const CKR = {
  unknownCommand: { kind: "unknown" } as Footer,
  slotIdInvalid: err(0x3, "CKR_SLOT_ID_INVALID"),
  argumentsBad: err(0x7, "CKR_ARGUMENTS_BAD"),
  cancelled: err(0xb, "User Cancelled Operation"),
  deviceError: err(0x30, "CKR_DEVICE_ERROR"),
  functionNotSupported: err(0x54, "CKR_FUNCTION_NOT_SUPPORTED"),
  pinIncorrect: err(0xa0, "CKR_PIN_INCORRECT"),
  pinLocked: err(0xa4, "CKR_PIN_LOCKED"),
  tokenNotPresent: err(0xe0, "CKR_TOKEN_NOT_PRESENT"),
  userAlreadyLoggedIn: err(0x100, "CKR_USER_ALREADY_LOGGED_IN"),
  userNotLoggedIn: err(0x101, "CKR_USER_NOT_LOGGED_IN"),
  userPinNotInitialized: err(0x102, "CKR_USER_PIN_NOT_INITIALIZED"),
} as const;

export function footerLine(footer: Footer): string {
  switch (footer.kind) {
    case "ok":
      return "Command Result : No Error";
    case "unknown":
      return "Command Result : 0x1 Unknown command";
    case "error":
      return `Command Result : 0x${footer.code.toString(16)} (${footer.text})`;
  }
}

/** One command's output after the echoed command line: blank, body, blank, footer, blank. */
export function renderCommandOutput(body: readonly string[], footer: Footer): string {
  const head = body.length > 0 ? `\n${body.join("\n")}\n` : "";
  return `${head}\n${footerLine(footer)}\n\n`;
}

const FIELD = (label: string, value: string | number): string =>
  `        ${`${label} ->`.padEnd(24)}${value}`;

function modelName(softwareVersion: string): string {
  return `LunaSA ${softwareVersion.split("-")[0] ?? softwareVersion}`;
}

/** `Luna User Slot 7.0.3 (PW) Signing With Cloning Mode`: what `slot set` prints after the slot number. */
export function slotSummary(slot: SlotTarget): string {
  if (slot.kind === "ha") return "Luna Virtual HSM (PW) Signing With Cloning Mode";
  return `Luna User Slot ${slot.appliance.firmware} (PW) Signing With Cloning Mode`;
}

function slotBlock(model: ClientHostModel, slot: SlotTarget): string[] {
  if (slot.kind === "partition") {
    return [
      FIELD("Slot Id", slot.id),
      FIELD("Label", slot.partition.label),
      FIELD("Serial Number", slot.partition.serial),
      FIELD("Model", modelName(slot.appliance.softwareVersion)),
      FIELD("Firmware Version", slot.appliance.firmware),
      FIELD("Configuration", "Luna User Partition With SO (PW) Signing With Cloning Mode"),
      FIELD("Slot Description", "Net Token Slot"),
    ];
  }
  const first = slot.group.members[0];
  const firmware = (first && model.appliances.get(first.device)?.firmware) ?? "7.0.3";
  return [
    FIELD("Slot Id", slot.id),
    FIELD("HSM Label", slot.group.label),
    FIELD("HSM Serial Number", slot.group.serial),
    FIELD("HSM Model", "LunaVirtual"),
    FIELD("HSM Firmware Version", firmware),
    FIELD("HSM Configuration", "Luna Virtual HSM (PW) Signing With Cloning Mode"),
    FIELD("HSM Status", "N/A - HA Group"),
    FIELD("Slot Description", "HA Virtual Card Slot"),
  ];
}

/** Slot blocks separated by blank lines, then `Current Slot Id:` (shared by the banner and `slot list`). */
export function slotListing(
  model: ClientHostModel,
  slots: readonly SlotTarget[],
  current: number | undefined,
): string[] {
  const lines: string[] = [];
  for (const slot of slots) lines.push(...slotBlock(model, slot), "");
  lines.push(`        Current Slot Id: ${current ?? "None"}`);
  return lines;
}

const HA_FIELD = (label: string, value: string): string => `${`${label}:`.padStart(34)}  ${value}`;

/** One group in the `hagroup listgroups` layout of §15. */
export function haGroupBlock(
  group: HaGroupState,
  groupSlot: number | undefined,
  memberRows: { slot: number | undefined; serial: string; label: string; status: "alive" | "down" }[],
  needsSync: boolean,
): string[] {
  const lines = [
    HA_FIELD("HA Group Label", group.label),
    HA_FIELD("HA Group Number", group.serial),
    HA_FIELD("HA Group Slot ID", groupSlot === undefined ? "N/A" : String(groupSlot)),
    HA_FIELD("Synchronization", "enabled"),
    HA_FIELD("Group Members", group.members.map((m) => m.serial).join(", ")),
    HA_FIELD("Needs sync", needsSync ? "yes" : "no"),
    HA_FIELD("Standby Members", group.standby.length > 0 ? group.standby.join(", ") : "<none>"),
    "",
    `${"Slot #".padEnd(10)}${"Member S/N".padEnd(32)}${"Member Label".padEnd(16)}Status`,
    `${"======".padEnd(10)}${"==========".padEnd(32)}${"============".padEnd(16)}======`,
  ];
  for (const row of memberRows) {
    const slot = row.slot === undefined ? "-" : String(row.slot);
    lines.push(`${slot.padStart(6)}    ${row.serial.padEnd(32)}${row.label.padEnd(16)}${row.status}`);
  }
  return lines;
}
