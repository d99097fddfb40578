// The application crypto gate: "application crypto success is the final gate for HSM maintenance, not only hardware
// health". For a Managed HSM consumer, a wrapKey/unwrapKey round trip as the application's own identity; its
// failure names the layer to look at: identity (app registration, secret, tenant), role (its role assignment), key
// (disabled, expired, wrong operations, missing) or network (firewall, private link, no route).
import type { Fleet } from "../../src/config/schema.ts";
import type { GateOutcome } from "../../src/engine/key-vault-ports.ts";
import type { PlannedCommand } from "../../src/engine/runbook.ts";
import { azureCommand, consumer, type KvFinding, poolOf } from "./key-vault.ts";

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
