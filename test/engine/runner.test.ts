import { describe, expect, it } from "vitest";
import { z } from "zod";
import { parsers } from "../../parsers/index.ts";
import { Secret } from "../../src/config/secret.ts";
import { acquireDeviceLocks } from "../../src/coord/locks.ts";
import { RedisCheckpointStore } from "../../src/engine/checkpoints.ts";
import { EngineError, isRetryable } from "../../src/engine/errors.ts";
import { defineRunbook } from "../../src/engine/runbook.ts";
import { runJob } from "../../src/engine/runner.ts";
import { resolveTarget } from "../../src/engine/targets.ts";
import { ConnectionLost } from "../../src/transport/errors.ts";
import { demoFleet, hsmShowReply, JobEvidence, noShells, ScriptedShells } from "../helpers/engine.ts";
import { withRedis } from "../helpers/redis.ts";

const redis = await withRedis();
const fleet = demoFleet();
let jobSeq = 0;
const newJobId = () => `runner-${process.pid}-${++jobSeq}`;

/** A three-step read runbook; `behaviour` lets a test make one device's step fail. */
function sampleRunbook(runs: string[], failOn?: { device: string; error: () => Error }) {
  return defineRunbook({
    name: "sample",
    description: "engine test runbook",
    params: z.object({ target: z.string() }).strict(),
    targets: (p, f) => resolveTarget(f, p.target, ["fleet", "device", "haGroup"]),
    steps: [
      {
        id: "begin",
        title: "begin",
        kind: "read",
        async run(ctx) {
          runs.push(ctx.stepId);
          return { devices: ctx.targets.devices };
        },
      },
      {
        id: "hsm-show",
        title: (d) => `hsm show on ${d}`,
        kind: "read",
        forEach: "device",
        commands: () => ["hsm show"],
        async run(ctx) {
          runs.push(ctx.stepId);
          if (failOn && ctx.target === failOn.device) throw failOn.error();
          const shell = await ctx.lunash(ctx.target!);
          const show = await shell.send("hsm show", parsers.hsmShow);
          return { device: ctx.target, serial: show.serial };
        },
      },
      {
        id: "summary",
        title: "summary",
        kind: "read",
        async run(ctx) {
          runs.push(ctx.stepId);
          return {
            serials: ctx.targets.devices.map(
              (d) => (ctx.requireCheckpoint("hsm-show", d) as { serial: string }).serial,
            ),
            begin: ctx.checkpoint("begin"),
          };
        },
      },
    ],
  });
}

const serialOf = (device: string) => fleet.devices.find((d) => d.name === device)!.serial;
const answering = () =>
  new ScriptedShells((on, command) =>
    command === "hsm show" ? hsmShowReply(serialOf(on)) : new Error(`unexpected ${command}`),
  );

describe("runJob", () => {
  it("runs every step in order, checkpoints each, and records evidence for every command", async () => {
    const runs: string[] = [];
    const sessions = answering();
    const jobId = newJobId();
    const evidence = new JobEvidence(redis, jobId);
    const checkpoints = new RedisCheckpointStore(redis.client());
    const result = await runJob({
      runbook: sampleRunbook(runs),
      params: { target: "ha-payments" },
      jobId,
      fleet,
      shells: sessions,
      evidence,
      checkpoints,
      actor: "alice",
    });
    expect(result.status).toBe("succeeded");
    expect(result.targets).toEqual({
      kind: "haGroup",
      devices: ["hsm-a1", "hsm-a2", "hsm-a3"],
      clientHosts: ["client-a"],
    });
    expect(result.steps.map((s) => [s.id, s.status])).toEqual([
      ["begin", "done"],
      ["hsm-show:hsm-a1", "done"],
      ["hsm-show:hsm-a2", "done"],
      ["hsm-show:hsm-a3", "done"],
      ["summary", "done"],
    ]);
    expect(result.steps.at(-1)?.result).toEqual({
      serials: ["700101", "700102", "700103"],
      begin: { devices: ["hsm-a1", "hsm-a2", "hsm-a3"] },
    });
    expect(runs).toEqual(["begin", "hsm-show:hsm-a1", "hsm-show:hsm-a2", "hsm-show:hsm-a3", "summary"]);
    expect(sessions.sent).toEqual([
      { on: "hsm-a1", command: "hsm show" },
      { on: "hsm-a2", command: "hsm show" },
      { on: "hsm-a3", command: "hsm show" },
    ]);
    expect([...(await checkpoints.finishedSteps(jobId)).keys()]).toEqual(result.steps.map((s) => s.id));

    const records = await evidence.records();
    expect(await evidence.verify()).toBe(true);
    const kinds = records.map((r) => r.kind);
    expect(kinds.slice(0, 2)).toEqual(["requested", "plan"]);
    expect(kinds.at(-1)).toBe("result");
    expect(records.at(-1)?.data).toMatchObject({ status: "succeeded" });
    const finishedSteps = records.filter(
      (r) => r.kind === "step" && (r.data as { event: string }).event === "finished",
    );
    expect(finishedSteps).toHaveLength(5);
    // The plan on record names every command before anything is sent.
    const planned = (records[1]!.data as { steps: { id: string; commands: unknown[] }[] }).steps;
    expect(planned.find((p) => p.id === "hsm-show:hsm-a3")?.commands).toEqual([
      { via: "lunash", on: "hsm-a3", command: "hsm show" },
    ]);
    // For each command: sent, reply, parsed, in that order, naming the device.
    const a2 = records.filter(
      (r) => ["command", "reply", "parse"].includes(r.kind) && (r.data as { on: string }).on === "hsm-a2",
    );
    expect(a2.map((r) => r.kind)).toEqual(["command", "reply", "parse"]);
    expect(a2[1]?.data).toMatchObject({ step: "hsm-show:hsm-a2", raw: hsmShowReply("700102") });
    expect(a2[2]?.data).toMatchObject({ parser: "hsm-show", result: { serial: "700102" } });
    expect(records.every((r) => r.actor === "alice")).toBe(true);
  });

  it("stops at the first failing step with its typed error; a resumed job never re-runs finished steps", async () => {
    const runs: string[] = [];
    const jobId = newJobId();
    const evidence = new JobEvidence(redis, jobId);
    const checkpoints = new RedisCheckpointStore(redis.client());
    const failing = sampleRunbook(runs, {
      device: "hsm-a2",
      error: () => new ConnectionLost({ target: "hsm-a2", command: "hsm show", cause: "connection reset" }),
    });
    const first = await runJob({
      runbook: failing,
      params: { target: "ha-payments" },
      jobId,
      fleet,
      shells: answering(),
      evidence,
      checkpoints,
    });
    expect(first.status).toBe("failed");
    expect(first.error).toMatchObject({
      type: "ConnectionLost",
      retryable: true,
      device: "hsm-a2",
      command: "hsm show",
    });
    expect(first.steps.map((s) => s.status)).toEqual(["done", "done", "failed", "pending", "pending"]);
    expect(runs).toEqual(["begin", "hsm-show:hsm-a1", "hsm-show:hsm-a2"]);
    expect([...(await checkpoints.finishedSteps(jobId)).keys()]).toEqual(["begin", "hsm-show:hsm-a1"]);
    expect(await evidence.kinds()).toContain("error");
    expect((await evidence.records()).at(-1)?.data).toMatchObject({
      status: "failed",
      error: { type: "ConnectionLost" },
    });

    // The retry: same job id, the device is back.
    runs.length = 0;
    const sessions = answering();
    const second = await runJob({
      runbook: sampleRunbook(runs),
      params: { target: "ha-payments" },
      jobId,
      fleet,
      shells: sessions,
      evidence,
      checkpoints,
    });
    expect(second.status).toBe("succeeded");
    expect(second.steps.map((s) => s.status)).toEqual(["resumed", "resumed", "done", "done", "done"]);
    expect(runs).toEqual(["hsm-show:hsm-a2", "hsm-show:hsm-a3", "summary"]);
    expect(sessions.sent.map((s) => s.on)).toEqual(["hsm-a2", "hsm-a3"]);
    // The summary still sees the result hsm-a1 produced in the first attempt.
    expect(second.steps.at(-1)?.result).toMatchObject({ serials: ["700101", "700102", "700103"] });
    const notes = (await evidence.records()).filter((r) => r.kind === "note");
    expect(notes.at(-1)?.data).toMatchObject({
      event: "resumed",
      alreadyFinished: ["begin", "hsm-show:hsm-a1"],
    });
    // One chain across both attempts, verified.
    expect(await evidence.verify()).toBe(true);
    expect((await evidence.kinds()).filter((k) => k === "requested")).toHaveLength(1);
  });

  it("marks NonRetryable errors non-retryable, whatever flag they carry", async () => {
    const jobId = newJobId();
    class WrongCredential extends EngineError {
      override name = "WrongCredential";
      readonly retryable = true; // even a mistaken flag does not make it retryable
    }
    const runs: string[] = [];
    const result = await runJob({
      runbook: sampleRunbook(runs, {
        device: "hsm-a1",
        error: () => new WrongCredential("hsm-a1: wrong password"),
      }),
      params: { target: "hsm-a1" },
      jobId,
      fleet,
      shells: answering(),
      evidence: new JobEvidence(redis, jobId),
      checkpoints: new RedisCheckpointStore(redis.client()),
    });
    expect(result.error).toMatchObject({ type: "WrongCredential", retryable: false });
    expect(isRetryable(new ConnectionLost({ target: "x", cause: "y" }))).toBe(true);
    expect(isRetryable(new ConnectionLost({ target: "x", cause: "y", retryable: false }))).toBe(false);
  });

  it("a device error in the reply fails the step with the device's typed error", async () => {
    const jobId = newJobId();
    const evidence = new JobEvidence(redis, jobId);
    const sessions = new ScriptedShells(
      () =>
        "\nError:  'hsm show' failed. (C000040A : RC_OBJECT_NOT_IN_LIST)\n\nError:  nope\n\nCommand Result : 65535 (Luna Shell execution)\n",
    );
    const result = await runJob({
      runbook: sampleRunbook([]),
      params: { target: "hsm-a1" },
      jobId,
      fleet,
      shells: sessions,
      evidence,
      checkpoints: new RedisCheckpointStore(redis.client()),
    });
    expect(result.status).toBe("failed");
    expect(result.error).toMatchObject({
      type: "DeviceError",
      retryable: false,
      code: "C000040A",
      device: "hsm-a1",
    });
    const parsed = (await evidence.records()).find((r) => r.kind === "parse");
    expect(parsed?.data).toMatchObject({
      parser: "hsm-show",
      deviceError: { code: "C000040A", name: "RC_OBJECT_NOT_IN_LIST", message: "nope", warnings: [] },
    });
  });

  it("fails closed when the reply cannot be read, and gives the session up", async () => {
    const sessions = new ScriptedShells(
      () => "   HSM Label:   no serial here\n\nCommand Result : 0 (Success)\n",
    );
    const jobId = newJobId();
    const result = await runJob({
      runbook: sampleRunbook([]),
      params: { target: "hsm-a1" },
      jobId,
      fleet,
      shells: sessions,
      evidence: new JobEvidence(redis, jobId),
      checkpoints: new RedisCheckpointStore(redis.client()),
    });
    expect(result.error).toMatchObject({
      type: "ParseFailed",
      retryable: false,
      device: "hsm-a1",
      command: "hsm show",
    });
    expect(result.error?.message).toContain("unparseable output");
  });

  it("refuses a step that reaches for a device outside the job's targets (the queue never locked it)", async () => {
    const sessions = answering();
    const jobId = newJobId();
    const rogue = defineRunbook({
      name: "rogue",
      description: "touches more than it declares",
      params: z.object({}),
      targets: () => ({ devices: ["hsm-a1"], clientHosts: [] }),
      steps: [
        {
          id: "sneak",
          title: "sneak",
          kind: "read",
          async run(ctx) {
            await ctx.lunash("hsm-b1");
            return null;
          },
        },
      ],
    });
    const result = await runJob({
      runbook: rogue,
      params: {},
      jobId,
      fleet,
      shells: sessions,
      evidence: new JobEvidence(redis, jobId),
      checkpoints: new RedisCheckpointStore(redis.client()),
    });
    expect(result.error).toMatchObject({ type: "TargetNotLocked", retryable: false });
    expect(sessions.opened).toEqual([]);
  });

  it("rejects invalid params and unknown targets before touching anything", async () => {
    const checkpoints = new RedisCheckpointStore(redis.client());
    const jobId = newJobId();
    const evidence = new JobEvidence(redis, jobId);
    const bad = await runJob({
      runbook: sampleRunbook([]),
      params: { target: 42 },
      jobId,
      fleet,
      shells: noShells,
      evidence,
      checkpoints,
    });
    expect(bad.error).toMatchObject({ type: "ParamsInvalid", retryable: false });
    expect(bad.error?.message).toContain("target");
    const unknown = await runJob({
      runbook: sampleRunbook([]),
      params: { target: "hsm-zz" },
      jobId: `${jobId}-b`,
      fleet,
      shells: noShells,
      evidence: new JobEvidence(redis, `${jobId}-b`),
      checkpoints,
    });
    expect(unknown.error).toMatchObject({ type: "UnknownTargetError", retryable: false });
    expect(unknown.error?.message).toContain("hsm-a1");
    expect(await evidence.kinds()).toEqual(["requested", "error", "result"]);
  });

  it("stops between steps when cancelled, without running the next step", async () => {
    const controller = new AbortController();
    const runs: string[] = [];
    const runbook = defineRunbook({
      name: "cancel-me",
      description: "x",
      params: z.object({}),
      targets: () => ({ devices: [], clientHosts: [] }),
      steps: [
        {
          id: "one",
          title: "one",
          kind: "read",
          async run() {
            runs.push("one");
            controller.abort();
            return 1;
          },
        },
        {
          id: "two",
          title: "two",
          kind: "change",
          async run() {
            runs.push("two");
            return 2;
          },
        },
      ],
    });
    const jobId = newJobId();
    const checkpoints = new RedisCheckpointStore(redis.client());
    const result = await runJob({
      runbook,
      params: {},
      jobId,
      fleet,
      shells: noShells,
      evidence: new JobEvidence(redis, jobId),
      checkpoints,
      signal: controller.signal,
    });
    expect(result.status).toBe("cancelled");
    expect(runs).toEqual(["one"]);
    expect([...(await checkpoints.finishedSteps(jobId)).keys()]).toEqual(["one"]);
  });

  it("keeps secrets out of results, checkpoints and evidence", async () => {
    const secret = new Secret("Runner-Secret-Pw-77", "literal");
    const sessions = new ScriptedShells(
      (_on, command) =>
        `\nClientID:     ${command.split(" ").at(-1)}\nHostname:     app-1.example\nPartitions:   "app-par1"\n\nCommand Result : 0 (Success)\n`,
    );
    const jobId = newJobId();
    const evidence = new JobEvidence(redis, jobId);
    const runbook = defineRunbook({
      name: "leaky",
      description: "tries to leak",
      params: z.object({}),
      targets: () => ({ devices: ["hsm-a1"], clientHosts: [] }),
      steps: [
        {
          id: "leak",
          title: "leak",
          kind: "read",
          async run(ctx) {
            const shell = await ctx.lunash("hsm-a1");
            await shell.send(`client show -client ${secret.reveal()}`, parsers.clientShow);
            await ctx.evidence.note({ said: secret.reveal() });
            return { secret, text: `pw=${secret.reveal()}` };
          },
        },
      ],
    });
    const checkpoints = new RedisCheckpointStore(redis.client());
    const result = await runJob({
      runbook,
      params: {},
      jobId,
      fleet,
      shells: sessions,
      evidence,
      checkpoints,
    });
    expect(result.status).toBe("succeeded");
    expect(JSON.stringify(result)).not.toContain(secret.reveal());
    const text = await evidence.text();
    expect(text).not.toContain(secret.reveal());
    expect(text).toContain("client show -client [REDACTED]");
    expect(text).toContain('"said":"[REDACTED]"');
    expect(JSON.stringify([...(await checkpoints.finishedSteps(jobId)).values()])).not.toContain(
      secret.reveal(),
    );
  });

  it("stops before the next step and sends nothing once the job's device lock is lost", async () => {
    const jobId = newJobId();
    // A real lock that is never renewed: it is lost once its TTL runs out unconfirmed. The lock set's clock is the
    // test's, so the step below outlives the TTL by moving it, not by sleeping (no race with a loaded machine).
    let now = 1_000_000;
    const locks = await acquireDeviceLocks(redis.client(), ["device:hsm-a1"], {
      owner: jobId,
      ttlMs: 60,
      waitMs: 0,
      autoRenew: false,
      clock: () => now,
    });
    const runs: string[] = [];
    const sessions = answering();
    const runbook = defineRunbook({
      name: "slow-then-read",
      description: "x",
      params: z.object({}),
      targets: () => ({ devices: ["hsm-a1"], clientHosts: [] }),
      steps: [
        {
          id: "wait",
          title: "outlive the lock",
          kind: "read",
          async run() {
            runs.push("wait");
            now += 150;
            return null;
          },
        },
        {
          id: "read",
          title: "read",
          kind: "read",
          async run(ctx) {
            runs.push("read");
            await (await ctx.lunash("hsm-a1")).send("hsm show", parsers.hsmShow);
            return null;
          },
        },
      ],
    });
    const result = await runJob({
      runbook,
      params: {},
      jobId,
      fleet,
      shells: sessions,
      evidence: new JobEvidence(redis, jobId),
      checkpoints: new RedisCheckpointStore(redis.client()),
      locks,
    });
    expect(result.status).toBe("failed");
    expect(result.error).toMatchObject({ type: "LockLostError", retryable: true });
    expect(runs).toEqual(["wait"]);
    expect(sessions.sent).toEqual([]);
    // The step that outlived the lock is not committed: a retry runs it again under a fresh lock.
    expect((await new RedisCheckpointStore(redis.client()).finishedSteps(jobId)).size).toBe(0);
    expect(result.steps.map((s) => s.status)).toEqual(["failed", "pending"]);
  });
});
