// tcp-check over the real twin: reachability, certificates and days left, and which client hosts verify each device.
import { X509Certificate } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import type { TcpCheckResult } from "../../runbooks/tcp-check.ts";
import type { Twin } from "../../src/sim/twin.ts";
import { withRedis } from "../helpers/redis.ts";
import { useTwinJobs } from "../helpers/twin-jobs.ts";

const redis = await withRedis();
const jobs = useTwinJobs(redis);
const run = jobs.run;
let twin: Twin;
beforeAll(() => {
  twin = jobs.twin;
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
