// Plan = run: which commands a run sent that its plan did not name. A planned command matches a sent one on the same
// channel and target when their words agree, `<...>` in the plan standing for the one word the run filled in and the
// plan's trailing `   (when ...)` note ignored; a planned guard login stands for everything the guard sends for it
// (src/guard/login-plan.ts: the device's own counter first, then the login).
import { guardedLoginCommands } from "../guard/login-plan.ts";
import type { CommandChannel, PlannedCommand } from "./runbook.ts";

export interface SentCommand {
  via: CommandChannel;
  on: string;
  command: string;
}

interface Pattern {
  via: CommandChannel;
  on: RegExp;
  command: RegExp;
}

/** The sent commands no planned command accounts for (empty: the run stayed within its plan). */
export function unplannedCommands(
  plan: { steps: readonly { commands: readonly PlannedCommand[] }[] },
  sent: readonly SentCommand[],
): SentCommand[] {
  const patterns = plan.steps.flatMap((s) => s.commands.flatMap(patternsOf));
  return sent.filter(
    (c) => !patterns.some((p) => p.via === c.via && p.on.test(c.on) && p.command.test(normalize(c.command))),
  );
}

function patternsOf(c: PlannedCommand): Pattern[] {
  if (!c.guard) return [{ via: c.via, on: compile(c.on), command: compile(c.command) }];
  const { device } = c.guard;
  return guardedLoginCommands(c.guard.role).map((g) => ({
    via: g.via,
    on: compile(g.where === "device" ? device : c.on),
    command: compile(g.command),
  }));
}

/** Blanks collapsed, shell quotes dropped (a device's log shows the words it received, not how they were quoted). */
const normalize = (text: string) => text.trim().replace(/\s+/g, " ").replace(/'/g, "");

/** A planned text as a whole-string pattern: its note dropped, `<...>` any one word, blanks flexible. */
function compile(planned: string): RegExp {
  const words = normalize(planned.replace(/\s+\(.*\)\s*$/, ""));
  const source = words
    .split(/(<[^>]*>)/)
    .map((part) => (part.startsWith("<") && part.endsWith(">") ? "\\S+" : escapeRegExp(part)))
    .join("");
  return new RegExp(`^${source}$`);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * Azure calls are planned in prose, so for them plan = run is about where a call goes: each resource a run called is
 * one its plan names, lies under one (a key under its pool's URI), or names one relative to the subscription
 * (`resourceGroups/rg-x` for `/subscriptions/<id>/resourceGroups/rg-x`; a bare name is not enough). Returns the resources no plan line names.
 */
export function unplannedAzureResources(
  plan: { steps: readonly { commands: readonly PlannedCommand[] }[] },
  called: readonly string[],
): string[] {
  const planned = plan.steps.flatMap((s) => s.commands.filter((c) => c.via === "azure").map((c) => c.on));
  const names = (on: string, p: string) =>
    on === p || on.startsWith(p.endsWith("/") ? p : `${p}/`) || (on.includes("/") && p.endsWith(`/${on}`));
  return [...new Set(called)].filter((on) => !planned.some((p) => names(on, p)));
}
