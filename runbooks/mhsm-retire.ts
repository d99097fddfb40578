// mhsm-retire: retire a Managed HSM pool in the only safe order, with approvals like deprovision.
//
//   preflight               the pool exists (or is already soft-deleted: a resumed or hand-started retirement); no
//                           declared CMK consumer still uses one of its keys; security-domain and key backups
//                           confirmed, or a written waiver; a purge asked for only if purge protection allows it and
//                           a resource-group delete only together with a purge; then the job WAITS (holding the
//                           pool's lock) for approvals typed with the pool's name
//   delete-managed-hsm      ARM DELETE (long-running); a resumed job that finds it already soft-deleted goes on
//   verify-soft-deleted     404 on the pool AND its record among the deleted pools: soft-deleted (and still billed)
//   purge                   only with purge=true: purge the deleted pool (long-running), never under purge protection
//   verify-purged           only with purge=true: the deleted record answers 404
//   delete-resource-group   only with deleteResourceGroup=true: refused while the group holds a Managed HSM, active or
//                           soft-deleted, or anything else; then DELETE (long-running)
//
// Deleting the resource group first is not an order this runbook has: the group step comes last, needs the purge,
// and re-checks the group right before (a soft-deleted pool outlives its group and keeps billing).
import { z } from "zod";
import { parseManagedHsmId } from "../src/azure/key-vault-ids.ts";
import type { DeletedManagedHsmInfo, ManagedHsmInfo } from "../src/azure/managed-hsm.ts";
import type { Fleet } from "../src/config/schema.ts";
import { EngineError, JobCancelled } from "../src/engine/errors.ts";
import { defineRunbook } from "../src/engine/runbook.ts";
import type { StepContext } from "../src/engine/step-context.ts";
import { azureCommand, managedHsm, resolveKvTarget } from "./lib/key-vault.ts";

/** A retirement precondition does not hold: the job stops before anything is changed. Never retried. */
export class RetireRefused extends EngineError {
  override name = "RetireRefused";
  constructor(
    message: string,
    readonly check: string,
    readonly pool: string,
  ) {
    super(message);
  }
}

const params = z
  .object({
    /** The Managed HSM to retire (fleet name). */
    target: z.string().min(1),
    /** The security domain (file and the custodians' keys, quorum) is backed up outside this pool. */
    securityDomainBackupConfirmed: z.boolean().default(false),
    /** Every key still needed is backed up (or exists elsewhere). */
    keyBackupsConfirmed: z.boolean().default(false),
    /** Instead of confirmed backups: a written reason why none are needed (kept in the evidence). */
    waiver: z.string().trim().min(20, "a waiver must say why in at least 20 characters").optional(),
    /** Purge the soft-deleted pool (irreversible; refused under purge protection). */
    purge: z.boolean().default(false),
    /** Delete the pool's resource group afterwards: needs purge, and an otherwise empty group. */
    deleteResourceGroup: z.boolean().default(false),
    approvalPollMs: z.number().int().min(10).max(60_000).default(2_000),
  })
  .strict()
  .refine((p) => !p.deleteResourceGroup || p.purge, {
    message:
      "deleteResourceGroup needs purge=true: the group may not be deleted while it holds a soft-deleted pool",
    path: ["deleteResourceGroup"],
  });
type Params = z.output<typeof params>;

export interface RetirePreflight {
  pool: string;
  resourceId: string;
  resourceGroup: string;
  location: string;
  /** Already soft-deleted when the job started (or resumed). */
  alreadyDeleted: boolean;
  purgeProtection: boolean;
  backups: { securityDomain: true; keys: true } | { waiver: string };
  approvals: { principal: string; at: string }[];
}

const poolOf = (p: Params, fleet: Fleet) => managedHsm(fleet, p.target);

export const mhsmRetire = defineRunbook({
  name: "mhsm-retire",
  description:
    "Retire a Managed HSM: backups or waiver, approvals, delete (soft delete), verify, purge only if asked and allowed, then (if asked) its emptied resource group",
  params,
  targets(p, fleet) {
    const t = resolveKvTarget(fleet, p.target, ["managedHsm"]);
    return { devices: [], clientHosts: [], azure: t.managedHsms };
  },
  steps: [
    {
      id: "preflight",
      title: "Check the pool, its consumers, backups or waiver, purge protection; wait for approvals",
      kind: "read",
      commands: (p, fleet) => {
        const h = poolOf(p, fleet);
        return [
          azureCommand(h.resourceId, "GET (exists; purge protection)"),
          azureCommand(`deletedManagedHSMs/${h.location}/${h.name}`, "GET (only if the pool answers 404)"),
          {
            via: "approval",
            on: "operators",
            command: `wait for ${fleet.approvals.required} approvals by distinct principals (signed with registered keys: lunafleet approve <job> --key <key> --confirm ${h.name}), expiring after ${fleet.approvals.expiresMinutes} min`,
          },
        ];
      },
      async run(ctx): Promise<RetirePreflight> {
        const decl = poolOf(ctx.params, ctx.fleet);
        const id = parseManagedHsmId(decl.resourceId);
        const o = { signal: ctx.signal };
        const refuse = (message: string, check: string) =>
          new RetireRefused(`${decl.name}: ${message}`, check, decl.name);

        // 1. Azure: the pool, or its soft-deleted record.
        const hsm: ManagedHsmInfo | null = await ctx.keyVault.arm.getManagedHsm(decl.resourceId, o);
        const deleted: DeletedManagedHsmInfo | null = hsm
          ? null
          : await ctx.keyVault.arm.getDeletedManagedHsm(decl.name, decl.location, o);
        if (!hsm && !deleted)
          throw refuse(
            "neither the pool nor a soft-deleted record of it exists in Azure; nothing to retire",
            "exists",
          );
        const purgeProtection = hsm ? hsm.purgeProtection : deleted!.purgeProtectionEnabled;

        // 2. No declared application still uses one of its keys.
        const keys = new Set(ctx.fleet.keys.filter((k) => k.managedHsm === decl.name).map((k) => k.name));
        const users = ctx.fleet.cmkConsumers.filter((c) => keys.has(c.key));
        if (users.length > 0)
          throw refuse(
            `still the key store of ${users.map((c) => `${c.name} (${c.application}, key ${c.key})`).join(", ")}; move them to another key and remove them from the fleet file first`,
            "consumers",
          );

        // 3. Backups confirmed, or a written waiver.
        const { securityDomainBackupConfirmed, keyBackupsConfirmed, waiver } = ctx.params;
        if (!(securityDomainBackupConfirmed && keyBackupsConfirmed) && !waiver)
          throw refuse(
            'security-domain and key backups are not both confirmed (--param securityDomainBackupConfirmed=true --param keyBackupsConfirmed=true) and there is no written waiver (--param waiver="…", at least 20 characters)',
            "backups",
          );
        const backups =
          securityDomainBackupConfirmed && keyBackupsConfirmed
            ? ({ securityDomain: true, keys: true } as const)
            : { waiver: waiver! };
        await ctx.evidence.note({ preflight: "backups", pool: decl.name, ...backups });

        // 4. A purge is asked for only where it can happen (before anything is deleted).
        if (ctx.params.purge && purgeProtection)
          throw refuse(
            "purge=true, but the pool has purge protection: Azure refuses to purge it before its retention ends; retire it without purge (it stays soft-deleted, billed, until its scheduled purge date)",
            "purge-protection",
          );

        // 5. Approvals, holding the pool's lock.
        const policy = ctx.fleet.approvals;
        const approved = await ctx.approvals.waitFor(
          {
            device: decl.name,
            serial: decl.name,
            action:
              `delete Managed HSM ${decl.name} (${decl.resourceId}): soft-deleted for ${hsm?.softDeleteRetentionDays ?? "its"} days` +
              (ctx.params.purge ? ", then PURGED (irreversible)" : ", not purged") +
              (ctx.params.deleteResourceGroup ? `, then resource group ${id.resourceGroup} deleted` : ""),
            required: policy.required,
            expiresMinutes: policy.expiresMinutes,
            principals: policy.principals,
          },
          { keepDevices: [decl.name], pollMs: ctx.params.approvalPollMs },
        );
        return {
          pool: decl.name,
          resourceId: id.id,
          resourceGroup: id.resourceGroup,
          location: decl.location,
          alreadyDeleted: !hsm,
          purgeProtection,
          backups,
          approvals: approved.approvals.map((a) => ({ principal: a.principal, at: a.at })),
        };
      },
    },
    {
      id: "delete-managed-hsm",
      title: "Delete the Managed HSM and wait for the long-running operation (it becomes soft-deleted)",
      kind: "change",
      commands: (p, fleet) => {
        const h = poolOf(p, fleet);
        return [
          azureCommand(h.resourceId, "GET (already soft-deleted: nothing to do)"),
          azureCommand(h.resourceId, "DELETE, then poll Location until done"),
        ];
      },
      async run(ctx) {
        const decl = poolOf(ctx.params, ctx.fleet);
        ctx.requireCheckpoint("preflight");
        await requireApproved(ctx, decl.name);
        // Re-read first: a resumed job (or a delete that finished just before a crash) must not delete again.
        const hsm = await ctx.keyVault.arm.getManagedHsm(decl.resourceId, { signal: ctx.signal });
        if (!hsm) {
          await ctx.evidence.note({
            deleteManagedHsm: "skipped: the pool already answers 404",
            pool: decl.name,
          });
          return { pool: decl.name, deleted: false, alreadyGone: true };
        }
        try {
          await ctx.keyVault.arm.deleteManagedHsm(decl.resourceId, { signal: ctx.signal });
        } catch (err) {
          if (ctx.signal.aborted)
            throw new JobCancelled(
              `${decl.name}: cancelled while Azure was deleting it; the delete may still complete — a resumed job re-reads it first`,
            );
          throw err;
        }
        return { pool: decl.name, deleted: true, alreadyGone: false };
      },
    },
    {
      id: "verify-soft-deleted",
      title: "Verify the pool answers 404 and is listed among the soft-deleted pools",
      kind: "read",
      observes: (p, fleet) => [{ subject: `azure:${poolOf(p, fleet).resourceId}`, fact: "lifecycle" }],
      commands: (p, fleet) => {
        const h = poolOf(p, fleet);
        return [
          azureCommand(h.resourceId, "GET (expect 404)"),
          azureCommand(`deletedManagedHSMs/${h.location}/${h.name}`, "GET (expect the deleted record)"),
        ];
      },
      async run(ctx) {
        const decl = poolOf(ctx.params, ctx.fleet);
        const o = { signal: ctx.signal };
        if (await ctx.keyVault.arm.getManagedHsm(decl.resourceId, o))
          throw new RetireRefused(
            `${decl.name}: still answers after its delete; not retired`,
            "deleted",
            decl.name,
          );
        const deleted = await ctx.keyVault.arm.getDeletedManagedHsm(decl.name, decl.location, o);
        if (!deleted)
          throw new RetireRefused(
            `${decl.name}: answers 404 but is not among the soft-deleted pools (purged by someone else?); the record of what happened is incomplete`,
            "soft-deleted",
            decl.name,
          );
        // The state model: retired, but a soft-deleted pool is still billed (until purged or its scheduled purge date).
        await ctx.facts.observe({
          subject: `azure:${decl.resourceId}`,
          fact: "lifecycle",
          status: "problem",
          summary: `soft-deleted, billed until ${deleted.scheduledPurgeDate ?? "?"}`,
          reason: `retired by mhsm-retire but soft-deleted: billed until purged or ${deleted.scheduledPurgeDate ?? "its scheduled purge date"}`,
          value: { state: "soft-deleted", scheduledPurgeDate: deleted.scheduledPurgeDate },
        });
        return { pool: decl.name, softDeleted: true, ...deleted, billedUntil: deleted.scheduledPurgeDate };
      },
    },
    {
      id: "purge",
      title: "Purge the soft-deleted pool, only if asked and purge protection allows",
      kind: "change",
      commands: (p, fleet) => {
        if (!p.purge) return [];
        const h = poolOf(p, fleet);
        return [
          azureCommand(
            `deletedManagedHSMs/${h.location}/${h.name}`,
            "GET (already purged: nothing to do; purge protection: refused)",
          ),
          azureCommand(
            `deletedManagedHSMs/${h.location}/${h.name}/purge`,
            "POST, then poll Location until done",
          ),
        ];
      },
      async run(ctx) {
        const decl = poolOf(ctx.params, ctx.fleet);
        if (!ctx.params.purge) return { pool: decl.name, skipped: "not asked", purged: false };
        ctx.requireCheckpoint("verify-soft-deleted");
        await requireApproved(ctx, decl.name);
        const deleted = await ctx.keyVault.arm.getDeletedManagedHsm(decl.name, decl.location, {
          signal: ctx.signal,
        });
        if (!deleted) {
          await ctx.evidence.note({
            purge: "skipped: the deleted record already answers 404",
            pool: decl.name,
          });
          return { pool: decl.name, purged: false, alreadyPurged: true };
        }
        if (deleted.purgeProtectionEnabled)
          throw new RetireRefused(
            `${decl.name}: purge protection is on; no purge was sent (it stays soft-deleted until ${deleted.scheduledPurgeDate ?? "its scheduled purge date"})`,
            "purge-protection",
            decl.name,
          );
        await ctx.keyVault.arm.purgeDeletedManagedHsm(decl.name, decl.location, { signal: ctx.signal });
        return { pool: decl.name, purged: true, alreadyPurged: false };
      },
    },
    {
      id: "verify-purged",
      title: "Verify the deleted record answers 404 (no longer billed)",
      kind: "read",
      commands: (p, fleet) => {
        if (!p.purge) return [];
        const h = poolOf(p, fleet);
        return [azureCommand(`deletedManagedHSMs/${h.location}/${h.name}`, "GET (expect 404)")];
      },
      async run(ctx) {
        const decl = poolOf(ctx.params, ctx.fleet);
        if (!ctx.params.purge) return { pool: decl.name, skipped: "not asked" };
        const deleted = await ctx.keyVault.arm.getDeletedManagedHsm(decl.name, decl.location, {
          signal: ctx.signal,
        });
        if (deleted)
          throw new RetireRefused(
            `${decl.name}: still listed as soft-deleted after the purge`,
            "purged",
            decl.name,
          );
        await ctx.facts.observe({
          subject: `azure:${decl.resourceId}`,
          fact: "lifecycle",
          status: "ok",
          summary: "purged (retired, no longer billed)",
          value: { state: "purged" },
        });
        return { pool: decl.name, purged: true, checkedAt: new Date().toISOString() };
      },
    },
    {
      id: "delete-resource-group",
      title:
        "Delete the resource group, only if asked and it holds no Managed HSM (active or soft-deleted) nor anything else",
      kind: "change",
      commands: (p, fleet) => {
        if (!p.deleteResourceGroup) return [];
        const id = parseManagedHsmId(poolOf(p, fleet).resourceId);
        const rg = `/subscriptions/${id.subscriptionId}/resourceGroups/${id.resourceGroup}`;
        return [
          azureCommand(
            rg,
            "list managed HSMs, and deleted managed HSMs whose id was in it (both must be empty)",
          ),
          azureCommand(rg, "list resources (must be empty)"),
          azureCommand(rg, "DELETE, then poll until done"),
        ];
      },
      async run(ctx) {
        const decl = poolOf(ctx.params, ctx.fleet);
        const id = parseManagedHsmId(decl.resourceId);
        if (!ctx.params.deleteResourceGroup)
          return { resourceGroup: id.resourceGroup, skipped: "not asked", deleted: false };
        ctx.requireCheckpoint("verify-purged");
        await requireApproved(ctx, decl.name);
        // The gateway re-reads the group right before: any Managed HSM (active or soft-deleted) refuses the delete.
        const result = await ctx.keyVault.arm
          .deleteResourceGroup(id.resourceGroup, { signal: ctx.signal })
          .catch((err: unknown) => {
            if (ctx.signal.aborted)
              throw new JobCancelled(
                `cancelled while Azure was deleting resource group ${id.resourceGroup}; a resumed job re-reads it first`,
              );
            throw err;
          });
        return {
          resourceGroup: id.resourceGroup,
          deleted: result.deleted,
          alreadyGone: !result.deleted,
        };
      },
    },
  ],
});

/** The approvals must still stand when a change is sent (not rejected or expired since preflight). */
async function requireApproved(ctx: StepContext<Params>, pool: string): Promise<void> {
  const state = await ctx.approvals.state();
  if (state?.status !== "approved")
    throw new RetireRefused(
      `${pool}: approvals are ${state?.status ?? "missing"} at the moment of the change; nothing was sent. Submit a new mhsm-retire job.`,
      "approvals",
      pool,
    );
}
