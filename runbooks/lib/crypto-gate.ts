// The application crypto gate: "application crypto success is the final gate for HSM maintenance, not only hardware
// health". For a Managed HSM consumer, a wrapKey/unwrapKey round trip as the application's own identity; its
// failure names the layer to look at: identity (app registration, secret, tenant), role (its role assignment), key
// (disabled, expired, wrong operations, missing) or network (firewall, private link, no route). For a Luna client
// host, the application's own check command (the fleet file's allow-list), whose exit status is the answer. As the
// last step of maintenance (ha-recover, ha-sync, ntls-cert-sync repair) where the fleet file asks: a failing gate
// fails the job.
import type { z } from "zod";
import type { Fleet } from "../../src/config/schema.ts";
import { EngineError } from "../../src/engine/errors.ts";
import type { HostCheckOutcome } from "../../src/engine/host-check-port.ts";
import type { GateOutcome } from "../../src/engine/key-vault-ports.ts";
import {
  defineRunbook,
  type JobTargets,
  type PlannedCommand,
  type Runbook,
  type Step,
} from "../../src/engine/runbook.ts";
import type { FactRef, ObservationInput } from "../../src/facts/model.ts";
import { azureCommand, consumer, findingLine, type KvFinding, poolOf, poolSubject } from "./key-vault.ts";

const LAYER_HINT: Record<string, string> = {
  identity: "the application could not get a token: check its app registration, client secret and tenant",
  role: "the HSM refused the application: check its role assignment on the key",
  key: "the key refused the operation: check the key version is enabled, not expired, and allows wrapKey/unwrapKey",
  network:
    "the application's request did not reach the key: check the HSM's network rules and private endpoint",
  service: "the service failed after the SDK's retries",
};

/** What `plan` shows for one consumer's gate. */
export function gatePlan(fleet: Fleet, name: string): PlannedCommand[] {
  const c = consumer(fleet, name);
  const pool = poolOf(fleet, c);
  return [
    azureCommand(
      fleet.azureIdentity.authorityHost,
      `token for ${c.application} (client ${c.clientId}) with its own secret`,
    ),
    azureCommand(
      pool.hsmUri,
      `as ${c.application}: GET keys/${c.key}, POST wrapkey then unwrapkey (A256KW, 32 random bytes)`,
    ),
  ];
}

/** The state model's fact of a consumer's gate: `gate:<consumer>` on its pool's subject. */
export function gateFact(fleet: Fleet, name: string): FactRef {
  return { subject: poolSubject(fleet, poolOf(fleet, consumer(fleet, name)).name), fact: `gate:${name}` };
}

export function gateObservation(fleet: Fleet, g: GateOutcome): ObservationInput {
  const ref = gateFact(fleet, g.consumer);
  if (g.passed)
    return {
      ...ref,
      status: "ok",
      summary: `passed (${g.algorithm})`,
      value: { passed: true, keyId: g.keyId },
    };
  const f = gateFinding(g);
  return {
    ...ref,
    status: "problem",
    summary: `failed at the ${g.layer} layer`,
    reason: f.message,
    value: { passed: false, layer: g.layer },
  };
}

export function gateFinding(g: Extract<GateOutcome, { passed: false }>): KvFinding {
  const f = g.failure;
  const detail = [
    f.code,
    f.innerCode && f.innerCode !== f.code ? f.innerCode : undefined,
    f.statusCode !== undefined ? `HTTP ${f.statusCode}` : undefined,
  ]
    .filter(Boolean)
    .join(", ");
  return {
    subject: `consumer ${g.consumer}`,
    check: `gate-${g.layer}`,
    message:
      `crypto gate failed at the ${g.layer} layer (${g.operation}${detail ? `: ${detail}` : ""}): ${LAYER_HINT[g.layer] ?? ""}` +
      (f.missingRole ? `; needs ${f.missingRole}` : ""),
  };
}

/** Maintenance the fleet file ends with the gate (appCryptoGate.after); ntls-cert-sync only when it repairs. */
function gateApplies(runbook: string, params: unknown, fleet: Fleet): boolean {
  if (!fleet.appCryptoGate.after.includes(runbook as never)) return false;
  if (runbook === "ntls-cert-sync") return (params as { repair?: unknown }).repair === true;
  return true;
}

/** A failed application crypto gate after maintenance: the job failed, whatever the maintenance itself did. */
export class CryptoGateFailed extends EngineError {
  override name = "CryptoGateFailed";
}

export interface MaintenanceGateResult {
  hosts: HostCheckOutcome[];
  consumers: GateOutcome[];
}

/**
 * The runbook with the application crypto gate as its last step where the fleet file asks for it: each client host
 * the job touched that has a configured check runs it (exit status 0 = passed), and each listed Managed HSM consumer
 * does its wrap/unwrap round trip. Any failure fails the job (CryptoGateFailed), naming the host or the layer.
 */
export function withAppCryptoGate<S extends z.ZodType>(runbook: Runbook<S>): Runbook<S> {
  const hostsOf = (params: z.output<S>, fleet: Fleet, targets?: JobTargets) => {
    const t = targets ?? runbook.targets(params, fleet);
    return fleet.appCryptoGate.clientHostChecks.filter((c) => t.clientHosts.includes(c.clientHost));
  };
  const step: Step<z.output<S>> = {
    id: "app-crypto-gate",
    title: "Application crypto gate: the applications' own crypto checks after the maintenance",
    kind: "read",
    when: (p, fleet) => gateApplies(runbook.name, p, fleet),
    commands: (p, fleet) => [
      ...hostsOf(p, fleet).map(
        (c): PlannedCommand => ({
          via: "host",
          on: c.clientHost,
          command: `${c.command} (exit status 0 = passed)`,
        }),
      ),
      ...fleet.appCryptoGate.consumers.flatMap((c) => gatePlan(fleet, c)),
    ],
    async run(ctx): Promise<MaintenanceGateResult> {
      const hosts: HostCheckOutcome[] = [];
      for (const c of hostsOf(ctx.params, ctx.fleet, ctx.targets))
        hosts.push(await ctx.hostCheck(c.clientHost, c.command));
      const consumers: GateOutcome[] = [];
      for (const c of ctx.fleet.appCryptoGate.consumers)
        consumers.push(await ctx.keyVault.cryptoGate(c, { signal: ctx.signal }));
      const failed = [
        ...hosts
          .filter((h) => !h.passed)
          .map(
            (h) =>
              `${h.host}: the application's check '${h.command}' failed (exit status ${h.exitCode ?? "none"})${h.lastLine ? `: ${h.lastLine}` : ""}`,
          ),
        ...consumers
          .filter((g): g is Extract<GateOutcome, { passed: false }> => !g.passed)
          .map((g) => findingLine(gateFinding(g))),
      ];
      if (hosts.length + consumers.length === 0)
        throw new CryptoGateFailed(
          `${runbook.name} ends with the application crypto gate, but no check is configured for its client hosts (${ctx.targets.clientHosts.join(", ") || "none"}) and no consumer is listed: nothing proves the applications work`,
        );
      if (failed.length > 0)
        throw new CryptoGateFailed(
          `application crypto gate after ${runbook.name} failed: ${failed.join("; ")}`,
        );
      await ctx.evidence.note({
        appCryptoGate: "passed",
        hosts: hosts.map((h) => h.host),
        consumers: consumers.map((g) => g.consumer),
      });
      return { hosts, consumers };
    },
  };
  return defineRunbook({ ...runbook, steps: [...runbook.steps, step] });
}
