// Registered NTLS clients of a simulated appliance: the launcher registers the fleet's client hosts directly, and
// lunash `client register` / `assignPartition` / `revokePartition` / `delete` go through the same rules.
import type { ApplianceState, RegisteredClient } from "../state.ts";

class ClientRegistryError extends Error {
  override name = "ClientRegistryError";
}

export interface ClientRegistration {
  name: string;
  hostname: string;
  certPem: string;
  partitions?: string[];
}

/** Register (or re-register) a client host with its certificate and assigned partitions. */
export function registerClient(state: ApplianceState, reg: ClientRegistration): RegisteredClient {
  const partitions = [...new Set(reg.partitions ?? [])];
  for (const p of partitions) {
    if (!state.partitions.some((x) => x.label === p))
      throw new ClientRegistryError(
        `appliance '${state.name}' has no partition '${p}' to assign to '${reg.name}'`,
      );
  }
  const client: RegisteredClient = {
    name: reg.name,
    hostname: reg.hostname,
    certPem: reg.certPem,
    partitions,
  };
  state.clients.set(reg.name, client);
  return client;
}

/** Client names are matched case-sensitively, as the appliance stores them. */
export function findClient(state: ApplianceState, name: string): RegisteredClient | undefined {
  return state.clients.get(name);
}
