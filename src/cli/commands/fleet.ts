// `lunafleet fleet trust <name> --fleet <file>`: read a device's (or client host's) SSH host key without logging in,
// show its fingerprint, and record it in the trust store only when the operator confirms (--yes, or typing "yes" at
// a terminal). Without a terminal and without --yes it refuses: trust is never given silently.
import { createInterface } from "node:readline/promises";
import type { Command } from "commander";
import { FleetConfigError, formatIssue, loadFleet } from "../../config/index.ts";
import type { Fleet } from "../../config/schema.ts";
import { probeHostKey } from "../../transport/connection.ts";
import { DeviceOpError } from "../../transport/errors.ts";
import { fingerprintsEqual } from "../../transport/fingerprint.ts";
import { clientHostTarget, deviceTarget, type SshTarget } from "../../transport/target.ts";
import { defaultTrustStorePath, TrustStore } from "../../transport/trust-store.ts";

interface TrustOptions {
  fleet: string;
  yes?: boolean;
  trustStore?: string;
}

function targetByName(fleet: Fleet, name: string): SshTarget | undefined {
  const dev = fleet.devices.find((d) => d.name === name);
  if (dev) return deviceTarget(fleet, dev);
  const host = fleet.clientHosts.find((h) => h.name === name);
  if (host && !host.local) return clientHostTarget(fleet, host);
  return undefined;
}

async function confirmAtTerminal(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return (await rl.question(question)).trim().toLowerCase() === "yes";
  } finally {
    rl.close();
  }
}

export function registerFleetCommands(program: Command): void {
  const fleetCmd = program.command("fleet").description("fleet connectivity tools");
  fleetCmd
    .command("trust")
    .argument("<name>", "device or client host name from the fleet file")
    .requiredOption("--fleet <file>", "fleet file (YAML)")
    .option("--yes", "record the key without asking (you have compared the fingerprint out of band)")
    .option("--trust-store <file>", "trust store file (default: $LUNAFLEET_DATA_DIR/known_hosts.json)")
    .description("show a device's SSH host key fingerprint and, once confirmed, pin it in the trust store")
    .action(async (name: string, opts: TrustOptions) => {
      let fleet: Fleet;
      try {
        fleet = loadFleet(opts.fleet);
      } catch (err) {
        if (!(err instanceof FleetConfigError)) throw err;
        for (const issue of err.issues) console.error(`  ${formatIssue(opts.fleet, issue)}`);
        process.exitCode = 1;
        return;
      }
      const target = targetByName(fleet, name);
      if (!target) {
        console.error(`${name}: no such device or remote client host in ${opts.fleet}`);
        process.exitCode = 1;
        return;
      }
      let fingerprint: string;
      try {
        fingerprint = await probeHostKey(target);
      } catch (err) {
        console.error(err instanceof DeviceOpError ? err.message : `${name}: ${(err as Error).message}`);
        process.exitCode = 1;
        return;
      }
      console.log(`${name} ${target.host}:${target.port} host key ${fingerprint}`);
      if (target.hostKey) {
        if (fingerprintsEqual(target.hostKey, fingerprint))
          console.log(`${name}: matches the key pinned in ${opts.fleet}`);
        else {
          console.error(
            `${name}: DOES NOT MATCH the key pinned in ${opts.fleet} (${target.hostKey}); the fleet file wins, so ` +
              "lunafleet will refuse this device until the key is explained and the fleet file is corrected",
          );
          process.exitCode = 1;
        }
        return;
      }
      const store = new TrustStore(opts.trustStore ?? defaultTrustStorePath());
      const known = store.get(name, target.host, target.port);
      if (known && fingerprintsEqual(known.fingerprint, fingerprint)) {
        console.log(`${name}: already trusted (${store.file}, since ${known.trustedAt})`);
        return;
      }
      if (known)
        console.error(
          `${name}: WARNING the trusted key was ${known.fingerprint}; the device now shows another`,
        );
      let yes = opts.yes === true;
      if (!yes) {
        if (!process.stdin.isTTY || process.env.CI) {
          console.error(
            `${name}: not recorded: no terminal to confirm at; compare the fingerprint, then rerun with --yes`,
          );
          process.exitCode = 1;
          return;
        }
        yes = await confirmAtTerminal(`Compare it with the device's console. Type 'yes' to trust ${name}: `);
      }
      if (!yes) {
        console.error(`${name}: not recorded`);
        process.exitCode = 1;
        return;
      }
      store.set(name, { fingerprint, host: target.host, port: target.port });
      console.log(`${name}: trusted, recorded in ${store.file}`);
    });
}
