// `slot list`, `slot set`.
import { intOption } from "../args.ts";
import { CKR, OK, slotListing, slotSummary } from "../render.ts";
import { done, failed, type Subcommand } from "./step.ts";

export const slotList: Subcommand = {
  name: "list",
  aliases: ["l"],
  options: [],
  run(s, _opts) {
    const slots = s.model.slots();
    return done(OK, slotListing(s.model, slots, s.currentSlot(slots)?.id));
  },
};

export const slotSet: Subcommand = {
  name: "set",
  aliases: ["s"],
  options: [{ name: "slot", kind: "value" }],
  run(s, opts) {
    const n = intOption(opts.get("slot"), "slot", 0, 10_000);
    if (!n.ok) return failed(CKR.argumentsBad, n.error);
    const slot = s.model.slots().find((x) => x.id === n.value);
    if (!slot) return failed(CKR.slotIdInvalid, `slot ${n.value} does not exist.`);
    s.setCurrent(slot);
    return done(OK, [`        Current Slot Id: ${slot.id} (${slotSummary(slot)})`]);
  },
};
