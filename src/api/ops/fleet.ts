// Reading the fleet and acting on its shared state: who am I, the fleet (without credentials), the report, HA
// breakers (and releasing one, attributed, recorded and sealed), the maintenance-window schedules, and API tokens
// (admin: created and printed once, listed without their hash, revoked — each recorded in the `tokens` log).
import { z } from "zod";
import { releaseBreaker } from "../../../runbooks/lib/breaker.ts";
import { ROLES } from "../../config/identity-schema.ts";
import type { Fleet } from "../../config/schema.ts";
import { RedisStateStore } from "../../engine/state.ts";
import { EvidenceLog } from "../../evidence/log.ts";
import { sealEvidence, sealFinal } from "../../evidence/signing.ts";
import type { Principal } from "../../identity/principal.ts";
import { type Operation, operationsOf } from "../../identity/roles.ts";
import {
  createToken,
  listTokens,
  parseExpiry,
  revokeToken,
  TokenError,
  type TokenInfo,
} from "../../identity/tokens.ts";
import { publicFleet } from "../../queue/jobs.ts";
import { findWindow, listSchedules, windowState } from "../../queue/schedules.ts";
import { ApiError } from "../errors.ts";
import { authorize, type OpContext } from "./context.ts";

export function whoamiOp(ctx: OpContext): Principal & { operations: Operation[] } {
  authorize(ctx.principal, "fleet.read");
  return { ...ctx.principal, operations: operationsOf(ctx.principal.roles) };
}

export function fleetOp(ctx: OpContext): Fleet {
  authorize(ctx.principal, "fleet.read");
  return publicFleet(ctx.services.fleet);
}

export async function reportOp(
  ctx: OpContext,
  opts: { device?: string | undefined; staleAfterMs?: number | undefined } = {},
): Promise<unknown> {
  authorize(ctx.principal, "fleet.read");
  return ctx.services.report(opts);
}

const FAILURES_KEY = /^ha-breaker:(.+):([^:]+\/[^:]+):failures$/;

export interface BreakerRow {
  group: string;
  member: string;
  failures: number;
}

export async function breakersOp(ctx: OpContext): Promise<BreakerRow[]> {
  authorize(ctx.principal, "ha.read");
  const state = new RedisStateStore(ctx.services.redis);
  const rows: BreakerRow[] = [];
  for (const key of await state.keys("ha-breaker:")) {
    const m = FAILURES_KEY.exec(key);
    if (m) rows.push({ group: m[1]!, member: m[2]!, failures: Number(await state.get(key)) });
  }
  return rows;
}

export const releaseBreakerBodySchema = z
  .object({
    group: z.string().min(1),
    member: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/, "member is <device>/<partition>"),
    reason: z.string().trim().min(1).max(2000).default("released by operator"),
  })
  .strict();

export async function releaseBreakerOp(
  ctx: OpContext,
  body: z.output<typeof releaseBreakerBodySchema>,
): Promise<{ group: string; member: string; cleared: number; evidenceJobId: string; by: string }> {
  authorize(ctx.principal, "ha.release-breaker");
  const { redis, dataDir, evidenceSigner } = ctx.services;
  const by = ctx.principal.name;
  const { group, member, reason } = body;
  const cleared = await releaseBreaker(new RedisStateStore(redis), group, member);
  if (cleared === 0)
    throw new ApiError(409, `nothing to release: no failed recoveries recorded for ${member} in ${group}`);
  const evidenceJobId = `ha-breaker:${group}:${member.replace("/", "_")}:${Date.now()}`;
  const log = await EvidenceLog.open(redis, dataDir, evidenceJobId);
  await log.append("note", { event: "ha-breaker-released", group, member, failures: cleared, reason }, by);
  await sealFinal(log, evidenceSigner, redis, "released");
  return { group, member, cleared, evidenceJobId, by };
}

export interface ScheduleRow {
  id: string;
  /** Interval schedulers (automatic HA recovery): every how many minutes, with what parameters, as whom. */
  everyMinutes?: number;
  params?: Record<string, unknown>;
  actor?: string;
  window?: string;
  runbook?: string;
  target?: string;
  cron?: string;
  timezone?: string;
  /** ISO time of the next run. */
  next?: string;
  durationMinutes: number | null;
  /** Whether the window is open now; null when the fleet no longer has the window. */
  open: boolean | null;
}

export async function schedulesOp(ctx: OpContext): Promise<ScheduleRow[]> {
  authorize(ctx.principal, "schedules.read");
  return (await listSchedules(ctx.services.queue)).map((s) => {
    const w = s.window ? findWindow(ctx.services.fleet, s.window) : undefined;
    const { next, ...rest } = s;
    return {
      ...rest,
      ...(next ? { next: next.toISOString() } : {}),
      durationMinutes: w?.durationMinutes ?? null,
      open: w ? windowState(w).open : null,
    };
  });
}

// ---- API tokens ----

export const createTokenBodySchema = z
  .object({ name: z.string().min(1), role: z.enum(ROLES), expires: z.string().min(1) })
  .strict();

/** Token events go to one log per UTC day, sealed after each: who created or revoked what (never the secret). */
async function recordTokenEvent(ctx: OpContext, data: Record<string, unknown>): Promise<void> {
  const { redis, dataDir, evidenceSigner } = ctx.services;
  const log = await EvidenceLog.open(redis, dataDir, `tokens:${new Date().toISOString().slice(0, 10)}`);
  await log.append("note", data, ctx.principal.name);
  await sealEvidence(log, evidenceSigner, redis);
}

export async function listTokensOp(ctx: OpContext): Promise<TokenInfo[]> {
  authorize(ctx.principal, "tokens.manage");
  return listTokens(ctx.services.redis);
}

/** The only time the token is ever shown. */
export async function createTokenOp(
  ctx: OpContext,
  body: z.output<typeof createTokenBodySchema>,
): Promise<{ token: string; record: TokenInfo }> {
  authorize(ctx.principal, "tokens.manage");
  try {
    const created = await createToken(ctx.services.redis, {
      name: body.name,
      role: body.role,
      expiresAt: parseExpiry(body.expires),
      createdBy: ctx.principal.name,
    });
    const { id, name, role, expiresAt } = created.record;
    await recordTokenEvent(ctx, { event: "token-created", id, name, role, expiresAt });
    return created;
  } catch (err) {
    if (err instanceof TokenError) throw new ApiError(400, err.message);
    throw err;
  }
}

export async function revokeTokenOp(
  ctx: OpContext,
  name: string,
): Promise<{ name: string; revoked: number }> {
  authorize(ctx.principal, "tokens.manage");
  const revoked = await revokeToken(ctx.services.redis, name, ctx.principal.name);
  if (revoked === 0) throw new ApiError(404, `no active token '${name}'`);
  await recordTokenEvent(ctx, { event: "token-revoked", name, revoked });
  return { name, revoked };
}
