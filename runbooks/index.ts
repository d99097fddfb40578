// The registry of runbooks the daemon, the queue and the CLI may run. A name not listed here is refused with the
// list of names that are.

import { EngineError } from "../src/engine/errors.ts";
import type { Runbook } from "../src/engine/runbook.ts";
import { appCryptoGate } from "./app-crypto-gate.ts";
import { cmkHealth } from "./cmk-health.ts";
import { deprovision } from "./deprovision.ts";
import { haRecover } from "./ha-recover.ts";
import { haSync } from "./ha-sync.ts";
import { withAppCryptoGate } from "./lib/crypto-gate.ts";
import { mhsmAudit } from "./mhsm-audit.ts";
import { mhsmRetire } from "./mhsm-retire.ts";
import { ntlsCertSync } from "./ntls-cert-sync/index.ts";
import { patchVerify } from "./patch-verify.ts";
import { tcpCheck } from "./tcp-check.ts";
import { vaultPlacement } from "./vault-placement.ts";

export class UnknownRunbook extends EngineError {
  override name = "UnknownRunbook";
}

const RUNBOOKS = new Map<string, Runbook>(
  (
    [
      tcpCheck,
      patchVerify,
      deprovision,
      // Maintenance ends with the application crypto gate where the fleet file's appCryptoGate.after says so.
      withAppCryptoGate(ntlsCertSync),
      withAppCryptoGate(haRecover),
      withAppCryptoGate(haSync),
      // Managed HSM / Key Vault / customer-managed keys
      mhsmAudit,
      cmkHealth,
      appCryptoGate,
      vaultPlacement,
      mhsmRetire,
    ] as Runbook[]
  ).map((r) => [r.name, r]),
);

export function getRunbook(name: string): Runbook {
  const runbook = RUNBOOKS.get(name);
  if (!runbook)
    throw new UnknownRunbook(
      `unknown runbook '${name}' (known runbooks: ${[...RUNBOOKS.keys()].sort().join(", ")})`,
    );
  return runbook;
}

export function listRunbooks(): { name: string; description: string }[] {
  return [...RUNBOOKS.values()].map((r) => ({ name: r.name, description: r.description }));
}
