// The application crypto gate as the last step of maintenance, over the twin (real SSH to the client hosts, the
// unchanged Azure SDK over HTTPS to the Key Vault twin): configured in the fleet file, ha-recover ends with the
// client host's own check command (its exit status) and a Managed HSM consumer's wrap/unwrap round trip; a failing
// gate fails the job; a command the fleet file does not list is never sent; without configuration there is no gate.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getRunbook } from "../../runbooks/index.ts";
import { keyVaultAccessFor } from "../../src/azure/key-vault-access.ts";
import type { Fleet } from "../../src/config/schema.ts";
import { RedisCheckpointStore } from "../../src/engine/checkpoints.ts";
import { planJob } from "../../src/engine/plan.ts";
import { runJob } from "../../src/engine/runner.ts";
import { RedisStateStore } from "../../src/engine/state.ts";
import { hostChecks } from "../../src/shell/host-checks.ts";
import { jobFiles } from "../../src/shell/job-files.ts";
import { JobShells } from "../../src/shell/job-shells.ts";
import { startTwin, type Twin } from "../../src/sim/twin.ts";
import { SshPool } from "../../src/transport/pool.ts";
import { demoFleet, JobEvidence } from "../helpers/engine.ts";
import { withRedis } from "../helpers/redis.ts";

const CHECK = "/opt/payments/bin/crypto-selftest --slot ha-tokens";
const redis = await withRedis();
let twin: Twin;
let pool: SshPool;
let seq = 0;

function gatedFleet(): Fleet {
  const f = demoFleet();
  f.appCryptoGate = {
    after: ["ha-recover", "ha-sync", "ntls-cert-sync"],
    consumers: ["payments-api"],
    clientHostChecks: [{ clientHost: "client-b", command: CHECK, timeoutMs: 10_000 }],
  };
  return f;
}

beforeAll(async () => {
  twin = await startTwin(gatedFleet(), { rebase: true });
  pool = new SshPool();
});

afterAll(async () => {
  await pool?.closeAll();
  await twin?.stop();
});

async function run(runbook: string, params: Record<string, unknown>) {
  const jobId = `${runbook}-gate-${process.pid}-${++seq}`;
  const lease = pool.lease();
  const shells = JobShells.forFleet(twin.fleet, lease);
  const evidence = new JobEvidence(redis, jobId);
  try {
    const result = await runJob({
      runbook: getRunbook(runbook),
      params,
      jobId,
      fleet: twin.fleet,
      shells,
      files: jobFiles(twin.fleet, lease),
      hostChecks: hostChecks(twin.fleet, lease),
      keyVault: keyVaultAccessFor(twin.fleet, { caPems: [twin.arm!.caPem, twin.keyVault!.caPem] })!,
      evidence,
      checkpoints: new RedisCheckpointStore(redis.client()),
      state: new RedisStateStore(redis.client()),
    });
    return { result, evidence };
  } finally {
    await shells.close();
  }
}

const checksSent = () =>
  twin.clientHosts.get("client-b")!.host.commandLog.filter((e) => e.command === CHECK).length;

describe("the application crypto gate after maintenance", () => {
  it("is the last step of ha-recover, ha-sync and ntls-cert-sync repair where configured, and absent otherwise", () => {
    const steps = (f: Fleet, runbook: string, params: Record<string, unknown>) =>
      planJob(getRunbook(runbook), params, f).steps.map((s) => s.id);
    expect(steps(twin.fleet, "ha-recover", { target: "ha-tokens" }).at(-1)).toBe("app-crypto-gate");
    expect(steps(twin.fleet, "ha-sync", { target: "ha-tokens" }).at(-1)).toBe("app-crypto-gate");
    expect(steps(twin.fleet, "ntls-cert-sync", { target: "fleet", repair: true }).at(-1)).toBe(
      "app-crypto-gate",
    );
    // A read-only ntls-cert-sync changes nothing: no gate. A fleet that asks for none: no gate.
    expect(steps(twin.fleet, "ntls-cert-sync", { target: "fleet" })).not.toContain("app-crypto-gate");
    expect(steps(demoFleet(), "ha-recover", { target: "ha-tokens" })).not.toContain("app-crypto-gate");
    const planned = planJob(getRunbook("ha-recover"), { target: "ha-tokens" }, twin.fleet).steps.at(
      -1,
    )!.commands;
    expect(planned.map((c) => `${c.via} ${c.on}`)).toEqual([
      "host client-b",
      `azure ${twin.fleet.azureIdentity.authorityHost}`,
      `azure ${twin.fleet.managedHsms[0]!.hsmUri}`,
    ]);
  });

  it("ha-recover recovers hsm-b2 and ends with the host's own check and the consumer's round trip, both passing", async () => {
    const before = checksSent();
    const { result, evidence } = await run("ha-recover", { target: "ha-tokens" });
    expect(result.error, JSON.stringify(result.error)).toBeUndefined();
    expect(result.steps.at(-1)).toMatchObject({ id: "app-crypto-gate", status: "done" });
    const gate = result.steps.at(-1)!.result as {
      hosts: { host: string; passed: boolean; exitCode: number }[];
      consumers: { consumer: string; passed: boolean }[];
    };
    expect(gate.hosts).toEqual([expect.objectContaining({ host: "client-b", passed: true, exitCode: 0 })]);
    expect(gate.consumers).toEqual([expect.objectContaining({ consumer: "payments-api", passed: true })]);
    expect(checksSent()).toBe(before + 1);
    const kinds = (await evidence.records()).filter((r) => JSON.stringify(r.data).includes("host-check"));
    expect(kinds.map((r) => r.kind)).toEqual(["command", "parse"]);
  });

  it("a failing gate fails the job, naming the layer (consumer) and the host's check", async () => {
    const consumer = twin.fleet.cmkConsumers.find((c) => c.name === "payments-api")!;
    twin.keyVault!.revokeRole("mhsm-pay", consumer.principalId);
    const host = twin.clientHosts.get("client-b")!.host;
    for (const d of ["hsm-b1", "hsm-b2", "hsm-b3"]) {
      host.setMemberDown(d, "par-tok", true);
      host.setMemberRecoverFails(d, "par-tok", true);
    }
    try {
      const { result } = await run("ha-recover", { target: "ha-tokens" });
      expect(result.status).toBe("failed");
      expect(result.error).toMatchObject({ type: "CryptoGateFailed", retryable: false });
      expect(result.error!.message).toMatch(
        /client-b: the application's check .* failed \(exit status 1\): app crypto check: FAILED: no live member in HA group ha-tokens/,
      );
      expect(result.error!.message).toMatch(/consumer payments-api: crypto gate failed at the role layer/);
    } finally {
      for (const d of ["hsm-b1", "hsm-b2", "hsm-b3"]) {
        host.setMemberRecoverFails(d, "par-tok", false);
        host.setMemberDown(d, "par-tok", false);
      }
    }
  });

  it("only a command the fleet file lists for that host is ever sent", async () => {
    const lease = pool.lease();
    const checks = hostChecks(twin.fleet, lease);
    const b = twin.fleet.clientHosts.find((h) => h.name === "client-b")!;
    const a = twin.fleet.clientHosts.find((h) => h.name === "client-a")!;
    const log = twin.clientHosts.get("client-b")!.host.commandLog.length;
    await expect(checks.run(b, `${CHECK} --verbose`)).rejects.toMatchObject({
      name: "CommandRefused",
      rule: "gate-allow-list",
    });
    await expect(checks.run(a, CHECK)).rejects.toMatchObject({
      name: "CommandRefused",
      rule: "gate-allow-list",
    });
    expect(twin.clientHosts.get("client-b")!.host.commandLog.length).toBe(log);
  });
});
