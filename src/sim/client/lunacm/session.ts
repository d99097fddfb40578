// One interactive lunacm session on a twin client host: the current slot, the roles it logged in, and the dispatch
// of a command line to its group and subcommand (options parsed from the subcommand's own declaration).
import type { PartitionRole, PartitionState } from "../../state.ts";
import { matchName, parseOptions, tokenize } from "../args.ts";
import type { ClientHostModel, SlotTarget } from "../model.ts";
import { CKR, OK, renderCommandOutput, slotListing } from "../render.ts";
import { COMMANDS } from "./commands.ts";
import { type CommandStep, done, failed } from "./step.ts";

export type { CommandStep } from "./step.ts";
export { PASSWORD_PROMPT } from "./step.ts";

type SlotRef = { kind: "partition"; device: string; label: string } | { kind: "ha"; label: string };

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
    const opts = parseOptions(args, sub.options);
    return opts.ok ? sub.run(this, opts.values) : failed(CKR.argumentsBad, opts.error);
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

export function renderDone(step: Extract<CommandStep, { kind: "done" }>): string {
  return renderCommandOutput(step.body, step.footer);
}
