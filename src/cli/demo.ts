// `npm start`: the twin of config/demo.yaml, the embedded Redis and the daemon in one process; a fleet sweep; the
// report. The twin's host keys are trusted in-process: the fleet handed to the daemon is the twin's copy, whose
// devices carry the fingerprints of the keys the twin really serves (pinned, never trust-on-first-use).
// Likewise the worker's ARM client trusts the twin's ARM CA (and only for this daemon), so `deprovision` works.
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { armGatewayFor } from "../azure/access.ts";
import { keyVaultAccessFor } from "../azure/key-vault-access.ts";
import { loadFleet } from "../config/load.ts";
import type { Fleet } from "../config/schema.ts";
import { type Daemon, startDaemon } from "../daemon/daemon.ts";
import { createLogger } from "../daemon/logger.ts";
import { buildReport, type FleetReport } from "../daemon/report.ts";
import { renderReport } from "../daemon/report-render.ts";
import { type FinishedJob, submitKeyVaultSweep, submitSweep, waitForJobs } from "../daemon/sweep.ts";
import { startTwin, type Twin } from "../sim/twin.ts";

export const DEMO_FLEET_FILE = resolve(fileURLToPath(new URL("../../config/demo.yaml", import.meta.url)));

export interface DemoOptions {
  /** Default config/demo.yaml. */
  fleetFile?: string;
  fleet?: Fleet;
  /** Move the twin to a random loopback block (tests) instead of the demo's own 127.0.1.x / 127.0.2.x addresses. */
  rebase?: boolean;
  dataDir: string;
  /** /metrics and /healthz; 0 = ephemeral, null = none. */
  httpPort?: number | null;
  /** The HTTPS API's port on 127.0.0.1 (0 = ephemeral, null = none); default 0. `npm start` serves it on 9465. */
  apiPort?: number | null;
  concurrency?: number;
  /** Where the human-readable progress and report go (default stdout). */
  print?: (line: string) => void;
  sweepTimeoutMs?: number;
}

export interface DemoRun {
  twin: Twin;
  daemon: Daemon;
  jobs: FinishedJob[];
  report: FleetReport;
  stop(): Promise<void>;
}

export async function runDemo(opts: DemoOptions): Promise<DemoRun> {
  const print = opts.print ?? ((line: string) => process.stdout.write(`${line}\n`));
  const fleetFile = opts.fleetFile ?? DEMO_FLEET_FILE;
  const source = opts.fleet ?? loadFleet(fleetFile);
  mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
  const logFile = join(opts.dataDir, "daemon.log");
  const log = createLogger({ destination: pino.destination({ dest: logFile, sync: true, mkdir: true }) });

  print(`lunafleet: starting the twin of ${opts.fleet ? "the given fleet" : fleetFile}`);
  const twin = await startTwin(source, {
    ...(opts.rebase ? { rebase: true } : {}),
    log: (line) => log.info({}, line),
  });
  let daemon: Daemon;
  try {
    // Deprovisioning jobs talk to the twin's ARM (HTTPS, its own CA), never to management.azure.com.
    const azure = twin.arm
      ? armGatewayFor(twin.fleet, {
          endpoint: twin.arm.endpoint,
          subscriptionId: twin.arm.subscriptionId,
          caPem: twin.arm.caPem,
        })
      : undefined;
    if (twin.arm) print(`lunafleet: ARM twin ${twin.arm.endpoint} (its own CA, trusted by this daemon only)`);
    // Managed HSM / Key Vault jobs: the twin's ARM and its data plane, Entra ID and Graph (their CAs), never Azure.
    const keyVault =
      twin.arm && twin.keyVault
        ? keyVaultAccessFor(twin.fleet, { caPems: [twin.arm.caPem, twin.keyVault.caPem] })
        : undefined;
    daemon = await startDaemon({
      fleet: twin.fleet,
      dataDir: opts.dataDir,
      httpPort: opts.httpPort === undefined ? 0 : opts.httpPort,
      concurrency: opts.concurrency ?? 16,
      log,
      ...(opts.apiPort === null ? {} : { api: { port: opts.apiPort ?? 0 } }),
      worker: { ...(azure ? { azure } : {}), ...(keyVault ? { keyVault } : {}) },
    });
  } catch (err) {
    await twin.stop();
    throw err;
  }
  const stop = async () => {
    await daemon.stop();
    await twin.stop();
  };
  try {
    print(
      `lunafleet: daemon up (redis ${daemon.redisUrl}, ${twin.fleet.devices.length} devices` +
        `${daemon.http ? `, metrics http://127.0.0.1:${daemon.http.port}/metrics` : ""}, log ${logFile})`,
    );
    if (daemon.api)
      print(
        `lunafleet: API ${daemon.api.url} (certificate ${join(opts.dataDir, "api-cert.pem")}, SHA-256 ${daemon.api.certFingerprint}); ` +
          "on this host the CLI acts as your OS account; elsewhere: LUNAFLEET_URL, LUNAFLEET_TOKEN (lunafleet token create), LUNAFLEET_CA",
      );
    const submitted = await submitSweep(daemon.queue, twin.fleet, "operator:npm-start");
    print(`lunafleet: fleet sweep: ${submitted.length} jobs (tcp-check + patch-verify on every device)`);
    const keyVault = await submitKeyVaultSweep(daemon.queue, twin.fleet, "operator:npm-start");
    if (keyVault.length > 0) {
      print(`lunafleet: Managed HSM / Key Vault sweep: ${keyVault.map((j) => j.runbook).join(", ")}`);
      submitted.push(...keyVault);
    }
    const jobs = await waitForJobs(daemon.queue, submitted, {
      timeoutMs: opts.sweepTimeoutMs ?? 120_000,
      onFinished: (j) =>
        print(
          `  ${j.state === "completed" ? "done  " : "FAILED"} ${j.runbook.padEnd(12)} ${j.device.padEnd(8)} ${j.jobId}` +
            (j.reason ? `  ${j.reason}` : ""),
        ),
    });
    const report = await buildReport(daemon.redis, twin.fleet);
    print("");
    print(renderReport(report));
    print("");
    return { twin, daemon, jobs, report, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
