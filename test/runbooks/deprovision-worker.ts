// A worker process for the SIGKILL variant of deprovision-crash.test.ts: runs one attempt of a deprovision job and
// kills itself with SIGKILL at the chosen checkpoint (a real process death: no finally blocks, no lock release).
// argv: <fleet.json> <jobId> <device> <step> <before-commit|after-commit>; env: REDIS_URL, LF_DATA_DIR, LF_ARM.
import { readFileSync } from "node:fs";
import type { Fleet } from "../../src/config/schema.ts";
import { RedisCheckpointStore } from "../../src/engine/checkpoints.ts";
import { connectRedis } from "../../src/redis/client.ts";
import { type ArmEndpoint, connect, crashingCheckpoints, runDeprovision } from "../helpers/deprovision.ts";

const [fleetFile, jobId, device, step, when] = process.argv.slice(2);
if (!fleetFile || !jobId || !device || !step || (when !== "before-commit" && when !== "after-commit"))
  throw new Error(
    "usage: deprovision-worker <fleet.json> <jobId> <device> <step> <before-commit|after-commit>",
  );
const fleet = JSON.parse(readFileSync(fleetFile, "utf8")) as Fleet;
const arm = JSON.parse(process.env.LF_ARM ?? "") as ArmEndpoint;
const redis = connectRedis({ url: process.env.REDIS_URL });
const conn = connect(fleet, arm);
const result = await runDeprovision(conn, fleet, redis, process.env.LF_DATA_DIR ?? "", {
  jobId,
  params: { target: device, backupsConfirmed: true, deleteResourceGroup: true, approvalPollMs: 20 },
  lockTtlMs: 1000,
  checkpoints: crashingCheckpoints(new RedisCheckpointStore(redis), { step, when }, () =>
    process.kill(process.pid, "SIGKILL"),
  ),
});
// Reaching this line means the kill point was never reached: say why and fail.
process.stderr.write(`worker was not killed: ${JSON.stringify(result.error ?? result.status)}\n`);
process.exit(3);
