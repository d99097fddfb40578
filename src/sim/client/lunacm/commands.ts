// The twin's lunacm command table: each group and its subcommands (the twin keeps its own table; it is the device).
import { haAddmember, haCreategroup, haDeletegroup, haListgroups, haRemovemember } from "./hagroup.ts";
import { haInterval, haRecover, haRetry, haSynchronize } from "./hagroup-recovery.ts";
import { partitionShowinfo } from "./partition.ts";
import { roleLogin, roleLogout, roleShow } from "./role.ts";
import { slotList, slotSet } from "./slot.ts";
import type { CommandGroup } from "./step.ts";

export const COMMANDS: readonly CommandGroup[] = [
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
