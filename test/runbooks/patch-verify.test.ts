// patch-verify over the real twin: versions, the KB0019789 verdict, and failing closed (garbled reply, a dropped
// command resumed from its checkpoint, a device answering with another serial).
import { beforeAll, describe, expect, it } from "vitest";
import { assertRebootSafe, isRebootSafe, type PatchVerifyResult } from "../../runbooks/patch-verify.ts";
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
