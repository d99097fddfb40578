// ntls-cert-sync, the verification of every repaired pair: a handshake as the client succeeds and presents the
// certificate the client trusts, and `vtl verify` on the client lists the client's partitions on that appliance.
import { parsers } from "../../parsers/index.ts";
import { getClientHost, getDevice } from "../../src/config/model.ts";
import type { Fleet } from "../../src/config/schema.ts";
import type { JobTargets, PlannedCommand, Step } from "../../src/engine/runbook.ts";
import { repairedPairFacts } from "../lib/trust-facts.ts";
import {
  type Ctx,
  clientCertPath,
  clientNameOf,
  type Params,
  planClientSide,
  plannedPairs,
  RepairNotVerified,
  readClientSide,
  timeoutOf,
} from "./model.ts";
import { repairApplianceTrust, repairClientTrust } from "./repair.ts";

export interface VerifiedPair {
  device: string;
  host: string;
  handshakeOk: boolean;
  presentedTrusted: boolean;
  vtlVerify: { ok: boolean; seesPartitions: boolean; error: string | null };
}

export interface VerifyResult {
  verified: VerifiedPair[];
  reason?: string;
}

export const verify = {
  id: "verify",
  title: "Verify every repaired pair: handshake as the client, the trusted certificate presented, vtl verify",
  kind: "read",
  commands: (p: Params, fleet: Fleet, _t: string | undefined, targets: JobTargets): PlannedCommand[] => {
    if (!p.repair && !p.regen) return [];
    // Each pair the job repaired: the client's certificate, the appliance's, both sides read, a handshake as the
    // client, and vtl verify on its host.
    return plannedPairs(fleet, targets).flatMap(({ device, host }) => {
      const dev = getDevice(fleet, device);
      return [
        {
          via: "host" as const,
          on: host,
          command: `cat ${clientCertPath(fleet, host)}   (only for a repaired pair)`,
        },
        { via: "sftp" as const, on: device, command: "get server.pem" },
        ...planClientSide(host),
        {
          via: "tls" as const,
          on: `${dev.host}:${dev.ntlsPort}`,
          command: `handshake as client ${clientNameOf(fleet, host)}   (timeout ${timeoutOf(p, fleet)} ms)`,
        },
        { via: "host" as const, on: host, command: "vtl verify" },
      ];
    });
  },
  // A repair re-observes what it repaired: each verified pair, and the client's vtl verify that passed.
  facts: (r) => {
    const hosts = [...new Set(r.verified.filter((v) => v.vtlVerify.ok).map((v) => v.host))];
    return [
      ...r.verified.flatMap((v) => repairedPairFacts(v.device, v.host)),
      ...hosts.map((h) => ({
        subject: `client:${h}`,
        fact: "vtl-verify",
        status: "ok" as const,
        summary: "verified after repair",
      })),
    ];
  },
  async run(ctx: Ctx): Promise<VerifyResult> {
    if (!ctx.params.repair && !ctx.params.regen) return { verified: [], reason: "nothing was changed" };
    const changed = new Set<string>();
    for (const h of ctx.targets.clientHosts)
      for (const r of ctx.findResultOf(repairClientTrust, h)?.repaired ?? []) changed.add(`${r.device} ${h}`);
    for (const d of ctx.targets.devices)
      for (const r of ctx.findResultOf(repairApplianceTrust, d)?.repaired ?? [])
        changed.add(`${d} ${r.host}`);
    const verified: VerifiedPair[] = [];
    const timeoutMs = timeoutOf(ctx.params, ctx.fleet);
    const vtlByHost = new Map<
      string,
      { ok: boolean; serials: string[]; unreachable: string[]; error: string | null }
    >();
    for (const key of [...changed].sort()) {
      const [device, host] = key.split(" ") as [string, string];
      const certPem = await ctx.files.hostRead(host, clientCertPath(ctx.fleet, host));
      const serverPem = await ctx.files.applianceGet(device, "server.pem");
      const side = await readClientSide(ctx, device, host, serverPem);
      const hs = await ctx.tcp.tlsAsClient(device, host, { clientCertPem: certPem, timeoutMs });
      let vtl = vtlByHost.get(host);
      if (!vtl) {
        const shell = await ctx.hostShell(host);
        const seen = await shell.attempt("vtl verify", parsers.vtlVerify);
        vtl = seen.ok
          ? {
              ok: true,
              serials: seen.value.slots.map((s) => s.serial),
              unreachable: seen.value.unreachable.map((u) => u.server),
              error: null,
            }
          : {
              ok: false,
              serials: [],
              unreachable: [],
              error: `${seen.error.code}: ${seen.error.deviceMessage}`,
            };
        vtlByHost.set(host, vtl);
      }
      const dev = getDevice(ctx.fleet, device);
      const assigned =
        getClientHost(ctx.fleet, host).assignments.find((a) => a.device === device)?.partitions ?? [];
      const serials = dev.partitions.filter((p) => assigned.includes(p.label)).map((p) => p.serial);
      // vtl sees this appliance's partitions, and does not name this server among those it could not reach.
      const vtlOk =
        vtl.ok &&
        serials.every((s) => vtl.serials.includes(s)) &&
        !vtl.unreachable.includes(side.server.name);
      const presentedTrusted = hs.cert?.fingerprint256 === side.current.fingerprint256 && side.trusts;
      const result = {
        device,
        host,
        handshakeOk: hs.handshakeOk,
        presentedTrusted,
        vtlVerify: { ok: vtl.ok, seesPartitions: vtlOk, error: vtl.error },
      };
      verified.push(result);
      if (!hs.handshakeOk || !presentedTrusted || !vtlOk)
        throw new RepairNotVerified(
          `${device} / ${host}: after the repair the link does not verify (handshake ${hs.handshakeOk ? "ok" : `failed: ${hs.error}`}, presented certificate ${presentedTrusted ? "trusted" : "not trusted"}, vtl verify ${vtlOk ? "ok" : "does not list the partitions"})`,
        );
    }
    return { verified };
  },
} satisfies Step<Params, VerifyResult>;
