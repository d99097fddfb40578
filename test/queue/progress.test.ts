// ProgressReporter (src/queue/progress.ts): at most one progress update per interval, the latest value, never one
// after the attempt ends; on an injected clock and fake timers, so nothing here depends on how fast the machine is.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ProgressReporter } from "../../src/queue/progress.ts";
import type { JobProgress } from "../../src/queue/worker.ts";

beforeEach(() => {
  vi.useFakeTimers({ now: 0 });
});
afterEach(() => {
  vi.useRealTimers();
});

function reporter(intervalMs = 1000) {
  const sent: JobProgress[] = [];
  const r = new ProgressReporter(
    async (p) => {
      sent.push(p);
    },
    { intervalMs, now: () => Date.now() },
  );
  return { r, sent };
}

const step = (done: number): JobProgress => ({ total: 5, done, step: `s${done}`, title: `step ${done}` });

describe("ProgressReporter", () => {
  it("holds the steps of the first interval and then sends only the latest", async () => {
    const { r, sent } = reporter();
    r.report(step(1));
    vi.advanceTimersByTime(300);
    r.report(step(2));
    r.report(step(3));
    vi.advanceTimersByTime(699);
    expect(sent).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(sent).toEqual([step(3)]);
  });

  it("sends at once when the interval has passed since the last send, and waits again after it", async () => {
    const { r, sent } = reporter();
    vi.advanceTimersByTime(1500);
    r.report(step(1));
    expect(sent).toEqual([step(1)]);
    vi.advanceTimersByTime(200);
    r.report(step(2));
    expect(sent).toEqual([step(1)]);
    vi.advanceTimersByTime(800);
    expect(sent).toEqual([step(1), step(2)]);
  });

  it("sendNow (a resumed job's starting point) goes at once and starts a new interval", async () => {
    const { r, sent } = reporter();
    vi.advanceTimersByTime(400);
    await r.sendNow({ total: 5, done: 2 });
    expect(sent).toEqual([{ total: 5, done: 2 }]);
    r.report(step(3));
    vi.advanceTimersByTime(999);
    expect(sent).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(sent).toEqual([{ total: 5, done: 2 }, step(3)]);
  });

  it("a job that succeeds inside the first interval sends nothing, even later", async () => {
    const { r, sent } = reporter();
    r.report(step(1));
    r.report(step(2));
    await r.end(false);
    vi.advanceTimersByTime(5000);
    r.report(step(3));
    vi.advanceTimersByTime(5000);
    expect(sent).toEqual([]);
  });

  it("an attempt that fails sends how far it got, once", async () => {
    const { r, sent } = reporter();
    r.report(step(1));
    r.report(step(2));
    await r.end(true);
    vi.advanceTimersByTime(5000);
    expect(sent).toEqual([step(2)]);
    await r.end(true);
    expect(sent).toEqual([step(2)]);
  });

  it("a failing send never fails the job, and the next value still goes out", async () => {
    const sent: JobProgress[] = [];
    let fail = true;
    const r = new ProgressReporter(
      async (p) => {
        if (fail) throw new Error("Redis away");
        sent.push(p);
      },
      { intervalMs: 1000, now: () => Date.now() },
    );
    vi.advanceTimersByTime(1000);
    r.report(step(1));
    fail = false;
    vi.advanceTimersByTime(1000);
    r.report(step(2));
    await vi.runAllTimersAsync();
    expect(sent).toEqual([step(2)]);
  });
});
