// Run-time control of a running twin (`lunafleet sim`): a loopback HTTP endpoint that takes faults and power
// cycles, and the client that `lunafleet sim fault` uses to reach it. The endpoint's address and a bearer token sit
// in `<stateDir>/sim.json` (mode 0600): only the local user who started the twin can steer it.
import { randomBytes, timingSafeEqual } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { join } from "node:path";
import { isFaultName, type Twin, TwinFaultError } from "./twin.ts";

const SIM_STATE_FILE = "sim.json";

export interface SimStateFile {
  pid: number;
  url: string;
  token: string;
  fleetFile: string;
  startedAt: string;
  /** The twin's ARM, when the fleet names Dedicated HSM resources: what a separately started daemon points at. */
  arm?: SimArmInfo;
}

export interface SimArmInfo {
  endpoint: string;
  subscriptionId: string;
  /** PEM of the twin ARM's CA (`lunafleet daemon --azure-ca <file>`). */
  caFile: string;
}

const ARM_CA_FILE = "twin-arm-ca.pem";

export interface ControlServer {
  url: string;
  token: string;
  close(): Promise<void>;
}

const MAX_BODY = 16 * 1024;

/** Serve the control API for `twin` on 127.0.0.1 (ephemeral port). */
export async function startControlServer(twin: Twin): Promise<ControlServer> {
  const token = randomBytes(24).toString("hex");
  const server: Server = createServer((req, res) => {
    handle(twin, token, req, res).catch((err: unknown) => reply(res, 500, { error: (err as Error).message }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port: 0 }, () => resolve());
  });
  const addr = server.address();
  if (!addr || typeof addr !== "object") throw new Error("control server: no address");
  return {
    url: `http://127.0.0.1:${addr.port}`,
    token,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function handle(twin: Twin, token: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const given = Buffer.from(/^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1] ?? "");
  const expected = Buffer.from(token);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    reply(res, 401, { error: "missing or wrong control token (see sim.json)" });
    return;
  }
  const path = new URL(req.url ?? "/", "http://x").pathname;
  if (req.method === "GET" && path === "/status") {
    reply(res, 200, status(twin));
    return;
  }
  if (req.method === "POST" && path === "/fault") {
    const body = await readJson(req);
    const target = typeof body.target === "string" ? body.target : "";
    const fault = typeof body.fault === "string" ? body.fault : "";
    const value = typeof body.value === "string" ? body.value : undefined;
    if (!isFaultName(fault)) {
      reply(res, 400, { error: `unknown fault '${fault}'` });
      return;
    }
    try {
      reply(res, 200, { message: await twin.setFault(target, fault, value) });
    } catch (err) {
      if (err instanceof TwinFaultError) reply(res, 400, { error: err.message });
      else throw err;
    }
    return;
  }
  reply(res, 404, { error: `no such control endpoint: ${req.method} ${path}` });
}

function status(twin: Twin) {
  return {
    appliances: [...twin.appliances.values()].map((a) => ({
      name: a.name,
      address: a.address,
      sshPort: a.sshPort,
      ntlsPort: a.ntlsPort,
      hostKey: a.hostKeyFingerprint,
      power: a.state.power,
      ntlsListening: a.state.ntls.listening,
      zeroized: a.state.zeroized,
      faults: a.state.faults,
    })),
    clientHosts: [...twin.clientHosts.values()].map((c) => ({
      name: c.name,
      address: c.address,
      sshPort: c.sshPort,
      hostKey: c.hostKeyFingerprint,
      faults: c.faults,
    })),
  };
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  let text = "";
  for await (const chunk of req) {
    text += String(chunk);
    if (text.length > MAX_BODY) throw new TwinFaultError("request body too large");
  }
  try {
    const parsed: unknown = JSON.parse(text || "{}");
    return typeof parsed === "object" && parsed !== null ? (parsed as Record<string, unknown>) : {};
  } catch {
    throw new TwinFaultError("request body is not JSON");
  }
}

function reply(res: ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

// ---------------------------------------------------------------------------------------------------------------
// The state file and the client side

export function writeSimState(stateDir: string, state: SimStateFile): string {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const file = join(stateDir, SIM_STATE_FILE);
  writeFileSync(file, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  return file;
}

/**
 * Write the ARM twin's CA to `<stateDir>/twin-arm-ca.pem` (a certificate, no key: readable by the user's other
 * processes) and say where the ARM twin is, for sim.json and the start banner.
 */
export function publishArmTwin(
  stateDir: string,
  arm: { endpoint: string; subscriptionId: string; caPem: string },
): { caFile: string; arm: SimArmInfo } {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const caFile = join(stateDir, ARM_CA_FILE);
  writeFileSync(caFile, arm.caPem, { mode: 0o644 });
  return { caFile, arm: { endpoint: arm.endpoint, subscriptionId: arm.subscriptionId, caFile } };
}

export function removeSimState(stateDir: string, pid = process.pid): void {
  const file = join(stateDir, SIM_STATE_FILE);
  try {
    const current = JSON.parse(readFileSync(file, "utf8")) as SimStateFile;
    // Another twin may have started since; only remove our own record.
    if (current.pid === pid) {
      rmSync(file, { force: true });
      if (current.arm?.caFile) rmSync(current.arm.caFile, { force: true });
    }
  } catch {
    // Already gone or unreadable: nothing of ours to remove.
  }
}

export class SimControlError extends Error {
  override name = "SimControlError";
}

export function readSimState(stateDir: string): SimStateFile {
  const file = join(stateDir, SIM_STATE_FILE);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    throw new SimControlError(
      `no running twin: ${file} not found (start one with \`lunafleet sim --fleet <file>\`)`,
    );
  }
  const s = JSON.parse(text) as Partial<SimStateFile>;
  if (typeof s.url !== "string" || typeof s.token !== "string")
    throw new SimControlError(`${file} is not a twin state file`);
  return s as SimStateFile;
}

/** POST a fault to the running twin; resolves with its one-line description. */
export async function postFault(
  stateDir: string,
  target: string,
  fault: string,
  value?: string,
): Promise<string> {
  const sim = readSimState(stateDir);
  let res: Response;
  try {
    res = await fetch(`${sim.url}/fault`, {
      method: "POST",
      headers: { authorization: `Bearer ${sim.token}`, "content-type": "application/json" },
      body: JSON.stringify({ target, fault, value }),
    });
  } catch (err) {
    throw new SimControlError(
      `the twin at ${sim.url} (pid ${sim.pid}) does not answer: ${(err as Error).message}`,
    );
  }
  const body = (await res.json().catch(() => ({}))) as { message?: string; error?: string };
  if (!res.ok) throw new SimControlError(body.error ?? `control endpoint answered HTTP ${res.status}`);
  return body.message ?? "ok";
}
