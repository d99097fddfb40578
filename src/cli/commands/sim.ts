// `lunafleet sim`: run the digital twin of a fleet file in the foreground, and steer it with faults.
import { relative } from "node:path";
import type { Command } from "commander";
import { FleetConfigError, formatIssue, loadFleet } from "../../config/index.ts";
import {
  postFault,
  publishArmTwin,
  removeSimState,
  type SimArmInfo,
  SimControlError,
  startControlServer,
  writeSimState,
} from "../../sim/control.ts";
import { FAULTS, startTwin, type Twin } from "../../sim/twin.ts";

const DEFAULT_STATE_DIR = ".lunafleet";
const DEFAULT_HOST_KEY_DIR = ".lunafleet/twin-hostkeys";

interface SimOptions {
  fleet: string;
  rebase?: boolean;
  hostKeyDir: string;
  stateDir: string;
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
    .action(async (target: string, fault: string, value: string | undefined, opts: { stateDir: string }) => {
      try {
        console.log(await postFault(opts.stateDir, target, fault, value));
      } catch (err) {
        if (!(err instanceof SimControlError)) throw err;
        console.error(`lunafleet sim fault: ${err.message}`);
        process.exitCode = 1;
      }
    });
}

async function runSim(opts: SimOptions): Promise<number> {
  let fleet: ReturnType<typeof loadFleet>;
  try {
    fleet = loadFleet(opts.fleet);
  } catch (err) {
    if (!(err instanceof FleetConfigError)) throw err;
    console.error(`${opts.fleet}: ${err.issues.length} error(s)`);
    for (const issue of err.issues) console.error(`  ${formatIssue(opts.fleet, issue)}`);
    return 1;
  }
  if (!fleet.twin) {
    console.error(
      `${opts.fleet}: not a twin fleet file (twin: true); lunafleet sim only simulates twin fleets`,
    );
    return 1;
  }
  let twin: Twin;
  try {
    twin = await startTwin(fleet, { rebase: opts.rebase ?? false, hostKeyDir: opts.hostKeyDir });
  } catch (err) {
    console.error(`lunafleet sim: ${(err as Error).message}`);
    return 1;
  }
  const control = await startControlServer(twin);
  const arm = twin.arm ? publishArmTwin(opts.stateDir, twin.arm).arm : undefined;
  writeSimState(opts.stateDir, {
    pid: process.pid,
    url: control.url,
    token: control.token,
    fleetFile: opts.fleet,
    startedAt: new Date().toISOString(),
    ...(arm ? { arm } : {}),
  });

  for (const line of describeTwin(twin, opts.fleet)) console.log(line);
  if (arm) for (const line of describeArmTwin(arm, opts.fleet)) console.log(line);
  console.log(
    `control: ${control.url} (sim.json in ${opts.stateDir}); faults: lunafleet sim fault <target> <fault> [value]`,
  );
  console.log("twin running; Ctrl-C stops it");

  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  console.log("stopping twin...");
  removeSimState(opts.stateDir);
  await control.close();
  await twin.stop();
  console.log("twin stopped");
  return 0;
}

/** One line per machine: where it listens, who logs in, its host key, and (twin only) how to ssh in by hand. */
export function describeTwin(twin: Twin, fleetFile: string): string[] {
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
