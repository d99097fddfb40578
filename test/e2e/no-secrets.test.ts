// The product promise "passwords never appear in logs, evidence, job data, errors or snapshots", checked over one
// realistic run of the npm start demo (in-process, rebased twin, its own data dir and embedded Redis): the fleet
// sweep, ha-recover, ntls-cert-sync with repair, ha-sync (CO logins through the guard), a job whose CO login fails
// (wrong credential in the fleet copy -> quarantine), a twice-approved deprovision (HSM SO login, zeroize, ARM), and
// the Managed HSM runbooks (audit, cmk-health and the application crypto gates in the sweep, a gate with a wrong
// application secret, a twice-approved mhsm-retire). Besides the fleet's credentials, the Key Vault twin's own
// sensitive values are searched for: every access token its Entra ID issued, every key version's material (hex,
// base64, base64url) and every wrapKey/unwrapKey input and output.
// Then every secret value the twin fleet holds is searched for in every file of the data dir (daemon log, evidence,
// Redis AOF), in every Redis value, in the queue's job data/results/errors, in the report JSON, in every API answer
// and in what the run printed. Failures name the secret's path, never its value.
import { execFile } from "node:child_process";
import { lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiClient, createApiClient } from "../../src/cli/api-client.ts";
import { DEMO_FLEET_FILE, type DemoRun, runDemo } from "../../src/cli/demo.ts";
import { identitySchema } from "../../src/config/identity-schema.ts";
import { loadFleet } from "../../src/config/load.ts";
import type { Fleet } from "../../src/config/schema.ts";
import { approvalState } from "../../src/coord/approvals.ts";
import { buildReport } from "../../src/daemon/report.ts";
import { EvidenceLog } from "../../src/evidence/index.ts";
import { signingKeyPaths } from "../../src/evidence/signing.ts";
import { LoginGuard } from "../../src/guard/guard.ts";
import { createToken } from "../../src/identity/tokens.ts";
import { submitJob } from "../../src/queue/jobs.ts";
import type { RedisClient } from "../../src/redis/client.ts";
import { parseSshSignature } from "../../src/signing/sshsig.ts";
import type { Twin } from "../../src/sim/twin.ts";
import { approvalAsked } from "../helpers/approvals.ts";
import { removeFromHaGroups } from "../helpers/deprovision.ts";
import { startOidcProvider, type TestOidcProvider } from "../helpers/oidc-provider.ts";
import { DEMO_KEYS_DIR, demoKey, signedApprove, sshKeygenSign, tempDir } from "../helpers/ssh-signing.ts";

const dataDir = mkdtempSync(join(tmpdir(), "lf-nosecret-"));
const idpDir = tempDir("lf-nosecret-idp-");
let demo: DemoRun;
let idp: TestOidcProvider;
/** Secrets the identity part handles: tokens issued and presented, approvers' private keys. */
const identitySecrets: KnownSecret[] = [];
/** Every API answer body (except the one that shows a new token, once, by design). */
const apiAnswers: string[] = [];
const printed: string[] = [];
const jobIds: string[] = [];
/** A CO password that is wrong for hsm-b1's par-tok: a secret of the fleet copy while the failing job runs. */
const WRONG_CO = "Wrong-CO-B1-not-the-real-one";
/** An application secret that Entra ID refuses: a secret of the fleet copy while the failing gate runs. */
const WRONG_APP_SECRET = "Wrong-App-Secret-not-the-real-one";

// ---------------------------------------------------------------------------------------------------------------
// Everything the process prints while the demo runs (stdout, stderr, console), restored afterwards.
const captured: string[] = [];
const restore: (() => void)[] = [];
function captureOutput(): void {
  for (const stream of [process.stdout, process.stderr]) {
    const original = stream.write.bind(stream);
    stream.write = ((chunk: unknown, ...rest: unknown[]) => {
      captured.push(typeof chunk === "string" ? chunk : Buffer.from(chunk as Uint8Array).toString("latin1"));
      return (original as (...a: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof stream.write;
    restore.push(() => {
      stream.write = original as typeof stream.write;
    });
  }
  for (const method of ["log", "info", "warn", "error", "debug"] as const) {
    const original = console[method];
    console[method] = (...args: unknown[]) => {
      captured.push(args.map((a) => (typeof a === "string" ? a : safeJson(a))).join(" "));
      original.apply(console, args);
    };
    restore.push(() => {
      console[method] = original;
    });
  }
}

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The secrets: every literal credential of the twin fleet (PEM keys line by line), and what the twin states hold.
interface KnownSecret {
  /** Where it lives (printed on a failure); the value is never printed. */
  path: string;
  value: string;
}

function valuesOf(path: string, value: string): KnownSecret[] {
  if (value.startsWith("env:") || value.startsWith("file:")) return [];
  if (!value.includes("\n")) return [{ path, value }];
  // A PEM: each body line is enough to identify it (and survives JSON's \n escaping, which the whole would not).
  return value
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length >= 16 && !l.startsWith("-----"))
    .map((l, i) => ({ path: `${path} (line ${i + 1})`, value: l }));
}

function credentialsOf(path: string, credentials: object): KnownSecret[] {
  return Object.entries(credentials).flatMap(([role, ref]) =>
    typeof ref === "string" ? valuesOf(`${path}.credentials.${role}`, ref) : [],
  );
}

function fleetSecrets(fleet: Fleet, twin: Twin): KnownSecret[] {
  const out: KnownSecret[] = [];
  for (const d of fleet.devices) {
    out.push(...credentialsOf(`devices.${d.name}`, d.credentials));
    for (const p of d.partitions)
      out.push(...credentialsOf(`devices.${d.name}.partitions.${p.label}`, p.credentials));
  }
  for (const ch of fleet.clientHosts) out.push(...credentialsOf(`clientHosts.${ch.name}`, ch.credentials));
  for (const c of fleet.cmkConsumers) out.push(...credentialsOf(`cmkConsumers.${c.name}`, c.credentials));
  const kv = twin.keyVault;
  if (kv) {
    kv.model.sensitive.tokens.forEach((t, i) => {
      // A JWT's header is public and alike for every token: its payload+signature identify it.
      out.push({ path: `twin.keyVault.token[${i}]`, value: t.slice(t.indexOf(".") + 1) });
    });
    kv.model.sensitive.wrapValues.forEach((v, i) => {
      out.push({ path: `twin.keyVault.wrapValue[${i}]`, value: v });
    });
    for (const h of kv.model.hsms.values())
      for (const k of h.keys.values())
        k.versions.forEach((v, i) => {
          if (!Buffer.isBuffer(v.material)) return;
          const where = `twin.keyVault.${h.name}.${k.name}.v${i}`;
          out.push(
            { path: `${where} (hex)`, value: v.material.toString("hex") },
            { path: `${where} (base64)`, value: v.material.toString("base64").replace(/=+$/, "") },
            { path: `${where} (base64url)`, value: v.material.toString("base64url") },
          );
        });
  }
  for (const [name, a] of twin.appliances) {
    for (const [key, value] of Object.entries(a.state.generatedCredentials))
      out.push(...valuesOf(`twin.${name}.generatedCredentials.${key}`, value));
    if (a.state.hsmSoPassword) out.push({ path: `twin.${name}.hsmSoPassword`, value: a.state.hsmSoPassword });
    if (a.state.appliancePassword)
      out.push({ path: `twin.${name}.appliancePassword`, value: a.state.appliancePassword });
    for (const p of a.state.partitions)
      for (const [role, value] of Object.entries(p.passwords))
        if (value) out.push({ path: `twin.${name}.${p.label}.passwords.${role}`, value });
  }
  // One entry per value (a twin state value equals its fleet literal); keep the first path.
  const seen = new Set<string>();
  return out.filter((s) => {
    if (seen.has(s.value)) return false;
    seen.add(s.value);
    return true;
  });
}

/** The paths of the secrets found in `text` (never the values). */
function leaksIn(text: string, secrets: KnownSecret[]): string[] {
  return secrets.filter((s) => text.includes(s.value)).map((s) => s.path);
}

// ---------------------------------------------------------------------------------------------------------------
// Where secrets could end up.
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const st = lstatSync(path);
    if (st.isDirectory()) out.push(...filesUnder(path));
    else if (st.isFile()) out.push(path);
  }
  return out;
}

/** The only files allowed to hold a secret: the daemon's own private keys (0600), each holding only itself. */
const KEY_FILES = ["evidence-signing-key.pem", "api-key.pem"];

function scanFiles(dir: string, secrets: KnownSecret[]): { files: string[]; leaks: string[] } {
  const files = filesUnder(dir).filter((f) => !KEY_FILES.includes(f.slice(dir.length + 1)));
  const leaks: string[] = [];
  for (const file of files)
    for (const path of leaksIn(readFileSync(file, "latin1"), secrets))
      leaks.push(`${file.slice(dir.length + 1)}: ${path}`);
  return { files, leaks };
}

/**
 * Every key's value, by type, read as bytes (latin1, as the files are): BullMQ jobs are hashes, its events streams,
 * its queues lists and zsets; ours are strings and hashes (results, checkpoints, ledger, approvals, evidence).
 */
async function dumpRedis(redis: RedisClient): Promise<Map<string, string>> {
  const dump = new Map<string, string>();
  const text = (v: unknown): string =>
    Buffer.isBuffer(v) ? v.toString("latin1") : Array.isArray(v) ? v.map(text).join("\n") : String(v);
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "COUNT", "500");
    cursor = next;
    for (const key of keys) {
      const type = await redis.type(key);
      // Gone between SCAN and TYPE (a key that expires on its own, such as BullMQ's stalled-check marker): there is
      // nothing left in it to read. Fresh-clone CI on 38fe9cc hit this once.
      if (type === "none") continue;
      let value: string;
      if (type === "string") value = text(await redis.getBuffer(key));
      else if (type === "hash")
        value = Object.entries(await redis.hgetallBuffer(key))
          .map(([field, v]) => `${field}=${text(v)}`)
          .join("\n");
      else if (type === "list") value = text(await redis.lrangeBuffer(key, 0, -1));
      else if (type === "set") value = text(await redis.smembersBuffer(key));
      else if (type === "zset") value = text(await redis.zrangeBuffer(key, "0", "-1"));
      else if (type === "stream")
        value = (await redis.xrangeBuffer(key, "-", "+"))
          .map(([id, fields]) => `${id} ${text(fields)}`)
          .join("\n");
      else throw new Error(`key ${key}: type ${type} is not read by this dump`);
      dump.set(key, `${type}\n${value}`);
    }
  } while (cursor !== "0");
  return dump;
}

// ---------------------------------------------------------------------------------------------------------------
/** A job's end, awaited with no deadline of its own that load could beat (the test's timeout is the hang guard). */
async function finish(jobId: string): Promise<{ state: string; reason?: string }> {
  for (;;) {
    // The state first, then the job: read the other way round, a job that fails in between shows "failed" with the
    // reason of the moment before (none).
    const state = await demo.daemon.queue.getJobState(jobId);
    if (state === "completed" || state === "failed")
      return { state, reason: (await demo.daemon.queue.getJob(jobId))?.failedReason };
    await sleep(25);
  }
}

async function runOne(runbook: string, target: string, params: Record<string, unknown> = {}) {
  const { jobId } = await submitJob(demo.daemon.queue, {
    fleet: demo.twin.fleet,
    runbook,
    target,
    params,
    actor: "operator:no-secrets-test",
  });
  jobIds.push(jobId);
  return { jobId, ...(await finish(jobId)) };
}

const tokPartition = (device: string) =>
  demo.twin.appliances.get(device)!.state.partitions.find((p) => p.label === "par-tok")!;

beforeAll(async () => {
  captureOutput();
  // The demo fleet with its identity provider: a real OIDC server on loopback; alice and bob sign in through it.
  idp = await startOidcProvider(idpDir, [{ id: "alice" }, { id: "bob" }, { id: "carol" }]);
  const base = loadFleet(DEMO_FLEET_FILE);
  const identity = identitySchema.parse({
    oidc: {
      issuer: idp.issuer,
      audience: idp.audience,
      principalClaim: "preferred_username",
      caFile: idp.caFile,
    },
    principals: base.identity.principals.map((p) => ({ ...p, oidc: [`${p.name}@example.test`] })),
  });
  demo = await runDemo({
    dataDir,
    fleet: { ...base, identity },
    rebase: true,
    httpPort: null,
    apiPort: 0,
    concurrency: 4,
    print: (l) => printed.push(l),
  });
  jobIds.push(...demo.jobs.map((j) => j.jobId));
});

afterAll(async () => {
  await demo?.stop();
  await idp?.stop();
  rmSync(idpDir, { recursive: true, force: true });
  for (const r of restore.splice(0)) r();
  rmSync(dataDir, { recursive: true, force: true });
});

describe("no secret leaves: a whole demo run", () => {
  it("the sweep (tcp-check + patch-verify on every device, the Managed HSM runbooks) completed", () => {
    expect(demo.jobs).toHaveLength(17);
    expect(demo.jobs.every((j) => j.state === "completed")).toBe(true);
  });

  it("ha-recover ha-tokens brings hsm-b2's member back", async () => {
    const r = await runOne("ha-recover", "ha-tokens");
    expect(r.state, r.reason).toBe("completed");
    const member = demo.twin.clientHosts
      .get("client-b")!
      .host.haGroups.flatMap((g) => g.members)
      .find((m) => m.device === "hsm-b2")!;
    expect(member.down).toBe(false);
  });

  it("ntls-cert-sync repair=true repairs client-a's stale trust of hsm-a1 (handshakes as the client, with its key)", async () => {
    const r = await runOne("ntls-cert-sync", "hsm-a1", { repair: true });
    expect(r.state, r.reason).toBe("completed");
    const host = demo.twin.clientHosts.get("client-a")!.host;
    expect(host.serverCerts.get("hsm-a1")).toBe(demo.twin.appliances.get("hsm-a1")!.state.ntls.certPem);
  });

  it("ha-sync ha-tokens logs the CO in on every member through the guard and synchronizes", async () => {
    tokPartition("hsm-b1").objects = 7;
    tokPartition("hsm-b2").objects = 3;
    tokPartition("hsm-b3").objects = 3;
    const r = await runOne("ha-sync", "ha-tokens");
    expect(r.state, r.reason).toBe("completed");
    const log = demo.twin.clientHosts.get("client-b")!.host.commandLog;
    expect(log.filter((e) => e.command === "role login -name co").length).toBeGreaterThanOrEqual(3);
    expect(["hsm-b1", "hsm-b2", "hsm-b3"].map((d) => tokPartition(d).objects)).toEqual([7, 7, 7]);
  });

  it("a wrong CO credential fails the job's login, and the guard quarantines the credential", async () => {
    const partition = demo.twin.fleet.devices
      .find((d) => d.name === "hsm-b1")!
      .partitions.find((p) => p.label === "par-tok")!;
    const right = partition.credentials.co;
    partition.credentials.co = WRONG_CO;
    tokPartition("hsm-b1").objects = 9;
    try {
      const r = await runOne("ha-sync", "ha-tokens");
      expect(r.state).toBe("failed");
      expect(r.reason).toMatch(/LoginFailed/);
    } finally {
      partition.credentials.co = right;
    }
    expect(tokPartition("hsm-b1").failures.co).toBe(1);
    const ledger = await new LoginGuard(demo.daemon.redis as never).ledger.list();
    const entry = ledger.find((e) => e.device === "hsm-b1" && e.partition === "par-tok" && e.role === "co");
    expect(entry).toMatchObject({ quarantined: true });
  });

  it("deprovision of hsm-b3 (out of its HA group) with two approvals zeroizes it and deletes the resource", async () => {
    const { twin, daemon } = demo;
    const device = "hsm-b3";
    removeFromHaGroups(twin, device);
    const { jobId } = await submitJob(daemon.queue, {
      fleet: twin.fleet,
      runbook: "deprovision",
      target: device,
      params: { backupsConfirmed: true, approvalPollMs: 25 },
      actor: "operator:no-secrets-test",
    });
    jobIds.push(jobId);
    // The approval request awaited with no deadline of its own (a failed job says why at once).
    while ((await approvalState(daemon.redis, jobId)) === null) {
      const job = await daemon.queue.getJob(jobId);
      if ((await job?.getState()) === "failed") throw new Error(`job failed: ${job?.failedReason}`);
      await sleep(25);
    }
    const evidence = await EvidenceLog.open(daemon.redis, dataDir, jobId);
    await signedApprove(daemon.redis, jobId, "alice", daemon.fleet, { evidence });
    await signedApprove(daemon.redis, jobId, "bob", daemon.fleet, { evidence });
    const r = await finish(jobId);
    expect(r.state, r.reason).toBe("completed");
    expect(twin.appliances.get(device)!.state.zeroized).toBe(true);
  });
});

describe("no secret leaves: Managed HSM, Key Vault and the application crypto gate", () => {
  it("app-crypto-gate passes for every consumer, as each application's own identity", async () => {
    const r = await runOne("app-crypto-gate", "fleet");
    expect(r.state, r.reason).toBe("completed");
    expect(demo.twin.keyVault!.model.sensitive.tokens.length).toBeGreaterThanOrEqual(2);
    expect(demo.twin.keyVault!.model.sensitive.wrapValues.length).toBeGreaterThanOrEqual(8);
  });

  it("a wrong application secret fails the gate at the identity layer", async () => {
    const c = demo.twin.fleet.cmkConsumers.find((x) => x.name === "payments-api")!;
    const right = c.credentials.clientSecret;
    c.credentials.clientSecret = WRONG_APP_SECRET;
    try {
      const r = await runOne("app-crypto-gate", "payments-api");
      expect(r.state).toBe("failed");
      expect(r.reason).toMatch(/identity layer/);
    } finally {
      c.credentials.clientSecret = right;
    }
  });

  it("mhsm-retire of mhsm-dr with two approvals leaves it soft-deleted", async () => {
    const { daemon, twin } = demo;
    const { jobId } = await submitJob(daemon.queue, {
      fleet: twin.fleet,
      runbook: "mhsm-retire",
      target: "mhsm-dr",
      params: { securityDomainBackupConfirmed: true, keyBackupsConfirmed: true, approvalPollMs: 25 },
      actor: "operator:no-secrets-test",
    });
    jobIds.push(jobId);
    // The approval request awaited with no deadline of its own (a failed job says why at once).
    while ((await approvalState(daemon.redis, jobId)) === null) {
      const job = await daemon.queue.getJob(jobId);
      if ((await job?.getState()) === "failed") throw new Error(`job failed: ${job?.failedReason}`);
      await sleep(25);
    }
    const evidence = await EvidenceLog.open(daemon.redis, dataDir, jobId);
    await signedApprove(daemon.redis, jobId, "alice", daemon.fleet, { evidence, confirmation: "mhsm-dr" });
    await signedApprove(daemon.redis, jobId, "bob", daemon.fleet, { evidence, confirmation: "mhsm-dr" });
    const r = await finish(jobId);
    expect(r.state, r.reason).toBe("completed");
    expect(twin.keyVault!.poolState("mhsm-dr")).toMatchObject({ state: "soft-deleted", billed: true });
  });
});

describe("no secret leaves: the API, its tokens and signed approvals", () => {
  let admin: ApiClient;
  const client = (token?: string) =>
    createApiClient({
      url: demo.daemon.api!.url,
      token,
      ca: readFileSync(join(dataDir, "api-cert.pem"), "utf8"),
    });
  /** Call and keep the answer's text (an error's body too). */
  const kept = async <T>(c: ApiClient, method: string, path: string, body?: unknown): Promise<T> => {
    try {
      const out = await c.call<T>(method, path, body);
      apiAnswers.push(JSON.stringify(out));
      return out;
    } catch (err) {
      apiAnswers.push(`${(err as Error).message} ${JSON.stringify((err as { body?: unknown }).body)}`);
      throw err;
    }
  };

  it("an API token submits the deprovision of hsm-c1; alice and bob, signed in with OIDC, approve with their keys", async () => {
    const created = await createToken(demo.daemon.redis, {
      name: "no-secrets",
      role: "admin",
      expiresAt: Date.now() + 3_600_000,
      createdBy: "test",
    });
    identitySecrets.push(
      { path: "API token no-secrets", value: created.token },
      { path: "API token no-secrets (secret part)", value: created.token.slice(-43) },
    );
    admin = client(created.token);
    const submitted = await kept<{ jobId: string }>(admin, "POST", "/v1/jobs", {
      runbook: "deprovision",
      target: "hsm-c1",
      params: { backupsConfirmed: true, deleteResourceGroup: true, approvalPollMs: 25 },
    });
    jobIds.push(submitted.jobId);
    await approvalAsked(demo.daemon.redis, submitted.jobId);
    const keys = tempDir("lf-nosecret-keys-");
    for (const who of ["alice", "bob"] as const) {
      const oidcToken = await idp.token(who);
      identitySecrets.push({
        path: `OIDC token of ${who}`,
        value: oidcToken.slice(oidcToken.indexOf(".") + 1),
      });
      const approver = client(oidcToken);
      const view = await kept<{ statement: string }>(approver, "GET", `/v1/approvals/${submitted.jobId}`);
      const signature = sshKeygenSign(demoKey(keys, who).path, view.statement);
      await kept(approver, "POST", `/v1/approvals/${submitted.jobId}/approve`, {
        keyFingerprint: parseSshSignature(signature).fingerprint,
        signature,
        statement: view.statement,
      });
    }
    rmSync(keys, { recursive: true, force: true });
    const r = await finish(submitted.jobId);
    expect(r.state, r.reason).toBe("completed");
    expect(demo.twin.appliances.get("hsm-c1")!.state.zeroized).toBe(true);
  }, 120_000);

  it("wrong credentials are refused and recorded, never kept", async () => {
    const wrongApiToken = `lft_${"0".repeat(16)}_${"Wr0ngSecretValueForNoSecretsTest-abcdefghij"}`;
    const real = await idp.token("alice");
    const [h, p, sig] = real.split(".");
    const forged = `${h}.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p!, "base64url").toString()), roles: ["admin"] })).toString("base64url")}.${sig}`;
    identitySecrets.push(
      { path: "presented wrong API token", value: wrongApiToken.slice(-43) },
      { path: "presented forged OIDC token", value: forged.slice(forged.indexOf(".") + 1) },
      { path: "OIDC token of alice (second)", value: real.slice(real.indexOf(".") + 1) },
    );
    for (const bad of [wrongApiToken, forged])
      await expect(kept(client(bad), "GET", "/v1/jobs")).rejects.toMatchObject({ status: 401 });
  });

  it("every read answers without a secret: fleet, report, jobs, approvals, guard, tokens, evidence", async () => {
    const job = jobIds.at(-1)!;
    const since = new Date(Date.now() - 3_600_000).toISOString();
    for (const path of [
      "/v1/whoami",
      "/v1/fleet",
      "/v1/report",
      "/v1/report?device=hsm-c1",
      "/v1/jobs?limit=100",
      `/v1/jobs/${job}`,
      `/v1/jobs/${job}/status`,
      `/v1/approvals/${job}`,
      "/v1/guard",
      "/v1/tokens",
      "/v1/evidence/keys",
      `/v1/evidence/${job}/verify`,
      "/v1/evidence/verify-all",
    ])
      await kept(admin, "GET", path);
    const exported = await admin.text("GET", `/v1/evidence/export?since=${encodeURIComponent(since)}`);
    apiAnswers.push(exported.text);
    // The approvals' statements and signatures are in the export (public by design), the keys' private halves not.
    expect(exported.text.includes("BEGIN SSH SIGNATURE")).toBe(true);
    expect(apiAnswers.length).toBeGreaterThan(15);
  }, 60_000);
});

describe("no secret leaves: the CLI over the API", () => {
  const bin = fileURLToPath(new URL("../../bin/lunafleet.js", import.meta.url));
  /** The real CLI pointed at the API with a bearer token in its environment, from an empty data dir. */
  const overApi = (args: string[], token: string) =>
    new Promise<string>((resolve) => {
      const env = Object.fromEntries(
        Object.entries(process.env).filter(([k]) => !k.startsWith("REDIS_") && !k.startsWith("LUNAFLEET_")),
      );
      execFile(
        process.execPath,
        [bin, ...args, "--data-dir", cliDir],
        {
          env: {
            ...env,
            LUNAFLEET_URL: demo.daemon.api!.url,
            LUNAFLEET_TOKEN: token,
            LUNAFLEET_CA: join(dataDir, "api-cert.pem"),
          },
        },
        (err, stdout, stderr) =>
          resolve(`exit ${err ? (err as { code?: number }).code : 0}\n${stdout}\n${stderr}`),
      );
    });
  const cliDir = tempDir("lf-nosecret-cli-");
  afterAll(() => rmSync(cliDir, { recursive: true, force: true }));

  it("reads, evidence, an approval signed with --key and a wrong token print no secret", async () => {
    const job = jobIds.at(-1)!;
    const keys = tempDir("lf-nosecret-cli-keys-");
    const carol = await idp.token("carol");
    identitySecrets.push({ path: "OIDC token of carol", value: carol.slice(carol.indexOf(".") + 1) });
    const created = await createToken(demo.daemon.redis, {
      name: "no-secrets-cli",
      role: "admin",
      expiresAt: Date.now() + 3_600_000,
      createdBy: "test",
    });
    identitySecrets.push({ path: "API token no-secrets-cli", value: created.token.slice(-43) });
    const wrong = `lft_${"1".repeat(16)}_${"Wr0ngCliSecretForNoSecretsTest-abcdefghijkl"}`;
    identitySecrets.push({ path: "presented wrong API token (CLI)", value: wrong.slice(-43) });
    const runs: [string[], string][] = [
      [["ha", "breakers"], created.token],
      [["jobs", "--limit", "20"], created.token],
      [["job", job], created.token],
      [["approvals", job], created.token],
      [["report"], created.token],
      [["guard"], created.token],
      [["token", "list"], created.token],
      [["evidence", "verify", "--all"], created.token],
      [["evidence", "export", "--since", "1h"], created.token],
      // The job no longer waits: carol's signed approval is refused, after the statement was shown and signed.
      [["approve", job, "--key", demoKey(keys, "carol").path], carol],
      [["jobs"], wrong],
    ];
    const outputs: string[] = [];
    for (let i = 0; i < runs.length; i += 4)
      outputs.push(...(await Promise.all(runs.slice(i, i + 4).map(([args, token]) => overApi(args, token)))));
    rmSync(keys, { recursive: true, force: true });
    apiAnswers.push(...outputs);
    const byCommand = new Map(runs.map(([args], i) => [args.join(" "), outputs[i]!]));
    expect(byCommand.get("token list")).toMatch(
      /^exit 0\n[\s\S]*no-secrets-cli +[0-9a-f]{16} +admin +active/,
    );
    expect(byCommand.get(`job ${job}`)).toMatch(/^exit 0\n/);
    expect(byCommand.get("evidence export --since 1h")).toContain("BEGIN SSH SIGNATURE");
    expect(byCommand.get(`approve ${job} --key ${join(keys, "demo-carol")}`)).toMatch(
      /^exit 1\n[\s\S]*signing this statement[\s\S]*refused: /,
    );
    expect(byCommand.get("jobs")).toMatch(/^exit 1\n[\s\S]*unknown API token/);
  }, 180_000);
});

describe("no secret leaves: the scan", () => {
  let secrets: KnownSecret[];
  beforeAll(() => {
    secrets = [
      ...fleetSecrets(demo.twin.fleet, demo.twin),
      { path: "wrong CO of hsm-b1/par-tok", value: WRONG_CO },
      { path: "wrong application secret of payments-api", value: WRONG_APP_SECRET },
      ...identitySecrets,
      ...["alice", "bob", "carol"].flatMap((who) =>
        valuesOf(`approver private key ${who}`, readFileSync(join(DEMO_KEYS_DIR, who), "utf8")),
      ),
      ...valuesOf("daemon evidence-signing key", readFileSync(signingKeyPaths(dataDir).key, "utf8")),
      ...valuesOf("API TLS private key", readFileSync(join(dataDir, "api-key.pem"), "utf8")),
    ];
  });

  it("has secrets to look for, of every kind, and the scanner finds a planted one", () => {
    const paths = secrets.map((s) => s.path);
    expect(paths).toContain("devices.hsm-a1.credentials.appliance");
    expect(paths).toContain("devices.hsm-b3.credentials.hsmSo");
    expect(paths).toContain("devices.hsm-b1.partitions.par-tok.credentials.partitionSo");
    expect(paths).toContain("devices.hsm-b1.partitions.par-tok.credentials.co");
    expect(paths).toContain("clientHosts.client-b.credentials.ssh");
    expect(paths).toContain("cmkConsumers.secret-server.credentials.clientSecret");
    expect(paths.filter((p) => p.startsWith("twin.keyVault.token[")).length).toBeGreaterThanOrEqual(3);
    expect(paths.filter((p) => p.startsWith("twin.keyVault.wrapValue[")).length).toBeGreaterThanOrEqual(8);
    // Each encoding of a key version's material is looked for. Compared by value: one entry is kept per value, and a
    // key whose base64 has no '+' or '/' (one in four) reads the same in base64url, so that path is the base64 one.
    const kek = demo.twin.keyVault!.model.hsms.get("mhsm-pay")!.keys.get("payments-kek")!;
    expect(kek.versions).toHaveLength(2);
    const values = new Set(secrets.map((s) => s.value));
    for (const v of kek.versions) {
      const material = v.material as Buffer;
      for (const encoded of [
        material.toString("hex"),
        material.toString("base64").replace(/=+$/, ""),
        material.toString("base64url"),
      ])
        expect(values.has(encoded)).toBe(true);
    }
    expect(
      paths.filter((p) => p.startsWith("clientHosts.client-a.credentials.ntlsKey")).length,
    ).toBeGreaterThan(1);
    expect(paths).toContain("API token no-secrets");
    expect(paths).toContain("OIDC token of bob");
    expect(paths).toContain("presented forged OIDC token");
    expect(paths.filter((p) => p.startsWith("approver private key alice")).length).toBeGreaterThan(1);
    expect(paths.filter((p) => p.startsWith("daemon evidence-signing key")).length).toBeGreaterThan(0);
    expect(paths.filter((p) => p.startsWith("API TLS private key")).length).toBeGreaterThan(0);
    expect(secrets.every((s) => s.value.length >= 8)).toBe(true);

    // The same scanner over the same dir finds a password planted there, and nothing once it is gone.
    const planted = join(dataDir, "evidence", "planted-leak.txt");
    const co = secrets.find((s) => s.path === "devices.hsm-b2.partitions.par-tok.credentials.co")!;
    const key = secrets.find((s) => s.path.startsWith("clientHosts.client-b.credentials.ntlsKey"))!;
    writeFileSync(planted, `{"msg":"role login -password ${co.value}","k":"${key.value}"}\n`);
    try {
      expect(scanFiles(dataDir, secrets).leaks).toEqual([
        `evidence/planted-leak.txt: ${co.path}`,
        `evidence/planted-leak.txt: ${key.path}`,
      ]);
    } finally {
      rmSync(planted);
    }
    expect(scanFiles(dataDir, secrets).leaks.filter((l) => l.includes("planted"))).toEqual([]);
  });

  it("no file of the data dir (daemon log, evidence JSONL, Redis AOF) holds a secret", async () => {
    // Everything written so far is in the files: Redis appends on every write; pino writes synchronously.
    const { files, leaks } = scanFiles(dataDir, secrets);
    const names = files.map((f) => f.slice(dataDir.length + 1));
    expect(names).toContain("daemon.log");
    expect(names.some((n) => /\.aof$/.test(n))).toBe(true);
    expect(names.filter((n) => n.endsWith(".jsonl")).length).toBeGreaterThanOrEqual(jobIds.length);
    // The log is not empty: it saw the failing login and the deprovision.
    // (Checked with a boolean: a failed toMatch would print the scanned text, leaks included.)
    const log = readFileSync(join(dataDir, "daemon.log"), "utf8");
    expect(log.includes("LoginFailed"), "daemon.log mentions the failed login").toBe(true);
    expect(leaks).toEqual([]);
  });

  it("no Redis value (job data, results, checkpoints, ledger, approvals, evidence) holds a secret", async () => {
    const dump = await dumpRedis(demo.daemon.redis);
    const keys = [...dump.keys()];
    // The dump really covers what the run wrote: BullMQ job hashes, results, the guard ledger, approvals.
    for (const id of jobIds) expect(keys.some((k) => k.endsWith(`:${id}`))).toBe(true);
    expect(keys.some((k) => /ledger/i.test(k))).toBe(true);
    expect(keys.some((k) => /approval/i.test(k))).toBe(true);
    const leaksOf = (d: Map<string, string>) =>
      [...d].flatMap(([key, value]) => leaksIn(value, secrets).map((p) => `${key}: ${p}`));
    expect(leaksOf(dump)).toEqual([]);

    // The same dump finds a password planted in a stream entry (after the file scan: the AOF keeps it).
    const so = secrets.find((s) => s.path === "devices.hsm-a1.credentials.hsmSo")!;
    const planted = "lunafleet:test:planted-leak";
    await demo.daemon.redis.xadd(planted, "*", "line", `hsm login -password ${so.value}`);
    try {
      expect(leaksOf(await dumpRedis(demo.daemon.redis))).toEqual([`${planted}: ${so.path}`]);
    } finally {
      await demo.daemon.redis.del(planted);
    }
  });

  it("no job's data, result, error or stack trace from the queue holds a secret", async () => {
    const texts: string[] = [];
    for (const id of jobIds) {
      const job = (await demo.daemon.queue.getJob(id))!;
      expect(job, id).toBeDefined();
      texts.push(
        JSON.stringify({
          data: job.data,
          returnvalue: job.returnvalue,
          failedReason: job.failedReason,
          stacktrace: job.stacktrace,
          progress: job.progress,
        }),
      );
    }
    const all = texts.join("\n");
    expect(all.includes("LoginFailed"), "the failed job's error is in there").toBe(true);
    expect(leaksIn(all, secrets)).toEqual([]);
  });

  it("no API answer holds a secret", () => {
    const all = apiAnswers.join("\n");
    expect(all.includes("hsm-c1"), "the answers are the deprovision's").toBe(true);
    expect(leaksIn(all, secrets)).toEqual([]);
  });

  it("the failed authentications are recorded without the credentials presented", async () => {
    const day = new Date().toISOString().slice(0, 10);
    const records = await (await EvidenceLog.open(demo.daemon.redis, dataDir, `auth:${day}`)).records();
    // Two wrong credentials over the API, one through the CLI.
    expect(records.filter((r) => (r.data as { event?: string }).event === "auth-failed")).toHaveLength(3);
    expect(leaksIn(JSON.stringify(records), secrets)).toEqual([]);
  });

  it("neither the report JSON nor anything the run printed holds a secret", async () => {
    const report = JSON.stringify(await buildReport(demo.daemon.redis, demo.twin.fleet), null, 2);
    expect(report.includes('"hsm-a1"')).toBe(true);
    expect(leaksIn(report, secrets)).toEqual([]);
    const output = [...printed, ...captured].join("\n");
    expect(printed.join("\n").includes("fleet sweep")).toBe(true);
    expect(leaksIn(output, secrets)).toEqual([]);
  });
});
