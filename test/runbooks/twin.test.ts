// The first two runbooks over the real twin (demo fleet, rebased to a private loopback block): real SSH, the real
// shell driver and parsers, real TLS on the NTLS ports, real Redis checkpoints and evidence.
import { X509Certificate } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getRunbook } from "../../runbooks/index.ts";
import { assertRebootSafe, isRebootSafe, type PatchVerifyResult } from "../../runbooks/patch-verify.ts";
import type { TcpCheckResult } from "../../runbooks/tcp-check.ts";
import { RedisCheckpointStore } from "../../src/engine/checkpoints.ts";
import { runJob } from "../../src/engine/runner.ts";
import { startTwin, type Twin } from "../../src/sim/twin.ts";
import { demoFleet, JobEvidence } from "../engine/support.ts";
import { type FleetShells, fleetShells } from "../helpers/fleet-shells.ts";
import { withRedis } from "../helpers/redis.ts";

const redis = await withRedis();
let twin: Twin;
let ssh: FleetShells;
let seq = 0;

beforeAll(async () => {
  twin = await startTwin(demoFleet(), { rebase: true });
  ssh = fleetShells(twin.fleet);
});

afterAll(async () => {
  await ssh?.close();
  await twin?.stop();
});

async function run(
  runbook: string,
  params: unknown,
  jobId = `twin-${process.pid}-${++seq}`,
  fleet: Twin["fleet"] = twin.fleet,
) {
  const evidence = new JobEvidence(redis, jobId);
  const result = await runJob({
    runbook: getRunbook(runbook),
    params,
    jobId,
    fleet,
    shells: ssh.shells,
    files: ssh.files,
    evidence,
    checkpoints: new RedisCheckpointStore(redis.client()),
    actor: "test",
  });
  return { result, evidence };
}

describe("patch-verify over the twin", () => {
  it("reports versions per device and marks the device without the KB0019789 patch reboot-unsafe", async () => {
    const { result, evidence } = await run("patch-verify", { target: "fleet" });
    expect(result.error).toBeUndefined();
    expect(result.status).toBe("succeeded");
    const verdict = result.steps.at(-1)?.result as unknown as PatchVerifyResult;
    expect(verdict.rebootUnsafe).toEqual(["hsm-b3"]);
    expect(verdict.nonCompliant).toEqual(["hsm-b3"]);
    const b3 = verdict.devices.find((d) => d.device === "hsm-b3")!;
    expect(b3).toMatchObject({ serial: "700203", rebootPatchInstalled: false, rebootUnsafe: true });
    expect(b3.requiredPatches).toEqual([{ kb: "KB0019789", installed: false, rpms: [] }]);
    const a1 = verdict.devices.find((d) => d.device === "hsm-a1")!;
    expect(a1).toMatchObject({ serial: "700101", softwareVersion: "7.2.0-220", firmware: "7.0.3" });
    expect(isRebootSafe(a1)).toBe(true);
    expect(a1.rebootPatchRpms[0]).toMatch(/^lunasa-reboot-patch-/);
    expect(isRebootSafe(b3)).toBe(false);
    expect(() => assertRebootSafe(verdict, "hsm-b3")).toThrow(/KB0019789/);
    expect(() => assertRebootSafe(verdict, "hsm-a1")).not.toThrow();

    // What the appliances were really sent: exactly the planned read commands, nothing else.
    const sent = twin.appliances.get("hsm-b3")!.state.commandLog.map((c) => c.command);
    expect(sent).toEqual(["hsm show", "package list"]);
    expect(await evidence.verify()).toBe(true);
    const text = await evidence.text();
    expect(text).not.toContain("Appliance-B3-pw");
  });
});

describe("tcp-check over the twin", () => {
  it("reports reachability, certificates and days left, and the client hosts that verify each device", async () => {
    const { result } = await run("tcp-check", { target: "fleet", timeoutMs: 3000 });
    expect(result.error).toBeUndefined();
    expect(result.status).toBe("succeeded");
    const report = result.steps.at(-1)?.result as unknown as TcpCheckResult;
    expect(report.devices.map((d) => d.device)).toEqual([
      "hsm-a1",
      "hsm-a2",
      "hsm-a3",
      "hsm-b1",
      "hsm-b2",
      "hsm-b3",
      "hsm-c1",
    ]);
    for (const d of report.devices) {
      expect(d.reachable).toBe(true);
      expect(d.latencyMs).toBeGreaterThanOrEqual(0);
      expect(d.cert?.fingerprint256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    }
    const a2 = report.devices.find((d) => d.device === "hsm-a2")!;
    expect(a2.expiresInDays).toBe(4);
    expect(a2.certExpiringSoon).toBe(true);
    expect(report.problems.some((p) => p.startsWith("hsm-a2: NTLS certificate expires in 4 day"))).toBe(true);
    const a1 = report.devices.find((d) => d.device === "hsm-a1")!;
    expect(a1.expiresInDays).toBeGreaterThan(300);
    expect(a1.certExpiringSoon).toBe(false);
    // Presented fingerprints are the twin appliances' real certificates.
    const a2State = twin.appliances.get("hsm-a2")!.state;
    expect(a2.cert?.fingerprint256).toBe(new X509Certificate(a2State.ntls.certPem).fingerprint256);

    // client-b reaches all three of its appliances; client-a trusts a stale copy of hsm-a1's certificate, and vtl
    // says so for that server (and lists the partitions of the two it does reach): hsm-a1 is not verified from it.
    for (const name of ["hsm-b1", "hsm-b2", "hsm-b3"])
      expect(report.devices.find((d) => d.device === name)?.verifiedFrom).toEqual(["client-b"]);
    for (const name of ["hsm-a2", "hsm-a3"])
      expect(report.devices.find((d) => d.device === name)?.verifiedFrom).toEqual(["client-a"]);
    // The spare hsm-c1 is assigned to no client host: nothing to verify from, nothing missing.
    expect(report.devices.find((d) => d.device === "hsm-c1")).toMatchObject({
      verifiedFrom: [],
      notVerifiedFrom: [],
    });
    const a1Address = twin.fleet.devices.find((d) => d.name === "hsm-a1")!.host;
    const a1View = report.devices.find((x) => x.device === "hsm-a1")!;
    expect(a1View.verifiedFrom).toEqual([]);
    expect(a1View.notVerifiedFrom).toEqual([
      {
        host: "client-a",
        missing: ["par-pay"],
        error: expect.stringMatching(
          new RegExp(`^vtl cannot reach ${a1Address.replaceAll(".", "\\.")}: .*certificate`),
        ),
      },
    ]);
    expect(report.problems).toContainEqual(
      expect.stringMatching(
        new RegExp(`^client-a: vtl verify cannot reach ${a1Address.replaceAll(".", "\\.")}: `),
      ),
    );
  });

  it("a device target touches only that device and the client hosts assigned to it", async () => {
    const before = twin.appliances.get("hsm-a1")!.state.commandLog.length;
    const { result } = await run("tcp-check", { target: "hsm-b1" });
    expect(result.status).toBe("succeeded");
    expect(result.targets).toMatchObject({ devices: ["hsm-b1"], clientHosts: ["client-b"] });
    expect(result.steps.map((s) => s.id)).toEqual(["ntls-probe:hsm-b1", "vtl-verify:client-b", "report"]);
    expect(twin.appliances.get("hsm-a1")!.state.commandLog.length).toBe(before);
  });

  it("reports a closed NTLS port as unreachable and an expired certificate with the days since expiry", async () => {
    await twin.setFault("hsm-b2", "close-ntls");
    await twin.setFault("hsm-b1", "expire-cert", "2");
    try {
      const { result } = await run("tcp-check", { target: "ha-tokens", timeoutMs: 2000 });
      expect(result.status).toBe("succeeded");
      const report = result.steps.at(-1)?.result as unknown as TcpCheckResult;
      const b2 = report.devices.find((d) => d.device === "hsm-b2")!;
      expect(b2).toMatchObject({ reachable: false, handshakeOk: false, cert: null, expiresInDays: null });
      expect(b2.error).toMatch(/ECONNREFUSED/);
      const b1 = report.devices.find((d) => d.device === "hsm-b1")!;
      expect(b1.cert?.expired).toBe(true);
      expect(b1.expiresInDays).toBe(-2);
      expect(report.problems).toContainEqual(expect.stringMatching(/^hsm-b2: NTLS .* not reachable/));
      expect(report.problems).toContain("hsm-b1: NTLS certificate expired 2 day(s) ago");
    } finally {
      await twin.setFault("hsm-b2", "close-ntls", "off");
    }
  });
});

describe("failing closed over the twin", () => {
  it("stops patch-verify with a non-retryable ParseFailed when hsm show comes back garbled", async () => {
    await twin.setFault("hsm-a3", "garble", "hsm show");
    const log = twin.appliances.get("hsm-a3")!.state.commandLog;
    const before = log.length;
    try {
      const { result, evidence } = await run("patch-verify", { target: "hsm-a3" });
      expect(result.status).toBe("failed");
      expect(result.error).toMatchObject({ type: "ParseFailed", retryable: false, device: "hsm-a3" });
      expect(result.steps.map((s) => s.status)).toEqual(["failed", "pending", "pending"]);
      // Nothing after the failed read was sent.
      expect(log.slice(before).map((c) => c.command)).toEqual(["hsm show"]);
      expect(await evidence.kinds()).toContain("error");
    } finally {
      await twin.setFault("hsm-a3", "garble", "off");
    }
  });

  it("a retried job resumes after its last checkpoint: finished reads are not sent again", async () => {
    const jobId = `twin-${process.pid}-resume`;
    const b1 = twin.appliances.get("hsm-b1")!.state.commandLog;
    const b2 = twin.appliances.get("hsm-b2")!.state.commandLog;
    const [b1Before, b2Before] = [b1.length, b2.length];
    await twin.setFault("hsm-b2", "drop", "package list");
    let first: Awaited<ReturnType<typeof run>>["result"];
    try {
      ({ result: first } = await run("patch-verify", { target: "ha-tokens" }, jobId));
    } finally {
      await twin.setFault("hsm-b2", "drop", "off");
    }
    expect(first.status).toBe("failed");
    // A dropped connection is retryable: the queue retries the job, which resumes here.
    expect(first.error).toMatchObject({ type: "ConnectionLost", retryable: true, device: "hsm-b2" });
    expect(first.steps.filter((s) => s.status === "done").map((s) => s.id)).toEqual([
      "hsm-show:hsm-b1",
      "hsm-show:hsm-b2",
      "hsm-show:hsm-b3",
      "package-list:hsm-b1",
    ]);

    const { result: second, evidence } = await run("patch-verify", { target: "ha-tokens" }, jobId);
    expect(second.status).toBe("succeeded");
    expect(second.steps.map((s) => s.status)).toEqual([
      "resumed",
      "resumed",
      "resumed",
      "resumed",
      "done",
      "done",
      "done",
    ]);
    // hsm-b1 got its two reads once; hsm-b2 its hsm show once and package list twice (dropped, then answered).
    expect(b1.slice(b1Before).map((c) => c.command)).toEqual(["hsm show", "package list"]);
    expect(b2.slice(b2Before).map((c) => c.command)).toEqual(["hsm show", "package list", "package list"]);
    expect((second.steps.at(-1)!.result as unknown as PatchVerifyResult).rebootUnsafe).toEqual(["hsm-b3"]);
    expect(await evidence.verify()).toBe(true);
  });

  it("refuses to report on a device that answers with another serial than the fleet file declares", async () => {
    const wrong = structuredClone(twin.fleet);
    wrong.devices.find((d) => d.name === "hsm-a1")!.serial = "799999";
    const { result } = await run("patch-verify", { target: "hsm-a1" }, undefined, wrong);
    expect(result.status).toBe("failed");
    expect(result.error).toMatchObject({
      type: "DeviceIdentityMismatch",
      retryable: false,
      device: "hsm-a1",
    });
    expect(result.error?.message).toContain("reports HSM serial 700101, the fleet file declares 799999");
    expect(result.steps.map((s) => s.status)).toEqual(["failed", "pending", "pending"]);
  });
});
