import { describe, expect, it } from "vitest";
import { z } from "zod";
import { getRunbook } from "../../runbooks/index.ts";
import { ParamsInvalid } from "../../src/engine/errors.ts";
import { planJob, renderPlan } from "../../src/engine/plan.ts";
import { defineRunbook, expandSteps } from "../../src/engine/runbook.ts";
import { demoFleet } from "../helpers/engine.ts";

const fleet = demoFleet();

describe("planJob", () => {
  it("lists patch-verify's steps for an HA group with the exact lunash commands, without connecting", () => {
    const plan = planJob(getRunbook("patch-verify"), { target: "ha-tokens" }, fleet);
    expect(plan.targets).toEqual({ devices: ["hsm-b1", "hsm-b2", "hsm-b3"], clientHosts: [] });
    expect(plan.changes).toBe(false);
    expect(plan.steps.map((s) => s.id)).toEqual([
      "hsm-show:hsm-b1",
      "hsm-show:hsm-b2",
      "hsm-show:hsm-b3",
      "package-list:hsm-b1",
      "package-list:hsm-b2",
      "package-list:hsm-b3",
      "verdict",
    ]);
    expect(plan.steps[1]?.commands).toEqual([{ via: "lunash", on: "hsm-b2", command: "hsm show" }]);
    expect(plan.steps[5]?.commands).toEqual([{ via: "lunash", on: "hsm-b3", command: "package list" }]);
    expect(plan.steps[6]?.commands).toEqual([]);
    const text = renderPlan(plan);
    expect(text).toContain("Locks devices: hsm-b1, hsm-b2, hsm-b3");
    expect(text).not.toContain("Locks no target");
    expect(text).toContain("Read-only");
    expect(text).toContain("lunash hsm-b2> hsm show");
    expect(text).toContain("lunash hsm-b3> package list");
    expect(text).toMatch(/7\. \[read\] verdict/);
  });

  it("says that a job locking none of its targets (vault-placement) holds a lock of its own id", () => {
    const plan = planJob(getRunbook("vault-placement"), { target: "fleet" }, fleet);
    expect(plan.targets).toEqual({ devices: [], clientHosts: [] });
    expect(renderPlan(plan)).toContain(
      "Locks no target: the job holds a lock of its own id, so two deliveries of it never run side by side.",
    );
  });

  it("lists tcp-check's probes with endpoints and vtl verify on the client hosts", () => {
    const plan = planJob(getRunbook("tcp-check"), { target: "client-a", timeoutMs: 2000 }, fleet);
    expect(plan.targets).toEqual({ devices: ["hsm-a1", "hsm-a2", "hsm-a3"], clientHosts: ["client-a"] });
    const a2 = plan.steps.find((s) => s.id === "ntls-probe:hsm-a2");
    expect(a2?.commands).toEqual([
      { via: "tcp", on: "127.0.1.2:1792", command: "connect (timeout 2000 ms)" },
      {
        via: "tls",
        on: "127.0.1.2:1792",
        command: "handshake   (reads the server certificate; timeout 2000 ms)",
      },
    ]);
    expect(plan.steps.find((s) => s.id === "vtl-verify:client-a")?.commands).toEqual([
      { via: "host", on: "client-a", command: "vtl verify" },
    ]);
    expect(renderPlan(plan)).toContain("shell client-a> vtl verify");
  });

  it("marks a plan that changes something, and refuses bad params", () => {
    const rb = defineRunbook({
      name: "changer",
      description: "changes",
      params: z.object({ device: z.string() }),
      targets: (p) => ({ devices: [p.device], clientHosts: [] }),
      steps: [
        {
          id: "restart",
          title: "restart",
          kind: "change",
          forEach: "device",
          commands: () => ["hsm restart"],
          run: async () => null,
        },
      ],
    });
    const plan = planJob(rb, { device: "hsm-a1" }, fleet);
    expect(plan.changes).toBe(true);
    expect(renderPlan(plan)).toContain("CHANGES");
    expect(() => planJob(rb, {}, fleet)).toThrow(ParamsInvalid);
  });

  it("refuses malformed runbooks at definition time", () => {
    const step = { id: "a", title: "a", kind: "read" as const, run: async () => null };
    const base = {
      description: "d",
      params: z.object({}),
      targets: () => ({ devices: [], clientHosts: [] }),
    };
    expect(() => defineRunbook({ ...base, name: "dup", steps: [step, step] })).toThrow(/duplicate step id/);
    expect(() => defineRunbook({ ...base, name: "Bad Name", steps: [step] })).toThrow(/kebab-case/);
    expect(() => defineRunbook({ ...base, name: "empty", steps: [] })).toThrow(/no steps/);
    // A bare command string on a step without a target has nowhere to go.
    const nowhere = defineRunbook({
      ...base,
      name: "nowhere",
      steps: [{ ...step, commands: () => ["hsm show"] }],
    });
    expect(() => expandSteps(nowhere.steps, {}, fleet, { devices: [], clientHosts: [] })).toThrow(
      /forEach target/,
    );
  });

  it("getRunbook names the known runbooks when asked for an unknown one", () => {
    expect(() => getRunbook("ha-recover-typo")).toThrow(
      /unknown runbook 'ha-recover-typo' \(known runbooks: app-crypto-gate, cmk-health, deprovision, ha-recover, ha-sync, mhsm-audit, mhsm-retire, ntls-cert-sync, patch-verify, tcp-check, vault-placement\)/,
    );
  });
});
