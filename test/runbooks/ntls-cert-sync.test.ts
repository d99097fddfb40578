// ntls-cert-sync over the real twin (demo fleet, rebased): sftp server.pem, vtl on the client hosts, client
// show/fingerprint and syslog on the appliances, real TLS handshakes presenting the client's certificate.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getRunbook } from "../../runbooks/index.ts";
import type { NtlsReport } from "../../runbooks/ntls-cert-sync/index.ts";
import { redact } from "../../src/config/secret.ts";
import { RedisCheckpointStore } from "../../src/engine/checkpoints.ts";
import { runJob } from "../../src/engine/runner.ts";
import { probeTls } from "../../src/net/probe.ts";
import { generateSelfSignedCert } from "../../src/sim/certs.ts";
import { startTwin, type Twin } from "../../src/sim/twin.ts";
import { demoFleet, JobEvidence } from "../helpers/engine.ts";
import { type FleetShells, fleetShells } from "../helpers/fleet-shells.ts";
import { withRedis } from "../helpers/redis.ts";

const redis = await withRedis();
let twin: Twin;
let ssh: FleetShells;
let seq = 0;

beforeAll(async () => {
  // No test-side key injection: startTwin puts each twin client's NTLS key into the fleet copy it returns (as the
  // `npm start` demo hands that copy to the daemon).
  twin = await startTwin(demoFleet(), { rebase: true });
  ssh = fleetShells(twin.fleet);
});

afterAll(async () => {
  await ssh?.close();
  await twin?.stop();
  await redis.stop();
});

async function run(params: Record<string, unknown>) {
  const jobId = `ntls-${process.pid}-${++seq}`;
  const evidence = new JobEvidence(redis, jobId);
  const result = await runJob({
    runbook: getRunbook("ntls-cert-sync"),
    params,
    jobId,
    fleet: twin.fleet,
    shells: ssh.shells,
    files: ssh.files,
    evidence,
    checkpoints: new RedisCheckpointStore(redis.client()),
  });
  const report = result.steps.find((s) => s.id === "report")?.result as unknown as NtlsReport | undefined;
  return { result, report, evidence };
}

const pair = (r: NtlsReport | undefined, device: string, host: string) =>
  r?.pairs.find((p) => p.device === device && p.host === host);

async function handshakeAs(host: string, device: string) {
  const a = twin.appliances.get(device)!;
  const c = twin.clientHosts.get(host)!.host;
  return probeTls(a.address, a.ntlsPort, { timeoutMs: 3000, clientCert: c.certPem, clientKey: c.keyPem });
}

describe("ntls-cert-sync over the twin", () => {
  it("runs its handshakes as client-a with the key startTwin put in the fleet copy, and the key stays out of the record", async () => {
    expect(demoFleet().clientHosts.every((h) => h.credentials.ntlsKey === undefined)).toBe(true);
    const keyPem = twin.clientHosts.get("client-a")!.host.keyPem;
    expect(twin.fleet.clientHosts.find((h) => h.name === "client-a")!.credentials.ntlsKey).toBe(keyPem);
    const { result, report, evidence } = await run({ target: "client-a" });
    expect(result.status).toBe("succeeded");
    const handshakes = result.steps
      .filter((s) => s.id.startsWith("handshake"))
      .flatMap(
        (s) =>
          (
            s.result as unknown as {
              handshakes?: { host: string; handshakeOk: boolean | null; error: string | null }[];
            }
          )?.handshakes ?? [],
      )
      .filter((h) => h.host === "client-a");
    expect(handshakes.length).toBeGreaterThanOrEqual(3);
    for (const h of handshakes) expect(h.error ?? "").not.toMatch(/no ntlsKey/);
    expect(pair(report, "hsm-a3", "client-a")!.evidence.handshake.ok).toBe(true);
    const text = await evidence.text();
    expect(text).toContain("handshake as client client-a");
    // Neither the key nor any line of it appears in the evidence, and the redactor knows every line.
    const bodyLines = keyPem.split("\n").filter((l) => l.length >= 16 && !l.startsWith("-----"));
    expect(bodyLines.length).toBeGreaterThan(0);
    for (const line of bodyLines) {
      expect(text).not.toContain(line);
      expect(redact(`log: ${line}`)).not.toContain(line);
    }
    expect(redact(keyPem)).not.toContain("PRIVATE KEY-----\n");
  });

  it("reports client-a's stale trust of hsm-a1 (client side) and hsm-a2's expiring certificate with its days left", async () => {
    const { result, report, evidence } = await run({ target: "client-a" });
    expect(result.status).toBe("succeeded");
    const a1 = pair(report, "hsm-a1", "client-a")!;
    expect(a1.status).toBe("mismatched");
    expect(a1.mismatch!.client.join(" ")).toMatch(/trusts a different certificate for hsm-a1/);
    expect(a1.mismatch!.appliance).toEqual([]);
    const a2 = pair(report, "hsm-a2", "client-a")!;
    expect(a2.status).toBe("expiring");
    expect(a2.daysLeft).toBe(4);
    expect(report!.problems.join("\n")).toMatch(/hsm-a2 \/ client-a: hsm-a2's certificate expires in 4 day/);
    expect(pair(report, "hsm-a3", "client-a")!.status).toBe("in-sync");
    // Read-only: nothing changed on either side.
    expect(
      twin.clientHosts.get("client-a")!.host.commandLog.some((e) => /vtl (add|delete)Server/.test(e.command)),
    ).toBe(false);
    expect(await evidence.verify()).toBe(true);
    // The client's key is never in the evidence.
    expect(await evidence.text()).not.toContain("PRIVATE KEY");
  });

  it("finds an appliance that no longer trusts the client from the NTLS syslog lines of a handshake with the client's certificate", async () => {
    const state = twin.appliances.get("hsm-a2")!.state;
    const reg = state.clients.get("client-a")!;
    const original = reg.certPem;
    const other = await generateSelfSignedCert({ commonName: "client-a", validDays: 365 });
    reg.certPem = other.certPem; // the appliance holds an overwritten copy of the client's certificate
    try {
      const { report } = await run({ target: "hsm-a2" });
      const p = pair(report, "hsm-a2", "client-a")!;
      expect(p.status).toBe("mismatched");
      expect(p.mismatch!.appliance.join(" ")).toMatch(/unknown ca/);
      expect(p.evidence.syslog.some((l) => /tlsv1 alert unknown ca/.test(l))).toBe(true);
      expect(p.evidence.syslog.some((l) => /RC_SSL_FAILED_HANDSHAKE/.test(l))).toBe(true);
      expect(p.evidence.handshake.ok).toBe(false);
    } finally {
      reg.certPem = original;
    }
  });

  it("a garbled 'client show' fails the job with a clear error and changes nothing", async () => {
    const hostLog = twin.clientHosts.get("client-a")!.host.commandLog;
    const before = hostLog.length;
    await twin.setFault("hsm-a1", "garble", "client show");
    try {
      const { result } = await run({ target: "hsm-a1", repair: true });
      expect(result.status).toBe("failed");
      expect(result.error!.type).toMatch(/ParseFailed|UnexpectedResult/);
      expect(result.error!.device ?? result.error!.message).toMatch(/hsm-a1/);
    } finally {
      await twin.setFault("hsm-a1", "garble", "off");
    }
    expect(hostLog.slice(before).some((e) => /vtl (add|delete)Server/.test(e.command))).toBe(false);
    expect((await handshakeAs("client-a", "hsm-a1")).handshakeOk).toBe(true); // appliance side untouched
  });

  it("a connection dropped in the middle of 'syslog tail' fails the job before any change", async () => {
    const a1 = twin.appliances.get("hsm-a1")!.state;
    const clientsBefore = JSON.stringify([...a1.clients.values()]);
    await twin.setFault("hsm-a1", "drop", "syslog tail");
    try {
      const { result } = await run({ target: "hsm-a1", repair: true });
      expect(result.status).toBe("failed");
      expect(result.error!.type).toBe("ConnectionLost");
      expect(result.steps.filter((s) => s.kind === "change").every((s) => s.status === "pending")).toBe(true);
    } finally {
      await twin.setFault("hsm-a1", "drop", "off");
    }
    expect(JSON.stringify([...a1.clients.values()])).toBe(clientsBefore);
  });

  it("repairs client-a's trust of hsm-a1 and an overwritten client registration on hsm-a1, keeping its partitions", async () => {
    const a1 = twin.appliances.get("hsm-a1")!.state;
    const reg = a1.clients.get("client-a")!;
    reg.certPem = (await generateSelfSignedCert({ commonName: "client-a", validDays: 365 })).certPem;
    const partitionsBefore = [...reg.partitions];
    const { result, report } = await run({ target: "hsm-a1", repair: true });
    expect(result.error).toBeUndefined();
    expect(result.status).toBe("succeeded");
    const p = pair(report, "hsm-a1", "client-a")!;
    expect(p.mismatch!.client.length).toBeGreaterThan(0);
    expect(p.mismatch!.appliance.length).toBeGreaterThan(0);
    // Client side: vtl deleteServer / addServer were sent; it now trusts the appliance's current certificate.
    const host = twin.clientHosts.get("client-a")!.host;
    expect(host.commandLog.some((e) => /^vtl deleteServer -n /.test(e.command))).toBe(true);
    expect(
      host.commandLog.some((e) =>
        /^vtl addServer -n .* -c \/tmp\/lunafleet-hsm-a1-server\.pem$/.test(e.command),
      ),
    ).toBe(true);
    expect(host.serverCerts.get("hsm-a1")).toBe(a1.ntls.certPem);
    // Appliance side: the client's own certificate is registered again, with exactly the partitions it had.
    const again = a1.clients.get("client-a")!;
    expect(again.certPem.replace(/\s/g, "")).toBe(host.certPem.replace(/\s/g, ""));
    expect(again.partitions).toEqual(partitionsBefore);
    // A real handshake with the client's certificate now succeeds, and vtl verify agreed.
    expect((await handshakeAs("client-a", "hsm-a1")).handshakeOk).toBe(true);
    const verify = result.steps.find((s) => s.id === "verify")!.result as {
      verified: { handshakeOk: boolean; vtlVerify: { seesPartitions: boolean } }[];
    };
    expect(verify.verified.length).toBeGreaterThan(0);
    expect(verify.verified.every((v) => v.handshakeOk && v.vtlVerify.seesPartitions)).toBe(true);
    // A second run finds the pair in sync.
    const second = await run({ target: "hsm-a1" });
    expect(pair(second.report, "hsm-a1", "client-a")!.status).toBe("in-sync");
  });

  it("refuses regen without an approval, before anything is sent to the appliance", async () => {
    const before = twin.appliances.get("hsm-a3")!.state.ntls.certPem;
    const { result } = await run({ target: "hsm-a3", regen: true });
    expect(result.status).toBe("failed");
    expect(result.error!.type).toBe("RegenNotApproved");
    expect(twin.appliances.get("hsm-a3")!.state.ntls.certPem).toBe(before);
    // Naming approvers in a parameter is nobody's signature: the parameter no longer exists.
    const named = await run({ target: "hsm-a3", regen: true, approvedBy: ["alice", "bob"] });
    expect(named.result.status).toBe("failed");
    expect(named.result.error!.type).toBe("ParamsInvalid");
    expect(named.result.error!.message).toMatch(/approvedBy/);
    expect(twin.appliances.get("hsm-a3")!.state.ntls.certPem).toBe(before);
  });
});
