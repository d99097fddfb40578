// Approvals in tests without racing the clock: a deadline passes by moving the stored deadline to just before the
// Redis server's own clock (the clock every expiry check uses), so "the deadline has passed" is a fact, not a race
// with load; a job's request for approval is awaited as the event it publishes, not polled against a deadline.
import { Cluster } from "ioredis";
import { APPROVAL_REQUESTED_CHANNEL, approvalKey, approvalState } from "../../src/coord/approvals.ts";
import type { RedisClient } from "../../src/redis/client.ts";

export async function passDeadline(r: RedisClient, jobId: string): Promise<void> {
  const [seconds, micros] = (await r.time()) as [string | number, string | number];
  const serverNowMs = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  const raw = await r.get(approvalKey(jobId));
  if (!raw) throw new Error(`job ${jobId} has no approval request`);
  const doc = JSON.parse(raw) as { expiresAt: number };
  doc.expiresAt = serverNowMs - 1;
  await r.set(approvalKey(jobId), JSON.stringify(doc), "KEEPTTL");
}

/**
 * Resolves once job `jobId` has asked for approval — awaited as the event, not polled against a deadline: the
 * request the job publishes when it creates one (APPROVAL_REQUESTED_CHANNEL, the notifier's wake-up), or the standing
 * request found right after subscribing (asked before we listened, or a resumed job re-asking, which publishes
 * nothing). It has no deadline of its own: a job that never asks is caught by the test's timeout, which only a hang
 * reaches.
 */
export async function approvalAsked(redis: RedisClient, jobId: string): Promise<void> {
  // A subscribed connection can issue no other command: its own connection, to the same server or cluster.
  const subscriber = redis instanceof Cluster ? redis.duplicate() : redis.duplicate();
  try {
    const asked = new Promise<void>((resolve) =>
      subscriber.on("message", (_channel: string, id: string) => {
        if (id === jobId) resolve();
      }),
    );
    await subscriber.subscribe(APPROVAL_REQUESTED_CHANNEL);
    if (await approvalState(redis, jobId)) return;
    await asked;
  } finally {
    subscriber.disconnect();
  }
}
