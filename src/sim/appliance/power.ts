// Power and reboot of a simulated appliance. A reboot drops every open session; the appliance comes back after a
// short boot when the KB0019789 reboot patch is installed, and hangs for good without it (the field defect: only a
// hard power cycle in the datacenter brings it back), which `powerCycle` models.
import type { ApplianceState } from "../state.ts";

/** What the power logic needs from a live session: a way to cut it. */
export interface LiveSession {
  drop(): void;
}

const sessions = new WeakMap<ApplianceState, Set<LiveSession>>();
const bootTimers = new WeakMap<ApplianceState, NodeJS.Timeout>();
/** NTLS state to restore when the appliance is back (a reboot does not change whether NTLS was meant to run). */
const ntlsBeforeReboot = new WeakMap<ApplianceState, boolean>();

export const DEFAULT_BOOT_MS = 1000;

/** Register a live session; the returned function unregisters it. */
export function trackSession(state: ApplianceState, session: LiveSession): () => void {
  let set = sessions.get(state);
  if (!set) {
    set = new Set();
    sessions.set(state, set);
  }
  set.add(session);
  return () => set.delete(session);
}

/** The appliance answers SSH and NTLS only when on. */
export function isUp(state: ApplianceState): boolean {
  return state.power === "on";
}

/**
 * Start a reboot: volatile login state is lost, sessions are cut, NTLS stops. After `bootMs` the appliance is
 * back ("on"), unless the reboot patch is missing or the hangReboot fault is set: then it is "hung" until
 * `powerCycle`.
 */
export function beginReboot(state: ApplianceState, bootMs = DEFAULT_BOOT_MS): void {
  clearBootTimer(state);
  if (!ntlsBeforeReboot.has(state)) ntlsBeforeReboot.set(state, state.ntls.listening);
  state.power = "rebooting";
  state.ntls.listening = false;
  clearVolatileLogins(state);
  for (const s of [...(sessions.get(state) ?? [])]) s.drop();
  const hangs = !state.rebootPatch || state.faults.hangReboot === true;
  const timer = setTimeout(() => {
    bootTimers.delete(state);
    if (hangs) {
      state.power = "hung";
      state.syslog.push(syslogLine(state, "kernel: watchdog: BUG: soft lockup - CPU#0 stuck during boot"));
      return;
    }
    finishBoot(state);
  }, bootMs);
  timer.unref();
  bootTimers.set(state, timer);
}

/** A hard power cycle (the datacenter hands): whatever the state, the appliance boots and comes back on. */
export function powerCycle(state: ApplianceState): void {
  clearBootTimer(state);
  if (!ntlsBeforeReboot.has(state)) ntlsBeforeReboot.set(state, state.ntls.listening);
  clearVolatileLogins(state);
  for (const s of [...(sessions.get(state) ?? [])]) s.drop();
  finishBoot(state);
}

function finishBoot(state: ApplianceState): void {
  state.power = "on";
  state.ntls.listening = ntlsBeforeReboot.get(state) ?? true;
  ntlsBeforeReboot.delete(state);
  state.syslog.push(syslogLine(state, "systemd[1]: Startup finished."));
}

function clearBootTimer(state: ApplianceState): void {
  const t = bootTimers.get(state);
  if (t) clearTimeout(t);
  bootTimers.delete(state);
}

function clearVolatileLogins(state: ApplianceState): void {
  state.soLoggedIn = false;
  for (const p of state.partitions) delete p.loggedIn;
}

/** `Nov 23 11:09:32 <hostname> <text>`: the syslog `messages` line format. */
// A fixed table, not toLocaleString: that builds an Intl formatter per call (~0.15 ms), and every lunash command
// writes a syslog line.
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

export function syslogLine(state: ApplianceState, text: string, at = new Date()): string {
  const month = MONTHS[at.getUTCMonth()];
  const day = String(at.getUTCDate()).padStart(2, " ");
  const time = at.toISOString().slice(11, 19);
  return `${month} ${day} ${time} ${state.hostname} ${text}`;
}
