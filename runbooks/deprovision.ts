// Over 400 lines: the only safe order of a retirement is read on one page, each step beside the steps it must follow;
//  its helpers live in runbooks/lib.
// deprovision: retire one Azure Dedicated HSM (Luna 7) in the only safe order (DESIGN "Deprovisioning order").
//
//   preflight             the Azure resource exists and is a Luna; the appliance answers with the fleet's serial; no
//                         client host of the fleet has any of its partitions in an HA group; backups confirmed or a
//                         written waiver; then the job WAITS in awaiting-approval (holding only this device's lock:
//                         the client hosts' locks are given back meanwhile) until enough distinct principals have
//                         approved with the serial typed as confirmation; HA membership re-checked after the wait
//   sanctioned-zeroize    through the login guard only (deliberately failing HSM SO logins); skipped when `hsm show`
//                         already reports the HSM zeroized (a resumed job)
//   verify-zeroized       `hsm show`: zeroized
//   delete-hsm-resource   ARM DELETE of the dedicatedHSMs resource, waiting for the long-running operation; a resumed
//                         job that finds it already gone records that and goes on
//   verify-hsm-gone       a 404 on the resource itself (a 404 for its group would be an orphan, never proof)
//   delete-resource-group only with deleteResourceGroup=true, and only if right before it holds no Dedicated HSM
//
// Azure refuses to delete an HSM that is not zeroized, and deleting the group first orphans the HSM (still billed until
// Microsoft Support steps in). Every step is checkpointed; a crash resumes at the first unfinished step, and each change
// step re-reads the state it is about to change before acting.
import { z } from "zod";
import { parsers } from "../parsers/index.ts";
import type { HsmGoneProof } from "../src/azure/dedicated-hsm.ts";
import { AzureOperationError, HsmDeleteFailedError } from "../src/azure/errors.ts";
import { parseHsmResourceId } from "../src/azure/resource-id.ts";
import { getDevice } from "../src/config/model.ts";
import type { Device, Fleet } from "../src/config/schema.ts";
import { ApprovalNotGranted } from "../src/engine/approval-wait.ts";
import { DeviceIdentityMismatch, EngineError, JobCancelled } from "../src/engine/errors.ts";
import type { ApprovalState } from "../src/engine/ports.ts";
import { defineRunbook, type PlannedCommand, type Step } from "../src/engine/runbook.ts";
import type { StepContext } from "../src/engine/step-context.ts";
import { resolveTarget } from "../src/engine/targets.ts";
import { azureResourceFact, lifecycleFact, zeroizedFact } from "./lib/facts.ts";

/** A deprovisioning precondition does not hold: the job stops before anything destructive. Never retried. */
export class DeprovisionRefused extends EngineError {
  override name = "DeprovisionRefused";
  constructor(
    message: string,
    readonly check: string,
    readonly device: string,
  ) {
    super(message);
  }
}

/** Approvals did not arrive, were rejected, expired or were withdrawn (src/engine/approval-wait.ts). */
export { ApprovalNotGranted };

/** Azure refused to delete the HSM because the device is not zeroized: re-running the delete cannot help. */
export class AzureRefusedDelete extends EngineError {
  override name = "AzureRefusedDelete";
  constructor(
    message: string,
    readonly device: string,
  ) {
    super(message);
  }
}

const params = z
  .object({
    /** The device to deprovision (one device per job). */
    target: z.string().min(1),
    /** The operator confirms the device's keys are backed up (or not needed). */
    backupsConfirmed: z.boolean().default(false),
    /** Instead of confirmed backups: a written reason why none are needed (kept in the evidence). */
    waiver: z.string().trim().min(20, "a waiver must say why in at least 20 characters").optional(),
    /** Also delete the device's resource group, if (right before) it holds no other Dedicated HSM. */
    deleteResourceGroup: z.boolean().default(false),
    /** How often the waiting job re-reads its approvals. */
    approvalPollMs: z.number().int().min(10).max(60_000).default(2_000),
  })
  .strict();
type Params = z.output<typeof params>;

// Only the fields this runbook relies on (the parsers return more); a missing one fails the step, never guessed.

export interface DeprovisionPreflight {
  device: string;
  serial: string;
  resourceId: string;
  resourceGroup: string;
  sku: string | null;
  clientHostsChecked: string[];
  /** The partition serials looked for in every HA group (fleet file and appliance). */
  partitionSerials: string[];
  backups: { confirmed: true } | { waiver: string };
  approvals: { principal: string; at: string }[];
  approvedAt: string | null;
  /** The appliance was already zeroized at preflight (a deprovisioning someone started by hand). */
  alreadyZeroized: boolean;
}

function deviceOf(p: Params, fleet: Fleet): Device {
  return getDevice(fleet, p.target);
}

function resourceOf(p: Params, fleet: Fleet) {
  const dev = deviceOf(p, fleet);
  if (!dev.azure?.resourceId)
    throw new DeprovisionRefused(
      `${dev.name} has no azure.resourceId in the fleet file: lunafleet deprovisions Azure Dedicated HSMs only`,
      "azure-resource",
      dev.name,
    );
  return parseHsmResourceId(dev.azure.resourceId);
}

const azureCmd = (on: string, command: string): PlannedCommand => ({ via: "azure", on, command });
const lunash = (on: string, command: string): PlannedCommand => ({ via: "lunash", on, command });

const preflight = {
  id: "preflight",
  title: "Check the resource is a Luna, no HA membership, backups or waiver; wait for approvals",
  kind: "read",
  facts: (r) => {
    const p = r;
    return [azureResourceFact(p.resourceId, "exists", `Dedicated HSM, sku ${p.sku ?? "unknown"}`)];
  },
  commands: (p, fleet) => {
    const id = resourceOf(p, fleet);
    const approvals = fleet.approvals;
    const rg = `/subscriptions/${id.subscriptionId}/resourceGroups/${id.resourceGroup}`;
    return [
      azureCmd(id.id, "GET (exists; sku.name must be 'SafeNet Luna Network HSM A790')"),
      lunash(p.target, "hsm show"),
      ...fleet.clientHosts.map(
        (h): PlannedCommand => ({ via: "lunacm", on: h.name, command: "hagroup listgroups" }),
      ),
      ...(p.deleteResourceGroup
        ? [
            azureCmd(
              rg,
              `list everything in ${id.resourceGroup} (it must hold nothing but ${id.name}: otherwise the job is refused here, before any approval or zeroize)`,
            ),
          ]
        : []),
      {
        via: "approval",
        on: "operators",
        command: `wait for ${approvals.required} approvals by distinct principals (signed with registered keys: lunafleet approve <job> --key <key> --confirm ${deviceOf(p, fleet).serial}), expiring after ${approvals.expiresMinutes} min${approvals.principals ? ` (allowed: ${approvals.principals.join(", ")})` : ""}`,
      },
      ...fleet.clientHosts.map(
        (h): PlannedCommand => ({
          via: "lunacm",
          on: h.name,
          command: "hagroup listgroups (again, once approved)",
        }),
      ),
    ];
  },
  async run(ctx): Promise<DeprovisionPreflight> {
    const dev = deviceOf(ctx.params, ctx.fleet);
    const id = resourceOf(ctx.params, ctx.fleet);

    // 1. Azure: the resource exists and is a Luna 7 (payment HSMs share the resource type).
    const hsm = await orphanAware(ctx, id.id, () => ctx.azure.getHsm(id.id, { signal: ctx.signal }));
    if (!hsm)
      throw new DeprovisionRefused(
        `${dev.name}: the Azure resource ${id.id} does not exist (404); nothing to deprovision there`,
        "azure-resource",
        dev.name,
      );
    if (!hsm.isLuna)
      throw new DeprovisionRefused(
        `${dev.name}: ${id.id} is a '${hsm.sku ?? "unknown"}' HSM, not a Luna 7 ('SafeNet Luna Network HSM A790'); refusing`,
        "azure-sku",
        dev.name,
      );

    // 2. The appliance is the one the fleet file names.
    const show = await readHsmShow(ctx, dev);

    // 3. No HA group on any client host still uses one of its partitions: those the fleet file declares and
    //    those the appliance itself lists (a partition someone created by hand is a member all the same).
    const partitionSerials = [
      ...new Set([...dev.partitions.map((p) => p.serial), ...show.partitions.map((p) => p.serial)]),
    ];
    const hosts = await checkNoHaMembership(ctx, dev, partitionSerials);

    // 3b. Asked to delete the group: it must hold nothing but this HSM, now, before anyone is asked to approve.
    if (ctx.params.deleteResourceGroup) await checkGroupEmptyButThis(ctx, id);

    // 4. Backups confirmed, or a written waiver.
    const { backupsConfirmed, waiver } = ctx.params;
    if (!backupsConfirmed && !waiver)
      throw new DeprovisionRefused(
        `${dev.name}: backups are neither confirmed (--param backupsConfirmed=true) nor waived in writing (--param waiver="…", at least 20 characters)`,
        "backups",
        dev.name,
      );
    const backups = backupsConfirmed ? ({ confirmed: true } as const) : { waiver: waiver! };
    await ctx.evidence.note({ preflight: "backups", device: dev.name, ...backups });

    // 5. Approvals: wait, holding the device lock, until granted (or rejected, expired, cancelled).
    const approved = await waitForApprovals(ctx, dev);

    // 6. Re-read what may have changed during the wait.
    await checkNoHaMembership(ctx, dev, partitionSerials);
    if (ctx.params.deleteResourceGroup) await checkGroupEmptyButThis(ctx, id);

    return {
      device: dev.name,
      serial: dev.serial,
      resourceId: hsm.id,
      resourceGroup: id.resourceGroup,
      sku: hsm.sku ?? null,
      clientHostsChecked: hosts,
      partitionSerials,
      backups,
      approvals: approved.approvals,
      approvedAt: approved.approvedAt ?? null,
      alreadyZeroized: show.zeroized,
    };
  },
} satisfies Step<Params, DeprovisionPreflight>;

const sanctionedZeroize = {
  id: "sanctioned-zeroize",
  title: "Zeroize the HSM through the login guard's sanctioned zeroize",
  kind: "change",
  commands: (p) => [
    lunash(p.target, "hsm show   (already zeroized: nothing to do)"),
    {
      ...lunash(
        p.target,
        "hsm login   (×attempts left, random wrong HSM SO passwords, sent only by the login guard; 'proceed' at the LAST caution)",
      ),
      guard: { device: p.target, role: "hsmSo" },
    },
    lunash(p.target, "hsm show   (after each login, and to verify: HSM IS ZEROIZED)"),
  ],
  async run(ctx) {
    const dev = deviceOf(ctx.params, ctx.fleet);
    ctx.requireCheckpoint("preflight");
    // Re-read first: a resumed job (or a zeroize that finished just before a crash) must not log in again.
    const before = await readHsmShow(ctx, dev);
    if (before.zeroized) {
      await ctx.evidence.note({
        zeroize: "skipped: the HSM already reports itself zeroized",
        device: dev.name,
      });
      return { device: dev.name, zeroized: true, performed: false };
    }
    // The approvals must still stand at the moment of the zeroize (not rejected, not expired since preflight).
    const state = await ctx.approvals.state();
    if (state?.status !== "approved")
      throw new ApprovalNotGranted(
        `${dev.name}: approvals are ${state?.status ?? "missing"} at the moment of the zeroize; nothing was sent. Submit a new deprovision job.`,
        state?.status ?? "missing",
        dev.name,
      );
    // The guard reads the approvals and the typed confirmation from the job's approval record itself.
    const zeroize = ctx.guard.sanctionedZeroize;
    if (!zeroize)
      throw new DeprovisionRefused(
        `${dev.name}: the guard offers no sanctioned zeroize; nothing was sent`,
        "guard",
        dev.name,
      );
    const outcome = await zeroize(dev.name);
    return { device: dev.name, zeroized: true, performed: true, guard: outcome ?? null };
  },
} satisfies Step<Params>;

const verifyZeroized = {
  id: "verify-zeroized",
  title: "Verify with hsm show that the HSM reports itself zeroized",
  kind: "read",
  observes: (p) => [{ subject: `device:${p.target}`, fact: "zeroized" }],
  facts: (_r, { params }) => [
    zeroizedFact(params.target, true, true),
    lifecycleFact(params.target, "zeroized", "zeroized by deprovision, verified with hsm show"),
  ],
  commands: (p) => [lunash(p.target, "hsm show")],
  async run(ctx) {
    const dev = deviceOf(ctx.params, ctx.fleet);
    const show = await readHsmShow(ctx, dev);
    if (!show.zeroized)
      throw new DeprovisionRefused(
        `${dev.name}: hsm show does not report the HSM zeroized; the Azure resource is not touched`,
        "zeroized",
        dev.name,
      );
    return { device: dev.name, serial: show.serial, zeroized: true };
  },
} satisfies Step<Params>;

const deleteHsmResource = {
  id: "delete-hsm-resource",
  title: "Delete the Dedicated HSM resource in Azure and wait for the long-running operation",
  kind: "change",
  commands: (p, fleet) => {
    const id = resourceOf(p, fleet).id;
    return [
      azureCmd(id, "GET (already gone: nothing to do)"),
      lunash(p.target, "hsm show (still zeroized)"),
      azureCmd(id, "DELETE, then poll Azure-AsyncOperation until Succeeded"),
    ];
  },
  async run(ctx) {
    const dev = deviceOf(ctx.params, ctx.fleet);
    const id = resourceOf(ctx.params, ctx.fleet);
    ctx.requireCheckpoint("verify-zeroized");
    const hsm = await orphanAware(ctx, id.id, () => ctx.azure.getHsm(id.id, { signal: ctx.signal }));
    if (!hsm) {
      await ctx.evidence.note({
        deleteHsm: "skipped: the resource already answers 404",
        resourceId: id.id,
      });
      return { resourceId: id.id, deleted: false, alreadyGone: true };
    }
    // The device must still be zeroized right now (Azure checks too; we do not send a DELETE we know it refuses).
    const show = await readHsmShow(ctx, dev);
    if (!show.zeroized)
      throw new DeprovisionRefused(
        `${dev.name}: the HSM no longer reports itself zeroized (re-initialized since?); no DELETE sent`,
        "zeroized",
        dev.name,
      );
    // A delete an earlier attempt started may still be running (the worker died while polling): ARM answers a
    // repeated DELETE with the running operation, so sending it again re-attaches instead of starting another.
    if (hsm.provisioningState === "Deleting")
      await ctx.evidence.note({
        deleteHsm: "a delete is already running: re-attaching to it",
        resourceId: id.id,
      });
    try {
      const result = await orphanAware(ctx, id.id, () => ctx.azure.deleteHsm(id.id, { signal: ctx.signal }));
      return { resourceId: id.id, deleted: true, alreadyGone: false, requestIds: result.requestIds };
    } catch (err) {
      if (ctx.signal.aborted)
        throw new JobCancelled(
          `${dev.name}: cancelled while Azure was deleting ${id.id}; the delete may still complete — a resumed job re-reads it first`,
        );
      if (err instanceof HsmDeleteFailedError && err.failure.code === "HsmNotZeroized")
        throw new AzureRefusedDelete(
          `${dev.name}: Azure refused to delete ${id.id}: the device is not zeroized (${err.message})`,
          dev.name,
        );
      throw err;
    }
  },
} satisfies Step<Params>;

const verifyHsmGone = {
  id: "verify-hsm-gone",
  title: "Verify the HSM resource answers 404 (gone, no longer billed)",
  kind: "read",
  observes: (p, fleet) => [{ subject: `azure:${resourceOf(p, fleet).id}`, fact: "resource" }],
  facts: (r, { params }) => {
    const proof = r;
    return [
      azureResourceFact(proof.resourceId, "deleted", "404 on the HSM resource itself"),
      lifecycleFact(params.target, "deleted", "zeroized, and its Azure resource deleted (404)"),
    ];
  },
  commands: (p, fleet) => [azureCmd(resourceOf(p, fleet).id, "GET (expect 404 ResourceNotFound)")],
  async run(ctx) {
    const id = resourceOf(ctx.params, ctx.fleet);
    const proof: HsmGoneProof = await orphanAware(ctx, id.id, () =>
      ctx.azure.verifyHsmGone(id.id, { signal: ctx.signal }),
    );
    return { ...proof };
  },
} satisfies Step<Params, HsmGoneProof>;

const deleteResourceGroup = {
  id: "delete-resource-group",
  title: "Delete the resource group, only if asked and it holds no Dedicated HSM",
  kind: "change",
  commands: (p, fleet) => {
    const id = resourceOf(p, fleet);
    if (!p.deleteResourceGroup) return [];
    const rg = `/subscriptions/${id.subscriptionId}/resourceGroups/${id.resourceGroup}`;
    return [
      azureCmd(rg, "list Dedicated HSMs (group already gone after a crash: nothing to do)"),
      azureCmd(id.id, "GET (expect 404: the HSM is gone)"),
      azureCmd(rg, "list Dedicated HSMs, typed and generic (both must be empty)"),
      azureCmd(rg, "DELETE, then poll until Succeeded"),
    ];
  },
  async run(ctx) {
    const id = resourceOf(ctx.params, ctx.fleet);
    if (!ctx.params.deleteResourceGroup)
      return { resourceGroup: id.resourceGroup, skipped: "not asked", deleted: false };
    ctx.requireCheckpoint("verify-hsm-gone");
    // Re-read: a resumed job may find the group already gone (the delete finished before the crash).
    let left: string[];
    try {
      left = (await ctx.azure.listDedicatedHsms(id.resourceGroup, { signal: ctx.signal })).map((h) => h.id);
    } catch (err) {
      if (err instanceof AzureOperationError && err.failure.code === "ResourceGroupNotFound") {
        await ctx.evidence.note({ deleteResourceGroup: "skipped: the group is already gone", ...id });
        return { resourceGroup: id.resourceGroup, deleted: false, alreadyGone: true };
      }
      throw err;
    }
    // Never before the HSM itself is proven gone, right now.
    await ctx.azure.verifyHsmGone(id.id, { signal: ctx.signal });
    const holds = await ctx.azure.resourceGroupHoldsDedicatedHsms(id.resourceGroup, {
      signal: ctx.signal,
    });
    if (holds || left.length > 0)
      throw new DeprovisionRefused(
        `resource group ${id.resourceGroup} still holds Dedicated HSM(s) ${left.join(", ") || "(listed only by the generic resource list)"}; deleting it would orphan them. The group was NOT deleted.`,
        "resource-group",
        ctx.params.target,
      );
    const result = await ctx.azure
      .deleteResourceGroup(id.resourceGroup, { signal: ctx.signal })
      .catch((err: unknown) => {
        if (ctx.signal.aborted)
          throw new JobCancelled(
            `cancelled while Azure was deleting resource group ${id.resourceGroup}; a resumed job re-reads it first`,
          );
        throw err;
      });
    await ctx.facts.observe({
      subject: `azure:/subscriptions/${id.subscriptionId}/resourceGroups/${id.resourceGroup}`,
      fact: "resource-group",
      status: "ok",
      summary: "deleted",
      value: { state: "deleted" },
    });
    return {
      resourceGroup: id.resourceGroup,
      deleted: true,
      alreadyGone: false,
      requestIds: result.requestIds,
    };
  },
} satisfies Step<Params>;

export const deprovision = defineRunbook({
  name: "deprovision",
  description:
    "Retire an Azure Dedicated HSM: approvals, sanctioned zeroize, delete the HSM resource, then (if asked) its resource group",
  params,
  targets(p, fleet) {
    const t = resolveTarget(fleet, p.target, ["device"]);
    resourceOf(p, fleet);
    // What the fleet file already says: a group that also holds another of its devices can never be deleted here.
    if (p.deleteResourceGroup) {
      const others = fleetDevicesInGroupOf(p, fleet);
      if (others.length > 0) {
        const rg = resourceOf(p, fleet).resourceGroup;
        throw new DeprovisionRefused(
          `deleteResourceGroup=true: resource group ${rg} also holds ${others.join(", ")} (fleet file); deleting it would take them with it. Deprovision without deleteResourceGroup, or retire them first`,
          "resource-group",
          p.target,
        );
      }
    }
    // Every client host is read: an HA group on ANY host that still lists this device must stop the job.
    return { devices: t.devices, clientHosts: fleet.clientHosts.map((h) => h.name) };
  },
  steps: [
    preflight,
    sanctionedZeroize,
    verifyZeroized,
    deleteHsmResource,
    verifyHsmGone,
    deleteResourceGroup,
  ],
});

/**
 * An Azure call on the HSM's resource. A 404 for its resource group or subscription (not the HSM itself) means the HSM
 * may be orphaned and still billed — whichever step meets it (someone deleted the group first), that is the fleet's
 * state now: recorded before the step fails, so the report shows the device orphaned, not in service or retired.
 */
async function orphanAware<T>(
  ctx: StepContext<Params>,
  resourceId: string,
  call: () => Promise<T>,
): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (
      err instanceof AzureOperationError &&
      ["resourcegroupnotfound", "subscriptionnotfound"].includes((err.failure.code ?? "").toLowerCase())
    )
      await ctx.facts.observe(
        azureResourceFact(resourceId, "orphaned", err.message),
        lifecycleFact(ctx.params.target, "orphaned", `${resourceId}: ${err.message}`),
      );
    throw err;
  }
}

async function readHsmShow(ctx: StepContext<Params>, dev: Device) {
  const shell = await ctx.lunash(dev.name);
  const show = await shell.send("hsm show", parsers.hsmShow);
  if (show.serial !== dev.serial)
    throw Object.assign(
      new DeviceIdentityMismatch(
        `${dev.name}: the appliance reports HSM serial ${show.serial}, the fleet file declares ${dev.serial}; wrong device at ${dev.host}?`,
      ),
      { device: dev.name, command: "hsm show" },
    );
  return show;
}

/** Devices of the fleet file whose Azure resource is in the same resource group as the target's. */
function fleetDevicesInGroupOf(p: Params, fleet: Fleet): string[] {
  const own = resourceOf(p, fleet);
  return fleet.devices
    .filter((d) => d.name !== p.target && d.azure?.resourceId)
    .filter((d) => {
      try {
        const id = parseHsmResourceId(d.azure!.resourceId!);
        return (
          id.subscriptionId.toLowerCase() === own.subscriptionId.toLowerCase() &&
          id.resourceGroup.toLowerCase() === own.resourceGroup.toLowerCase()
        );
      } catch {
        return false;
      }
    })
    .map((d) => d.name);
}

/** The group must hold nothing but this HSM (no other Dedicated HSM, no other resource): else refuse, changing nothing. */
async function checkGroupEmptyButThis(
  ctx: StepContext<Params>,
  id: ReturnType<typeof resourceOf>,
): Promise<void> {
  const contents = await ctx.azure.resourceGroupContents(id.resourceGroup, { signal: ctx.signal });
  const hsms = contents.hsms.filter((h) => h.toLowerCase() !== id.id.toLowerCase());
  const left = [...hsms, ...contents.others];
  if (left.length > 0)
    throw new DeprovisionRefused(
      `deleteResourceGroup=true: resource group ${id.resourceGroup} would not be empty after ${id.name} is gone: it also holds ${left.join(", ")}. Nothing was changed and no approval was asked; deprovision without deleteResourceGroup, or move them first`,
      "resource-group",
      ctx.params.target,
    );
}

/** `hagroup listgroups` on every client host; any group listing one of the device's partition serials stops the job. */
async function checkNoHaMembership(
  ctx: StepContext<Params>,
  dev: Device,
  partitionSerials: string[],
): Promise<string[]> {
  const serials = new Set(partitionSerials);
  const found: string[] = [];
  for (const host of ctx.targets.clientHosts) {
    const shell = await ctx.lunacm(host);
    const { groups } = await shell.send("hagroup listgroups", parsers.hagroupListgroups);
    for (const g of groups)
      for (const m of g.members)
        if (serials.has(m.serial)) found.push(`${host}: HA group '${g.label}' member ${m.serial}`);
  }
  if (found.length > 0)
    throw new DeprovisionRefused(
      `${dev.name} is still in an HA group (${found.join("; ")}); remove it from every HA group before deprovisioning`,
      "ha-membership",
      dev.name,
    );
  return [...ctx.targets.clientHosts];
}

/**
 * Ask for approvals (idempotent on resume) and wait, in `awaiting-approval`, holding only this device's lock (the
 * client hosts' locks are given back and taken again once approved; their HA groups are re-read after the wait).
 */
async function waitForApprovals(ctx: StepContext<Params>, dev: Device): Promise<ApprovalState> {
  const policy = ctx.fleet.approvals;
  return ctx.approvals.waitFor(
    {
      action: deprovisionAction(ctx.params, ctx.fleet),
      device: dev.name,
      serial: dev.serial,
      required: policy.required,
      expiresMinutes: policy.expiresMinutes,
      principals: policy.principals,
    },
    { keepDevices: [dev.name], pollMs: ctx.params.approvalPollMs },
  );
}

/** What an approver approves, in words: shown by `lunafleet approvals`. */
function deprovisionAction(p: Params, fleet: Fleet): string {
  const dev = deviceOf(p, fleet);
  const id = resourceOf(p, fleet);
  return (
    `zeroize ${dev.name} (serial ${dev.serial}) and delete its Azure Dedicated HSM ${id.name}` +
    (p.deleteResourceGroup ? `, then its resource group ${id.resourceGroup}` : "")
  );
}
