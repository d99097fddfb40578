// `npm start`: the twin of config/demo.yaml, the embedded Redis and the daemon in one process; a fleet sweep; the
// report. The twin's host keys are trusted in-process: the fleet handed to the daemon is the twin's copy, whose
// devices carry the fingerprints of the keys the twin really serves (pinned, never trust-on-first-use).
// Likewise the worker's ARM client trusts the twin's ARM CA (and only for this daemon), so `deprovision` works.
import { createHash, X509Certificate } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { apiCertPaths, loadOrCreateApiTls } from "../api/tls.ts";
import { armGatewayFor } from "../azure/access.ts";
import { keyVaultAccessFor } from "../azure/key-vault-access.ts";
import { oidcSchema } from "../config/identity-schema.ts";
import { loadFleet } from "../config/load.ts";
import type { Fleet } from "../config/schema.ts";
import { consoleUrl } from "../console/routes.ts";
import { type Daemon, startDaemon } from "../daemon/daemon.ts";
import { createLogger } from "../daemon/logger.ts";
import { buildReport, type FleetReport } from "../daemon/report.ts";
import { renderReport } from "../daemon/report-render.ts";
import { type FinishedJob, submitKeyVaultSweep, submitSweep, waitForJobs } from "../daemon/sweep.ts";
import { type DemoIdp, startDemoIdp } from "../sim/idp.ts";
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
  /** The demo identity provider's port (0 = ephemeral); `npm start` serves it on 9466. */
  idpPort?: number;
  concurrency?: number;
  /** Where the human-readable progress and report go (default stdout). */
  print?: (line: string) => void;
  sweepTimeoutMs?: number;
}

export interface DemoRun {
  twin: Twin;
  daemon: Daemon;
  /** The demo identity provider (twin fleets with console.oidc and no identity.oidc of their own). */
  idp: DemoIdp | undefined;
  /** Where a browser opens the console (with the API). */
  consoleUrl: string | undefined;
  jobs: FinishedJob[];
  report: FleetReport;
  stop(): Promise<void>;
}

/**
 * The demo's identity provider, for a twin fleet whose console has an OIDC client but whose identity section names
 * no provider: started on loopback with the API's own certificate (one certificate for the browser to trust), and
 * written into the twin's copy of the fleet as identity.oidc — the daemon validates its tokens like any provider's.
 */
async function startIdentityProvider(fleet: Fleet, opts: DemoOptions): Promise<DemoIdp | undefined> {
  const client = fleet.console?.oidc;
  if (!fleet.twin || !client || fleet.identity.oidc || opts.apiPort === null) return undefined;
  const tls = await loadOrCreateApiTls(opts.dataDir);
  const audience = client.resource ?? "api://lunafleet";
  const idp = await startDemoIdp({
    certPem: tls.cert,
    keyPem: tls.key,
    port: opts.idpPort ?? 0,
    audience,
    usernames: fleet.identity.principals.flatMap((p) => p.oidc),
    dataDir: opts.dataDir,
  });
  fleet.identity = {
    ...fleet.identity,
    oidc: oidcSchema.parse({
      issuer: idp.issuer,
      audience,
      principalClaim: "preferred_username",
      caFile: apiCertPaths(opts.dataDir).cert,
    }),
  };
  return idp;
}

/** How to open the console and sign in to the demo, printed by `npm start`. */
function consoleSignInLines(url: string, fleet: Fleet, idp: DemoIdp, dataDir: string): string[] {
  const spki = spkiPin(readFileSync(apiCertPaths(dataDir).cert, "utf8"));
  const roles = (u: string) =>
    fleet.identity.principals.find((p) => p.oidc.includes(u))?.roles.join(", ") ?? "no role";
  return [
    `lunafleet: console ${url}`,
    "  sign in (demo identity provider, TWIN ONLY):",
    ...idp.users.map((u) => `    ${u.username.padEnd(8)} ${u.password.padEnd(22)} ${roles(u.username)}`),
    `  the browser must trust ${apiCertPaths(dataDir).cert} (security keys refuse a certificate error), e.g.`,
    `    chromium --ignore-certificate-errors-spki-list=${spki} ${url}`,
    "  approvers add a security key under 'Security keys' (README: Approving from the console)",
  ];
}

/** base64 SHA-256 of the certificate's public key, as Chromium's --ignore-certificate-errors-spki-list takes it. */
export function spkiPin(certPem: string): string {
  const der = new X509Certificate(certPem).publicKey.export({ type: "spki", format: "der" });
  return createHash("sha256").update(der).digest("base64");
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
  let idp: DemoIdp | undefined;
  try {
    idp = await startIdentityProvider(twin.fleet, opts);
    if (idp) print(`lunafleet: demo identity provider ${idp.issuer} (TWIN ONLY)`);
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
    await idp?.stop();
    await twin.stop();
    throw err;
  }
  const stop = async () => {
    await daemon.stop();
    await idp?.stop();
    await twin.stop();
  };
  const url = daemon.api ? consoleUrl(twin.fleet, daemon.api.url) : undefined;
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
    if (url && daemon.api && idp) {
      const client = twin.fleet.console!.oidc!.clientId;
      await idp.registerConsole({
        clientId: client,
        origins: [new URL(url).origin, new URL(daemon.api.url).origin],
      });
      for (const line of consoleSignInLines(url, twin.fleet, idp, opts.dataDir)) print(line);
    }
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
    return { twin, daemon, idp, consoleUrl: url, jobs, report, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
