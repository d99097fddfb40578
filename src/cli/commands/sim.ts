// `lunafleet sim`: run the digital twin of a fleet file in the foreground, and steer it with faults.
import { join, relative } from "node:path";
import type { Command } from "commander";
import { type Fleet, FleetConfigError, formatIssue, loadFleet } from "../../config/index.ts";
import { defaultDataDir } from "../../redis/embedded-server.ts";
import {
  postFault,
  publishArmTwin,
  removeSimState,
  type SimArmInfo,
  SimControlError,
  startControlServer,
  writeSimState,
} from "../../sim/control.ts";
import {
  assertTwinTrustAllowed,
  describeRecordedHostKeys,
  type RecordedHostKey,
  recordTwinHostKeys,
} from "../../sim/trust-host-keys.ts";
import { FAULTS, startTwin, type Twin } from "../../sim/twin.ts";
import { TrustStore } from "../../transport/trust-store.ts";

const DEFAULT_STATE_DIR = ".lunafleet";
const DEFAULT_HOST_KEY_DIR = ".lunafleet/twin-hostkeys";

export interface SimOptions {
  fleet: string;
  rebase?: boolean;
  hostKeyDir: string;
  stateDir: string;
  /** Record the twin's host keys in the data dir's trust store (twin fleets only). */
  trustHostKeys?: boolean;
  /** The lunafleet data dir whose known_hosts.json --trust-host-keys writes (default $LUNAFLEET_DATA_DIR or ./.lunafleet). */
  dataDir?: string;
}

export function registerSimCommands(program: Command): void {
  const sim = program
    .command("sim")
    .description("run the digital twin of a fleet file (simulated appliances and client hosts) until Ctrl-C")
    // Not a commander "required" option: `lunafleet sim fault ...` must not need it.
    .option("--fleet <file>", "twin fleet file (twin: true); required to start the twin")
    .option(
      "--rebase",
      "move every machine to a random free 127.A.B.0/24 block instead of the fleet's addresses",
    )
    .option(
      "--host-key-dir <dir>",
      "keep SSH host keys here so restarts keep their fingerprints",
      DEFAULT_HOST_KEY_DIR,
    )
    .option(
      "--state-dir <dir>",
      "where sim.json (control endpoint, ARM twin) and twin-arm-ca.pem are written",
      DEFAULT_STATE_DIR,
    )
    .option(
      "--trust-host-keys",
      "record the twin's SSH host keys in the data dir's trust store (known_hosts.json), so a separately started " +
        "daemon reaches the twin; twin fleets only",
    )
    .option(
      "--data-dir <dir>",
      "lunafleet data dir whose trust store --trust-host-keys writes (default $LUNAFLEET_DATA_DIR or ./.lunafleet)",
    )
    .action(async (opts: Partial<SimOptions>) => {
      if (!opts.fleet) {
        console.error(
          "lunafleet sim: --fleet <file> is required (e.g. lunafleet sim --fleet config/demo.yaml)",
        );
        process.exitCode = 2;
        return;
      }
      process.exitCode = await runSim(opts as SimOptions);
    });

  sim
    .command("fault")
    .argument("<target>", "device or client host name")
    .argument("<fault>", FAULTS.join(" | "))
    .argument("[value]", "slow: ms | drop/garble: command | member-down: [device/]partition | 'off' clears")
    .option("--state-dir <dir>", "where the running twin wrote sim.json", DEFAULT_STATE_DIR)
    .description("inject a fault into the running twin (`lunafleet sim`)")
    .action(
      async (
        target: string,
        fault: string,
        value: string | undefined,
        opts: { stateDir: string },
        cmd: Command,
      ) => {
        // `sim` has a --state-dir of its own: commander hands a --state-dir written after `fault` to the parent, and
        // this command would silently use the default. Take the one the operator wrote, wherever it landed.
        const given = (c: Command | null | undefined) =>
          c?.getOptionValueSource("stateDir") === "cli" ? (c.opts().stateDir as string) : undefined;
        const stateDir = given(cmd) ?? given(cmd.parent) ?? opts.stateDir;
        try {
          console.log(await postFault(stateDir, target, fault, value));
        } catch (err) {
          if (!(err instanceof SimControlError)) throw err;
          console.error(`lunafleet sim fault: ${err.message}`);
          process.exitCode = 1;
        }
      },
    );
}

async function runSim(opts: SimOptions): Promise<number> {
  let sim: RunningSim;
  try {
    sim = await startSim(opts);
  } catch (err) {
    if (!(err instanceof SimStartRefused)) throw err;
    for (const line of err.lines) console.error(line);
    return 1;
  }
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  console.log("stopping twin...");
  await sim.stop();
  console.log("twin stopped");
  return 0;
}

/** `lunafleet sim` refused to start; `lines` say why (printed to stderr, exit 1). */
export class SimStartRefused extends Error {
  override name = "SimStartRefused";
  constructor(readonly lines: string[]) {
    super(lines.join("\n"));
  }
}

export interface StartSimOptions extends SimOptions {
  /** Where the banner goes (default stdout). */
  print?: (line: string) => void;
}

export interface RunningSim {
  twin: Twin;
  /** The trust store --trust-host-keys wrote, and what it recorded (empty without the flag). */
  trustStoreFile: string;
  trusted: RecordedHostKey[];
  stop(): Promise<void>;
}

/**
 * Everything `lunafleet sim` does before it waits for Ctrl-C: load and check the fleet file, start the twin, the
 * control endpoint and the ARM twin's published CA, record host keys when asked, print the banner.
 */
export async function startSim(opts: StartSimOptions): Promise<RunningSim> {
  const print = opts.print ?? ((line: string) => console.log(line));
  let fleet: ReturnType<typeof loadFleet>;
  try {
    fleet = loadFleet(opts.fleet);
  } catch (err) {
    if (!(err instanceof FleetConfigError)) throw err;
    throw new SimStartRefused([
      `${opts.fleet}: ${err.issues.length} error(s)`,
      ...err.issues.map((issue) => `  ${formatIssue(opts.fleet, issue)}`),
    ]);
  }
  if (opts.trustHostKeys) {
    try {
      assertTwinTrustAllowed(fleet, opts.fleet);
    } catch (err) {
      throw new SimStartRefused([`lunafleet sim: ${(err as Error).message}`]);
    }
  }
  if (!fleet.twin)
    throw new SimStartRefused([
      `${opts.fleet}: not a twin fleet file (twin: true); lunafleet sim only simulates twin fleets`,
    ]);
  let twin: Twin;
  try {
    twin = await startTwin(fleet, { rebase: opts.rebase ?? false, hostKeyDir: opts.hostKeyDir });
  } catch (err) {
    throw new SimStartRefused([`lunafleet sim: ${(err as Error).message}`]);
  }
  const storeFile = join(opts.dataDir ?? defaultDataDir(), "known_hosts.json");
  let trusted: RecordedHostKey[] = [];
  let control: Awaited<ReturnType<typeof startControlServer>>;
  try {
    if (opts.trustHostKeys) trusted = recordTwinHostKeys(twin, new TrustStore(storeFile));
    control = await startControlServer(twin);
  } catch (err) {
    await twin.stop();
    throw new SimStartRefused([`lunafleet sim: ${(err as Error).message}`]);
  }
  // One CA bundle for a separately started daemon: the ARM twin's and, when there is one, the Key Vault twin's.
  const arm = twin.arm
    ? publishArmTwin(opts.stateDir, { ...twin.arm, caPem: twin.arm.caPem + (twin.keyVault?.caPem ?? "") }).arm
    : undefined;
  writeSimState(opts.stateDir, {
    pid: process.pid,
    url: control.url,
    token: control.token,
    fleetFile: opts.fleet,
    startedAt: new Date().toISOString(),
    ...(arm ? { arm } : {}),
  });

  for (const line of describeTwin(twin, opts.fleet)) print(line);
  if (arm) for (const line of describeArmTwin(arm, opts.fleet)) print(line);
  if (twin.keyVault)
    print(
      `key vault: pools, Entra ID and Graph on port ${twin.keyVault.server.port}; add --azure-keyvault-port ${twin.keyVault.server.port} to the daemon line`,
    );
  if (opts.trustHostKeys) {
    for (const line of describeRecordedHostKeys(trusted, storeFile)) print(line);
    if (opts.rebase)
      print(
        `  (rebased: these addresses are not the ones in ${opts.fleet}; a daemon using that file will not match them)`,
      );
  } else if (hasUnpinnedMachine(fleet))
    print(
      `host keys: ${opts.fleet} pins none; for a daemon started separately rerun with --trust-host-keys ` +
        `(records them in ${storeFile}) or trust each machine with lunafleet fleet trust`,
    );
  print(
    `control: ${control.url} (sim.json in ${opts.stateDir}); faults: lunafleet sim fault <target> <fault> [value]`,
  );
  print("twin running; Ctrl-C stops it");

  let stopping: Promise<void> | undefined;
  return {
    twin,
    trustStoreFile: storeFile,
    trusted,
    stop() {
      stopping ??= (async () => {
        removeSimState(opts.stateDir);
        await control.close();
        await twin.stop();
      })();
      return stopping;
    },
  };
}

/** A device or remote client host whose fleet-file entry pins no host key (the daemon would refuse it). */
function hasUnpinnedMachine(fleet: Fleet): boolean {
  return fleet.devices.some((d) => !d.hostKey) || fleet.clientHosts.some((c) => !c.local && !c.hostKey);
}

/** One line per machine: where it listens, who logs in, its host key, and (twin only) how to ssh in by hand. */
function describeTwin(twin: Twin, fleetFile: string): string[] {
  const file = relative(process.cwd(), fleetFile) || fleetFile;
  const rows: string[][] = [];
  for (const a of twin.appliances.values()) {
    rows.push([
      "appliance",
      a.name,
      `${a.address}:${a.sshPort}`,
      a.user,
      `ntls ${a.ntlsPort}`,
      a.hostKeyFingerprint,
      `ssh -p ${a.sshPort} ${a.user}@${a.address}  (password: devices.${a.name}.credentials.appliance in ${file})`,
    ]);
  }
  for (const c of twin.clientHosts.values()) {
    rows.push([
      "client",
      c.name,
      `${c.address}:${c.sshPort}`,
      c.user,
      "",
      c.hostKeyFingerprint,
      `ssh -p ${c.sshPort} ${c.user}@${c.address}  (password: clientHosts.${c.name}.credentials.ssh in ${file})`,
    ]);
  }
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  return rows.map((r) =>
    r
      .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd(),
  );
}

/** Where the ARM twin listens and how a separately started daemon is pointed at it (its CA, its endpoint). */
export function describeArmTwin(arm: SimArmInfo, fleetFile: string): string[] {
  const file = relative(process.cwd(), fleetFile) || fleetFile;
  const ca = relative(process.cwd(), arm.caFile) || arm.caFile;
  return [
    `arm: ${arm.endpoint} (subscription ${arm.subscriptionId}); CA ${ca}`,
    `daemon against this twin: lunafleet daemon --fleet ${file} --azure-endpoint ${arm.endpoint} --azure-ca ${ca}`,
    `  (or LUNAFLEET_AZURE_ENDPOINT / LUNAFLEET_AZURE_CA_FILE; both also in sim.json)`,
  ];
}
