// The report as an operation answers it (src/api/ops/fleet.ts reportOp, for the API and the CLI on the daemon host):
// the fleet's report, or one device's detail with its jobs; an unknown device is a 404 naming the fleet's devices.
import { ApiError } from "../api/errors.ts";
import type { Fleet } from "../config/schema.ts";
import type { RedisClient } from "../redis/client.ts";
import { buildDeviceDetail, buildReport } from "./report.ts";

export async function reportService(
  redis: RedisClient,
  fleet: Fleet,
  opts: { device?: string | undefined; staleAfterMs?: number | undefined },
): Promise<unknown> {
  const reportOpts = opts.staleAfterMs !== undefined ? { staleAfterMs: opts.staleAfterMs } : {};
  if (opts.device === undefined) return buildReport(redis, fleet, reportOpts);
  const detail = await buildDeviceDetail(redis, fleet, opts.device, reportOpts);
  if (!detail)
    throw new ApiError(
      404,
      `no device '${opts.device}' in the fleet or the state model (devices: ${fleet.devices.map((d) => d.name).join(", ")})`,
    );
  return detail;
}
