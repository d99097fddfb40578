// A running job's cancel flag (`lunafleet job cancel`, or the API's), polled and turned into an AbortSignal that the
// engine checks before every step and command.
import { JobCancelled } from "../engine/errors.ts";
import type { JobLogger } from "../engine/ports.ts";
import type { RedisClient } from "../redis/client.ts";
import { cancelledBy } from "./jobs.ts";

/** The job's cancel flag (set by `lunafleet job cancel`), polled and turned into an AbortSignal. */
export function watchCancel(redis: RedisClient, jobId: string, everyMs: number, log: JobLogger) {
  const controller = new AbortController();
  const abort = () => {
    if (controller.signal.aborted) return;
    log.warn({}, "cancel requested");
    controller.abort(new JobCancelled(`job ${jobId} cancelled by ${by ?? "an operator"}`));
  };
  let by: string | undefined;
  const poll = setInterval(() => {
    cancelledBy(redis, jobId)
      .then((who) => {
        if (who === undefined) return;
        by = who;
        abort();
      })
      .catch(() => {});
  }, everyMs);
  poll.unref();
  return { signal: controller.signal, abort, stop: () => clearInterval(poll) };
}
