// The registry of runbooks the daemon, the queue and the CLI may run. A name not listed here is refused with the
// list of names that are.

import { EngineError } from "../src/engine/errors.ts";
import type { Runbook } from "../src/engine/runbook.ts";
import { deprovision } from "./deprovision.ts";
import { haRecover } from "./ha-recover.ts";
import { haSync } from "./ha-sync.ts";
import { ntlsCertSync } from "./ntls-cert-sync/index.ts";
import { patchVerify } from "./patch-verify.ts";
import { tcpCheck } from "./tcp-check.ts";

export class UnknownRunbook extends EngineError {
  override name = "UnknownRunbook";
}

const RUNBOOKS = new Map<string, Runbook>(
  ([tcpCheck, patchVerify, deprovision, ntlsCertSync, haRecover, haSync] as Runbook[]).map((r) => [
    r.name,
    r,
  ]),
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
