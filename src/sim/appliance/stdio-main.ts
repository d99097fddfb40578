// Entry point for a real OpenSSH sshd: `ForceCommand node --import tsx src/sim/appliance/stdio-main.ts
// --fleet <file> --device <name> --state <json file>`. sshd runs one process per connection; this one runs the
// lunash interpreter on stdin/stdout (interactive without SSH_ORIGINAL_COMMAND, one command otherwise) and keeps
// the appliance state in the --state file, so login counters and zeroization survive between connections.
import { existsSync } from "node:fs";
import { StringDecoder } from "node:string_decoder";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { loadFleet } from "../../config/load.ts";
import { getDevice } from "../../config/model.ts";
import type { ShellIO } from "../shell-session.ts";
import type { ApplianceState } from "../state.ts";
import { createApplianceState } from "./factory.ts";
import { LineInput } from "./line-input.ts";
import { LunashHost } from "./lunash.ts";
import { loadApplianceState, saveApplianceState } from "./persist.ts";
import { DEFAULT_BOOT_MS } from "./power.ts";

export {
  deserializeApplianceState,
  loadApplianceState,
  saveApplianceState,
  serializeApplianceState,
} from "./persist.ts";

/**
 * A saved "rebooting" state has no timer in a new process: decide from the clock. A patched appliance is back once
 * its boot time has passed since the save; an unpatched one (or with the hangReboot fault) is hung.
 */
export function settlePower(
  state: ApplianceState,
  savedAt: number,
  now = Date.now(),
  bootMs = DEFAULT_BOOT_MS,
): void {
  if (state.power !== "rebooting") return;
  const hangs = !state.rebootPatch || state.faults.hangReboot === true;
  if (hangs) state.power = "hung";
  else if (now - savedAt >= bootMs) {
    state.power = "on";
    state.ntls.listening = true;
  }
}

/** Load the state file, or create it from the fleet on first use. */
async function openStateFile(
  fleetFile: string,
  deviceName: string,
  stateFile: string,
): Promise<ApplianceState> {
  if (existsSync(stateFile)) {
    const { state, savedAt } = loadApplianceState(stateFile);
    settlePower(state, savedAt);
    return state;
  }
  const fleet = loadFleet(fleetFile);
  const state = await createApplianceState(fleet, getDevice(fleet, deviceName));
  saveApplianceState(stateFile, state);
  return state;
}

class StdioIO implements ShellIO {
  #ended = false;
  constructor(private readonly onEnd: (code: number) => void) {}

  write(text: string): void {
    if (this.#ended) return;
    // A terminal's output processing (ONLCR, kept in raw input mode) already turns "\n" into "\r\n".
    process.stdout.write(process.stdout.isTTY ? text.replace(/\r\n/g, "\n") : text);
  }

  close(exitCode = 0): void {
    if (this.#ended) return;
    this.#ended = true;
    this.onEnd(exitCode);
  }

  destroy(): void {
    if (this.#ended) return;
    this.#ended = true;
    // An abrupt drop: no flush of pending output beyond what was written, a non-zero status like a killed session.
    process.exit(255);
  }
}

export async function main(argv = process.argv.slice(2)): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      fleet: { type: "string" },
      device: { type: "string" },
      state: { type: "string" },
      user: { type: "string" },
    },
    strict: true,
  });
  if (!values.fleet || !values.device || !values.state) {
    process.stderr.write("usage: stdio-main.ts --fleet <file> --device <name> --state <json file>\n");
    process.exit(2);
  }
  const stateFile = values.state;
  const state = await openStateFile(values.fleet, values.device, stateFile);
  if (state.power !== "on") {
    // A hung or rebooting appliance does not answer.
    saveApplianceState(stateFile, state);
    process.exit(255);
  }
  const reload = () => {
    // Another connection may have changed the appliance since this one started: act on the latest state.
    if (!existsSync(stateFile)) return;
    const { state: fresh, savedAt } = loadApplianceState(stateFile);
    settlePower(fresh, savedAt);
    Object.assign(state, fresh);
  };
  const host = new LunashHost(state, {
    beforeCommand: reload,
    afterCommand: () => saveApplianceState(stateFile, state),
  });
  const user = values.user ?? process.env.USER ?? state.applianceUser;
  const session = process.pid;
  const opened = { session, user, openedAt: Date.now() } as ApplianceState["sessionLog"][number];
  state.sessionLog.push(opened);
  const finish = (code: number) => {
    opened.closedAt = Date.now();
    saveApplianceState(stateFile, state);
    process.stdout.write("", () => process.exit(code));
  };
  const io = new StdioIO(finish);
  const command = process.env.SSH_ORIGINAL_COMMAND;
  const pty = process.stdin.isTTY === true;
  if (pty) process.stdin.setRawMode(true);
  const decoder = new StringDecoder("utf8");

  if (command !== undefined && command.trim() !== "") {
    // One command; prompts may read their answers from stdin (`echo proceed | ssh hsm 'client delete -c x'`).
    const input = new LineInput({ pty, echo: (t) => io.write(pty ? t.replace(/\r?\n/g, "\r\n") : t) });
    process.stdin.on("data", (d: Buffer) => input.feed(decoder.write(d)));
    process.stdin.on("end", () => input.end());
    await host.execWithAnswers(
      command,
      io,
      { user, session },
      {
        read: async (mask) => {
          const r = await input.read(mask);
          return r.kind === "line" ? r.text : null;
        },
      },
      pty,
    );
    return;
  }
  const shell = host.openShell(io, { user, session, pty });
  process.stdin.on("data", (d: Buffer) => shell.input(decoder.write(d)));
  process.stdin.on("end", () => shell.end());
  shell.start();
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`lunash twin: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
