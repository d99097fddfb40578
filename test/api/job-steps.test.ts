// The STEPS column of `jobs` and the console (stepsShown, src/api/ops/jobs.ts): a finished job shows how far its
// stored result got, a running one its progress, and nothing is made up when neither is known.
import { describe, expect, it } from "vitest";
import { stepsShown } from "../../src/api/ops/jobs.ts";
import type { StepStatus } from "../../src/engine/runner.ts";

const result = (...statuses: StepStatus[]) => ({
  steps: statuses.map((status, i) => ({ id: `s${i}`, title: `step ${i}`, kind: "read" as const, status })),
});

describe("stepsShown", () => {
  it("a finished job: its stored result, steps resumed from an earlier attempt counted as done", () => {
    expect(stepsShown("completed", undefined, result("done", "resumed", "done"))).toBe("3/3");
    expect(stepsShown("failed", { total: 3, done: 0 }, result("done", "failed", "pending"))).toBe("1/3");
  });

  it("a running job: its progress, even when an earlier attempt left a result", () => {
    expect(stepsShown("active", { total: 5, done: 2 }, result("done", "failed", "pending"))).toBe("2/5");
    expect(stepsShown("active", undefined, undefined)).toBe("-");
  });

  it("nothing known: '-', never a guess", () => {
    expect(stepsShown("completed", undefined, undefined)).toBe("-");
    expect(stepsShown("waiting", 0, undefined)).toBe("-");
  });
});
