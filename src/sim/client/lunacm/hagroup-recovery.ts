// `hagroup recover`, `retry`, `interval`, `synchronize`: bringing members back, the client's auto-recovery settings,
// and replication (with lunacm's own cloning check before it copies anything).
import { intOption } from "../args.ts";
import { LINK_FAULT_TEXT } from "../model.ts";
import { CKR, OK } from "../render.ts";
import { authorizeCo, cloningWarning, findGroup, liveMembers } from "./hagroup.ts";
import {
  type CommandStep,
  done,
  failed,
  isStep,
  loginFooter,
  type Subcommand,
  withPassword,
} from "./step.ts";

export const haRecover: Subcommand = {
  name: "recover",
  aliases: ["rc"],
  options: [{ name: "group", aliases: ["g"], kind: "value" }],
  run(s, opts) {
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

export const haRetry: Subcommand = {
  name: "retry",
  aliases: ["rt"],
  options: [
    { name: "count", aliases: ["c"], kind: "value" },
    { name: "show", kind: "flag" },
  ],
  run(s, opts) {
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

export const haInterval: Subcommand = {
  name: "interval",
  aliases: ["in"],
  options: [
    { name: "interval", aliases: ["i"], kind: "value" },
    { name: "show", kind: "flag" },
  ],
  run(s, opts) {
    if (opts.has("show") || !opts.has("interval"))
      return done(OK, [`        Auto Recovery Poll Interval: ${s.model.haSettings.intervalSeconds} seconds`]);
    const n = intOption(opts.get("interval"), "interval", 60, 1200);
    if (!n.ok) return failed(CKR.argumentsBad, n.error);
    s.model.haSettings.intervalSeconds = n.value;
    return done(OK);
  },
};

export const haSynchronize: Subcommand = {
  name: "synchronize",
  aliases: ["sync", "synch"],
  options: [
    { name: "group", aliases: ["g"], kind: "value" },
    { name: "password", aliases: ["p"], kind: "value" },
  ],
  run(s, opts) {
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
