// ntls-cert-sync, the regeneration (opt-in, one device, approved): `sysconf regenCert` replaces the appliance's NTLS
// certificate; every client of that appliance must then take the new one (the repair does that).
import { parsers } from "../../parsers/index.ts";
import { getDevice } from "../../src/config/model.ts";
import { markNonRetryable } from "../../src/engine/errors.ts";
import type { Step } from "../../src/engine/runbook.ts";
import { certFacts } from "../lib/certs.ts";
import { certFact } from "../lib/facts.ts";
import { applianceCert } from "./diagnose.ts";
import { type Ctx, type Params, RepairNotVerified, warnDays } from "./model.ts";

/** A regen was asked for without the approval it needs. */
export class RegenNotApproved extends Error {
  override name = "RegenNotApproved";
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
    if (!retryable) markNonRetryable(this);
  }
}

export type RegenResult =
  | { device: string; regenerated: false; reason: string }
  | { device: string; regenerated: true; resumed: true; fingerprint256: string }
  | { device: string; regenerated: true; approval: unknown; fingerprint256: string; validTo: string };

export const regenCert = {
  id: "regen-cert",
  title: (d: string) => `Regenerate ${d}'s NTLS server certificate (only with regen=true and an approval)`,
  kind: "change",
  forEach: "device",
  commands: (p: Params) => (p.regen ? ["sysconf regenCert"] : []),
  // The certificate it replaced is seen again, as it is now.
  facts: (r, { params, fleet }) => {
    if (!r.regenerated || !("validTo" in r)) return [];
    const daysLeft = Math.trunc((Date.parse(r.validTo) - Date.now()) / 86_400_000);
    const cert = { validTo: r.validTo, daysLeft, fingerprint256: r.fingerprint256, subject: "" };
    return [certFact(r.device, cert, daysLeft <= warnDays(params, fleet))];
  },
  async run(ctx: Ctx): Promise<RegenResult> {
    const device = ctx.target!;
    if (!ctx.params.regen) return { device, regenerated: false, reason: "regen not requested" };
    const before = ctx.resultOf(applianceCert, device).cert;
    // Re-read first: a resumed job must not regenerate twice.
    const now = certFacts(await ctx.files.applianceGet(device, "server.pem"), `${device}:server.pem`);
    if (now.fingerprint256 !== before.fingerprint256)
      return { device, regenerated: true, resumed: true, fingerprint256: now.fingerprint256 };
    const approval = await requireRegenApproval(ctx, device);
    const shell = await ctx.lunash(device);
    await shell.send("sysconf regenCert", parsers.sysconfRegenCert, { confirm: "proceed" });
    const after = certFacts(await ctx.files.applianceGet(device, "server.pem"), `${device}:server.pem`);
    if (after.fingerprint256 === before.fingerprint256)
      throw new RepairNotVerified(
        `${device}: 'sysconf regenCert' reported success but server.pem did not change`,
      );
    await ctx.evidence.note({
      regenerated: device,
      approval,
      from: before.fingerprint256,
      to: after.fingerprint256,
    });
    return {
      device,
      regenerated: true,
      approval,
      fingerprint256: after.fingerprint256,
      validTo: after.validTo,
    };
  },
} satisfies Step<Params, RegenResult>;

async function requireRegenApproval(ctx: Ctx, device: string): Promise<unknown> {
  const dev = getDevice(ctx.fleet, device);
  let approvals: Ctx["approvals"] | undefined;
  try {
    approvals = ctx.approvals;
  } catch {
    approvals = undefined;
  }
  if (approvals) {
    // Waits in awaiting-approval (holding only this appliance's lock) until approved; rejected or expired fails.
    const state = await approvals.waitFor(
      {
        action: `regenerate ${device}'s NTLS server certificate (sysconf regenCert), then re-register it with every client of ${device}`,
        device,
        serial: dev.serial,
        required: ctx.fleet.approvals.required,
        expiresMinutes: ctx.fleet.approvals.expiresMinutes,
        principals: ctx.fleet.approvals.principals,
      },
      { keepDevices: [device] },
    );
    return { via: "approvals", principals: state.approvals.map((a) => a.principal) };
  }
  // Hook until every engine has an approvals store: the operator names who approved; recorded as evidence.
  if (ctx.params.approvedBy.length === 0)
    throw new RegenNotApproved(
      `${device}: 'sysconf regenCert' needs an approval: no approvals store is wired and no approvedBy principal was given`,
      false,
    );
  return { via: "approvedBy parameter", principals: ctx.params.approvedBy };
}
