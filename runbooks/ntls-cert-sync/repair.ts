// ntls-cert-sync, the repair (opt-in): the pairs to repair are checkpointed as they are before the first change
// (`repair-snapshot`); then the client side (`vtl deleteServer` / `vtl addServer` with the appliance's current
// certificate) and the appliance side (`client delete` / `client register` / `client assignPartition`, exactly the
// partitions the client had). Each change counts as done only with its own success reply, read by its parser. Neither
// half can be additive with the documented CLI (runbooks/lib/ntls-repair.ts says why), so both self-heal: an
// interruption after the first destructive command fails the job with RepairInterrupted, and the same job resumed
// re-reads and finishes from the snapshot.
import { parsers } from "../../parsers/index.ts";
import { getClientHost } from "../../src/config/model.ts";
import type { Fleet } from "../../src/config/schema.ts";
import { UnexpectedResult } from "../../src/engine/errors.ts";
import { hostWriteCommand } from "../../src/engine/recorded-io.ts";
import type { JobTargets, PlannedCommand, Step } from "../../src/engine/runbook.ts";
import { certFacts } from "../lib/certs.ts";
import { type PairSnapshot, RepairProgress, type RepairSnapshot } from "../lib/ntls-repair.ts";
import { report } from "./diagnose.ts";
import { applianceRepairInterrupted, clientRepairInterrupted } from "./interrupted.ts";
import {
  type ApplianceClientView,
  type Ctx,
  clientCertPath,
  clientNameOf,
  clientsOf,
  type Params,
  planApplianceSide,
  planClientSide,
  plannedPairs,
  RepairNotVerified,
  readApplianceSide,
  readClientSide,
  sameSet,
  stagedServerCert,
} from "./model.ts";
import { regenCert } from "./regen.ts";

export interface ClientRepairResult {
  host: string;
  repaired: { device: string; server: string; deleted: boolean; resumed?: true }[];
  reason?: string;
}

export interface ApplianceRepairResult {
  device: string;
  repaired: { host: string; clientName: string; partitions: string[]; resumed?: true }[];
  reason?: string;
}

function requireRepairable(pair: { device: string; host: string }, why: string): never {
  throw new UnexpectedResult(`${pair.device} / ${pair.host}: ${why}`);
}

/** The devices whose certificate this job regenerated (their clients must take the new one). */
function regeneratedDevices(ctx: Ctx): Set<string> {
  return new Set(ctx.targets.devices.filter((d) => ctx.findResultOf(regenCert, d)?.regenerated === true));
}

export const repairSnapshot = {
  id: "repair-snapshot",
  title:
    "Record every pair to repair as it is now (server entries, registrations, partitions), before any change",
  kind: "read",
  commands: (p: Params, fleet: Fleet, _t: string | undefined, targets: JobTargets): PlannedCommand[] => {
    if (!p.repair && !p.regen) return [];
    // Only the pairs the report found out of sync are read again; any pair of the job may be one of them.
    return plannedPairs(fleet, targets).flatMap(({ device, host }) => [
      {
        via: "sftp" as const,
        on: device,
        command: "get server.pem   (if the client side is to be repaired)",
      },
      ...planClientSide(host),
      {
        via: "host" as const,
        on: host,
        command: `cat ${clientCertPath(fleet, host)}   (if the appliance side is to be repaired)`,
      },
      ...planApplianceSide(fleet, device, host),
    ]);
  },
  async run(ctx: Ctx): Promise<RepairSnapshot> {
    if (!ctx.params.repair && !ctx.params.regen) return { pairs: [], reason: "nothing to repair" };
    const diagnosed = ctx.resultOf(report);
    const regenerated = regeneratedDevices(ctx);
    const pairs: PairSnapshot[] = [];
    for (const pair of diagnosed.pairs) {
      const clientWanted =
        regenerated.has(pair.device) || (ctx.params.repair && (pair.mismatch?.client.length ?? 0) > 0);
      const applianceWanted = ctx.params.repair && (pair.mismatch?.appliance.length ?? 0) > 0;
      if (!clientWanted && !applianceWanted) continue;
      const snap: PairSnapshot = {
        device: pair.device,
        host: pair.host,
        clientName: clientNameOf(ctx.fleet, pair.host),
        client: null,
        appliance: null,
      };
      if (clientWanted) {
        const serverPem = await ctx.files.applianceGet(pair.device, "server.pem");
        const side = await readClientSide(ctx, pair.device, pair.host, serverPem);
        if (!side.trusts || !side.server.listed)
          snap.client = {
            serverName: side.server.name,
            listed: side.server.listed,
            servers: side.servers,
            trustedFingerprints: side.trusted
              .filter((t) => t.subject === side.current.subject)
              .map((t) => t.fingerprint256),
            serverFingerprint256: side.current.fingerprint256,
          };
      }
      if (applianceWanted) {
        const path = clientCertPath(ctx.fleet, pair.host);
        const cert = certFacts(await ctx.files.hostRead(pair.host, path), `${pair.host}:${path}`);
        const now = await readApplianceSide(ctx, pair.device, pair.host);
        const hostEntry = getClientHost(ctx.fleet, pair.host);
        if (!now.registered || now.fingerprint !== cert.fingerprintMd5)
          snap.appliance = {
            registered: now.registered,
            hostname: now.hostname,
            fingerprint: now.fingerprint,
            partitions: now.partitions,
            registerHostname: now.hostname ?? hostEntry.host ?? hostEntry.name,
            // Exactly the partitions it had; a client the appliance did not know gets the fleet file's.
            restorePartitions: now.registered
              ? now.partitions
              : (hostEntry.assignments.find((a) => a.device === pair.device)?.partitions ?? []),
            clientFingerprint: cert.fingerprintMd5,
          };
      }
      if (snap.client || snap.appliance) pairs.push(snap);
    }
    await ctx.evidence.note({ repairSnapshot: pairs });
    return { pairs };
  },
} satisfies Step<Params, RepairSnapshot>;

export const repairClientTrust = {
  id: "repair-client-trust",
  title: (h: string) =>
    `Re-register on ${h} the server certificates it no longer matches (vtl deleteServer/addServer)`,
  kind: "change",
  forEach: "clientHost",
  commands: (p: Params, fleet: Fleet, h: string | undefined, targets: JobTargets): PlannedCommand[] => {
    if (!p.repair && !p.regen) return [];
    const on = h!;
    return plannedPairs(fleet, targets)
      .filter((pair) => pair.host === on)
      .flatMap(({ device }) => {
        const staged = stagedServerCert(device);
        const server = `<${device}'s server name>`;
        return [
          { via: "sftp" as const, on: device, command: "get server.pem   (only for a pair to repair)" },
          ...planClientSide(on),
          {
            via: "host" as const,
            on,
            command: `${hostWriteCommand(staged)}   (the certificate, then the end marker)`,
          },
          { via: "host" as const, on, command: `vtl deleteServer -n ${server}   (only if listed)` },
          { via: "host" as const, on, command: `vtl addServer -n ${server} -c ${staged}` },
          ...planClientSide(on),
        ];
      });
  },
  async run(ctx: Ctx): Promise<ClientRepairResult> {
    const host = ctx.target!;
    if (!ctx.params.repair && !ctx.params.regen)
      return { host, repaired: [], reason: "repair not requested" };
    const repaired: { device: string; server: string; deleted: boolean; resumed?: true }[] = [];
    for (const snap of ctx.resultOf(repairSnapshot).pairs) {
      if (snap.host !== host || !snap.client) continue;
      const was = { ...snap, client: snap.client };
      // Re-read both sides: a resumed job finds its own half-done work here.
      const serverPem = await ctx.files.applianceGet(snap.device, "server.pem");
      const before = await readClientSide(ctx, snap.device, host, serverPem);
      if (before.trusts && before.server.listed) {
        // Done by an earlier attempt of this job (its reply may have been lost): verify it all the same.
        repaired.push({ device: snap.device, server: before.server.name, deleted: false, resumed: true });
        continue;
      }
      if (before.current.expired)
        requireRepairable(
          snap,
          "the appliance's own certificate has expired: regenerate it (regen=true) first",
        );
      // Listed now under its own name, or (resumed after the delete) under the name it had before the repair.
      const server = before.server.listed ? before.server.name : was.client.serverName;
      const staged = stagedServerCert(snap.device);
      // Additive first: the certificate is staged before the entry is deleted, so the gap is two commands.
      await ctx.files.hostWrite(host, staged, serverPem);
      const shell = await ctx.hostShell(host);
      const progress = new RepairProgress();
      try {
        // Each counts as done only with its own success line, read by its parser.
        if (before.server.listed)
          await progress.run(`vtl deleteServer -n ${server}`, () =>
            shell.send(`vtl deleteServer -n ${server}`, parsers.vtlDeleteServer),
          );
        await progress.run(`vtl addServer -n ${server} -c ${staged}`, async () => {
          const added = await shell.send(`vtl addServer -n ${server} -c ${staged}`, parsers.vtlAddServer);
          if (added.server !== server)
            throw new UnexpectedResult(`${host}: vtl added server '${added.server}', not '${server}'`);
        });
        const after = await readClientSide(ctx, snap.device, host, serverPem);
        if (!after.trusts || !after.server.listed)
          throw new RepairNotVerified(
            `${host}: after vtl addServer, ${snap.device}'s current certificate is still not trusted`,
          );
      } catch (err) {
        if (err instanceof RepairNotVerified || !progress.started) throw err;
        throw await clientRepairInterrupted(ctx, was, progress, err, serverPem, staged);
      }
      repaired.push({ device: snap.device, server, deleted: before.server.listed });
    }
    return { host, repaired };
  },
} satisfies Step<Params, ClientRepairResult>;

export const repairApplianceTrust = {
  id: "repair-appliance-trust",
  title: (d: string) =>
    `Re-register on ${d} the client certificates it no longer matches, keeping their partitions exactly`,
  kind: "change",
  forEach: "device",
  commands: (p: Params, fleet: Fleet, d: string | undefined, targets: JobTargets): PlannedCommand[] => {
    if (!p.repair) return [];
    const on = d!;
    return clientsOf({ fleet, targets }, on).flatMap((h) => {
      const c = clientNameOf(fleet, h);
      return [
        {
          via: "host" as const,
          on: h,
          command: `cat ${clientCertPath(fleet, h)}   (only for a pair to repair)`,
        },
        ...planApplianceSide(fleet, on, h),
        { via: "sftp" as const, on, command: `put ${c}.pem` },
        {
          via: "lunash" as const,
          on,
          command: `client delete -client ${c}   (answers 'proceed'; only if registered)`,
        },
        {
          via: "lunash" as const,
          on,
          command: `client register -client ${c} -hostname <registered hostname>`,
        },
        ...planApplianceSide(fleet, on, h),
        {
          via: "lunash" as const,
          on,
          command: `client assignPartition -client ${c} -partition <each partition it had>`,
        },
        ...planApplianceSide(fleet, on, h),
      ];
    });
  },
  async run(ctx: Ctx): Promise<ApplianceRepairResult> {
    const device = ctx.target!;
    if (!ctx.params.repair) return { device, repaired: [], reason: "repair not requested" };
    const repaired: { host: string; clientName: string; partitions: string[]; resumed?: true }[] = [];
    for (const snap of ctx.resultOf(repairSnapshot).pairs) {
      if (snap.device !== device || !snap.appliance) continue;
      const was = { ...snap, appliance: snap.appliance };
      const { clientName } = snap;
      const partitions = was.appliance.restorePartitions;
      const hostname = was.appliance.registerHostname;
      // Re-read both sides first (resume-safe): the client's certificate and the appliance's registration.
      const certPem = await ctx.files.hostRead(snap.host, clientCertPath(ctx.fleet, snap.host));
      const cert = certFacts(certPem, `${snap.host}:${clientCertPath(ctx.fleet, snap.host)}`);
      if (cert.fingerprintMd5 !== was.appliance.clientFingerprint)
        requireRepairable(
          snap,
          `${snap.host}'s certificate changed since the repair started (${was.appliance.clientFingerprint} then, ${cert.fingerprintMd5} now): run the check again`,
        );
      const now = await readApplianceSide(ctx, device, snap.host);
      if (now.registered && now.fingerprint === cert.fingerprintMd5 && sameSet(now.partitions, partitions)) {
        // Done by an earlier attempt of this job (its last reply may have been lost): verify it all the same.
        repaired.push({ host: snap.host, clientName, partitions: now.partitions, resumed: true });
        continue;
      }
      const shell = await ctx.lunash(device);
      // Additive first: the certificate is uploaded before the old registration is deleted.
      await ctx.files.appliancePut(device, `${clientName}.pem`, certPem);
      const progress = new RepairProgress();
      // A change counts as answered only with its own success line (its parser's reading): a reply whose body is
      // unreadable is an unknown outcome.
      let after: ApplianceClientView;
      try {
        if (now.registered && now.fingerprint !== cert.fingerprintMd5) {
          const command = `client delete -client ${clientName}`;
          await progress.run(command, () =>
            shell.send(command, parsers.clientDelete, { confirm: "proceed" }),
          );
        }
        if (!now.registered || now.fingerprint !== cert.fingerprintMd5) {
          const command = `client register -client ${clientName} -hostname ${hostname}`;
          await progress.run(command, () => shell.send(command, parsers.clientRegister));
        }
        const current = await readApplianceSide(ctx, device, snap.host);
        for (const partition of partitions)
          if (!current.partitions.includes(partition)) {
            const command = `client assignPartition -client ${clientName} -partition ${partition}`;
            await progress.run(command, () => shell.send(command, parsers.clientAssignPartition));
          }
        after = await readApplianceSide(ctx, device, snap.host);
      } catch (err) {
        if (!progress.started) throw err;
        throw await applianceRepairInterrupted(ctx, was, progress, err);
      }
      if (
        !after.registered ||
        after.fingerprint !== cert.fingerprintMd5 ||
        !sameSet(after.partitions, partitions)
      )
        throw new RepairNotVerified(
          `${device}: after re-registering ${clientName}, the registration is ${after.registered ? `fingerprint ${after.fingerprint} with partitions [${after.partitions.join(", ")}]` : "absent"} (expected [${partitions.join(", ")}])`,
        );
      repaired.push({ host: snap.host, clientName, partitions: after.partitions });
    }
    return { device, repaired };
  },
} satisfies Step<Params, ApplianceRepairResult>;
