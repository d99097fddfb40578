// Approval deadlines in tests, without sleeping past them: the stored deadline is moved to just before the Redis
// server's own clock (the clock every expiry check uses), so "the deadline has passed" is a fact, not a race with load.
import { approvalKey } from "../../src/coord/approvals.ts";
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
