// Runbooks run over the real twin (demo fleet, rebased to a private loopback block): real SSH, the real shell driver
// and parsers, real TLS on the NTLS ports, real Redis checkpoints and evidence. One twin per test file.
import { afterAll, beforeAll } from "vitest";
import { getRunbook } from "../../runbooks/index.ts";
import { RedisCheckpointStore } from "../../src/engine/checkpoints.ts";
import { runJob } from "../../src/engine/runner.ts";
import { startTwin, type Twin } from "../../src/sim/twin.ts";
import { demoFleet, JobEvidence } from "./engine.ts";
import { type FleetShells, fleetShells } from "./fleet-shells.ts";
import type { TestRedis } from "./redis.ts";

export interface TwinJobs {
  /** The running twin (set once the file's beforeAll has run). */
  readonly twin: Twin;
  /** Run one job of a runbook to its end, with its evidence. */
  run(
    runbook: string,
    params: unknown,
    jobId?: string,
    fleet?: Twin["fleet"],
  ): Promise<{ result: Awaited<ReturnType<typeof runJob>>; evidence: JobEvidence }>;
}

/** Registers the file's twin and shells (beforeAll/afterAll) and returns the way to run jobs over them. */
export function useTwinJobs(redis: TestRedis): TwinJobs {
  let twin: Twin | undefined;
  let ssh: FleetShells | undefined;
  let seq = 0;
  beforeAll(async () => {
    twin = await startTwin(demoFleet(), { rebase: true });
    ssh = fleetShells(twin.fleet);
  });
  afterAll(async () => {
    await ssh?.close();
    await twin?.stop();
  });
  return {
    get twin() {
      if (!twin) throw new Error("the twin is not started yet (use it inside a test)");
      return twin;
    },
    async run(runbook, params, jobId = `twin-${process.pid}-${++seq}`, fleet) {
      if (!twin || !ssh) throw new Error("the twin is not started yet (use it inside a test)");
      const evidence = new JobEvidence(redis, jobId);
      const result = await runJob({
        runbook: getRunbook(runbook),
        params,
        jobId,
        fleet: fleet ?? twin.fleet,
        shells: ssh.shells,
        files: ssh.files,
        evidence,
        checkpoints: new RedisCheckpointStore(redis.client()),
        actor: "test",
      });
      return { result, evidence };
    },
  };
}
