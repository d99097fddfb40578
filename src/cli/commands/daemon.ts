// `lunafleet daemon --fleet f [--concurrency n] [--http-port p] [--data-dir d]`: the worker, schedules and metrics,
// on the embedded Redis of the data dir (or REDIS_URL). Runs until SIGINT/SIGTERM, then stops cleanly.
// Against a running `lunafleet sim`: `--azure-endpoint <url> --azure-ca <file>` (or LUNAFLEET_AZURE_ENDPOINT /
// LUNAFLEET_AZURE_CA_FILE), as the twin prints them, point deprovisioning at its ARM twin. Twin fleets only for the
// CA; a production fleet keeps the system CA store (src/azure/access.ts).
import { resolve } from "node:path";
import { type Command, InvalidArgumentError } from "commander";
import { armAccessFromFlags, armGatewayFor } from "../../azure/access.ts";
import {
  KEYVAULT_PORT_ENV,
  keyVaultAccessFor,
  pemCertificates,
  pointTwinKeyVaultAt,
} from "../../azure/key-vault-access.ts";
import { FleetConfigError, formatIssue, loadFleet } from "../../config/index.ts";
import { startDaemon } from "../../daemon/daemon.ts";
import { defaultDataDir } from "../../redis/embedded-server.ts";

export function registerDaemonCommand(program: Command): void {
  program
    .command("daemon")
    .description("run the job daemon: worker, maintenance-window schedules, /metrics and /healthz")
    .requiredOption("--fleet <file>", "fleet file (YAML)")
    .option(
      "--concurrency <n>",
      "jobs run at once by this process",
      (v) => positiveInt(v, "--concurrency"),
      16,
    )
    .option(
      "--http-port <port>",
      "local port for /metrics and /healthz (0 = any free port)",
      (v) => port(v),
      9464,
    )
    .option("--data-dir <dir>", "lunafleet data dir (default $LUNAFLEET_DATA_DIR or ./.lunafleet)")
    .option(
      "--replace-fleet",
      "start even though the daemons on this Redis run another fleet file, replacing theirs (recorded as evidence)",
    )
    .option("--api-port <port>", "HTTPS API port (0 = any free port; 'off' = no API)", "9465")
    .option("--api-host <addr>", "address the API listens on (default 127.0.0.1: loopback only)", "127.0.0.1")
    .option("--api-cert <pem>", "the API's certificate (default: generated into the data dir)")
    .option("--api-key <pem>", "the API certificate's private key")
    .option(
      "--evidence-key <pem>",
      "ed25519 key that signs evidence heads (default: <data dir>/evidence-signing-key.pem)",
    )
    .option(
      "--azure-endpoint <url>",
      "ARM endpoint instead of the fleet's azure.endpoint (the twin's, printed by lunafleet sim; env LUNAFLEET_AZURE_ENDPOINT)",
    )
    .option(
      "--azure-ca <file>",
      "PEM CA to trust for ARM instead of the system store: twin fleets only (env LUNAFLEET_AZURE_CA_FILE)",
    )
    .option(
      "--azure-keyvault-port <port>",
      "the Key Vault twin's port (pools, Entra ID, Graph), printed by lunafleet sim: twin fleets only (env LUNAFLEET_AZURE_KEYVAULT_PORT)",
    )
    .action(async (opts: DaemonCliOptions) => {
      try {
        const fleet = loadFleet(opts.fleet);
        const access = armAccessFromFlags(opts, process.env);
        // Only when asked: otherwise the worker builds its default (fleet azure block, system CA store).
        const azure = Object.keys(access).length > 0 ? armGatewayFor(fleet, access) : undefined;
        // Managed HSM / Key Vault on a running twin: its port, and the CA bundle the twin published (ARM + Key Vault).
        const kvPort = opts.azureKeyvaultPort ?? process.env[KEYVAULT_PORT_ENV];
        if (kvPort) pointTwinKeyVaultAt(fleet, Number(kvPort));
        const keyVault =
          kvPort && access.caPem
            ? keyVaultAccessFor(fleet, {
                ...(access.endpoint ? { endpoint: access.endpoint } : {}),
                caPems: pemCertificates(access.caPem),
              })
            : undefined;
        const daemon = await startDaemon({
          fleet,
          fleetName: resolve(opts.fleet),
          ...(opts.replaceFleet ? { replaceFleet: true } : {}),
          dataDir: opts.dataDir ?? defaultDataDir(),
          concurrency: opts.concurrency,
          httpPort: opts.httpPort,
          handleSignals: true,
          api:
            opts.apiPort === "off"
              ? null
              : {
                  port: port(opts.apiPort),
                  host: opts.apiHost,
                  ...(opts.apiCert && opts.apiKey ? { certFile: opts.apiCert, keyFile: opts.apiKey } : {}),
                },
          ...(opts.evidenceKey ? { evidenceKeyFile: opts.evidenceKey } : {}),
          worker: { ...(azure ? { azure } : {}), ...(keyVault ? { keyVault } : {}) },
        });
        process.stderr.write(
          `lunafleet daemon: running (redis ${daemon.redisUrl ?? "from REDIS_* env"}, ` +
            `http 127.0.0.1:${daemon.http?.port ?? "-"}, API ${daemon.api?.url ?? "off"}${daemon.api ? ` cert ${daemon.api.certSource}` : ""}); Ctrl-C stops\n`,
        );
      } catch (err) {
        if (err instanceof FleetConfigError)
          for (const issue of err.issues) console.error(`  ${formatIssue(opts.fleet, issue)}`);
        console.error(`lunafleet daemon: ${(err as Error).message.split("\n")[0]}`);
        process.exitCode = 1;
      }
    });
}

interface DaemonCliOptions {
  fleet: string;
  replaceFleet?: boolean;
  concurrency: number;
  httpPort: number;
  dataDir?: string;
  azureEndpoint?: string;
  azureCa?: string;
  azureKeyvaultPort?: string;
  apiPort: string;
  apiHost: string;
  apiCert?: string;
  apiKey?: string;
  evidenceKey?: string;
}

// Parsers for commander: a bad number is a usage error (exit 2, one line), never NaN nor a stack trace.
function positiveInt(v: string, name: string): number {
  const n = /^\d+$/.test(v.trim()) ? Number(v) : Number.NaN;
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a positive integer`);
  return n;
}

function port(v: string): number {
  const n = /^\d+$/.test(v.trim()) ? Number(v) : Number.NaN;
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError("a port must be 0-65535");
  return n;
}
