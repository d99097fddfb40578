// app-crypto-gate: the proof that an application's key path works, as the application itself: for each CMK consumer
// of the target, a wrapKey/unwrapKey round trip on its key with its own identity (its app registration's secret,
// through Entra ID). Any failure fails the job, naming the layer: identity, role, key or network.
import { z } from "zod";
import type { GateOutcome } from "../src/engine/key-vault-ports.ts";
import type { Verdict } from "../src/engine/outcome.ts";
import { defineRunbook, type Step } from "../src/engine/runbook.ts";
import { gateFact, gateFinding, gateObservation, gatePlan } from "./lib/crypto-gate.ts";
import { consumer, findingLine, poolOf, resolveKvTarget } from "./lib/key-vault.ts";

const params = z
  .object({
    /** A CMK consumer, a managed HSM (all its consumers), or `fleet`. */
    target: z.string().min(1).default("fleet"),
  })
  .strict();
type Params = z.output<typeof params>;

const consumersOf = (target: string, fleet: Parameters<typeof resolveKvTarget>[0]) =>
  resolveKvTarget(fleet, target, ["fleet", "managedHsm", "consumer"]).consumers;

const gate = {
  id: "gate",
  title: "wrapKey/unwrapKey round trip as each application's own identity",
  kind: "read",
  commands: (p, fleet) => consumersOf(p.target, fleet).flatMap((c) => gatePlan(fleet, c)),
  observes: (p, fleet) => consumersOf(p.target, fleet).map((c) => gateFact(fleet, c)),
  async run(ctx) {
    const gates: GateOutcome[] = [];
    for (const name of consumersOf(ctx.params.target, ctx.fleet))
      gates.push(await ctx.keyVault.cryptoGate(name, { signal: ctx.signal }));
    // The state model: each consumer's gate, on its pool.
    await ctx.facts.observe(...gates.map((g) => gateObservation(ctx.fleet, g)));
    return { gates };
  },
} satisfies Step<Params>;

export const appCryptoGate = defineRunbook({
  name: "app-crypto-gate",
  description:
    "As each application's own identity, a wrapKey/unwrapKey round trip on its key; a failure fails the job and names the layer",
  params,
  targets(p, fleet) {
    const names = consumersOf(p.target, fleet);
    return {
      devices: [],
      clientHosts: [],
      azure: [...new Set(names.map((c) => poolOf(fleet, consumer(fleet, c)).name))],
    };
  },
  verdict: ({ resultOf }): Verdict => {
    const gates = resultOf(gate)?.gates ?? [];
    const failed = gates.filter((g): g is Extract<GateOutcome, { passed: false }> => !g.passed);
    if (gates.length === 0) return { outcome: "nothing-to-do", findings: ["no CMK consumer to gate"] };
    if (failed.length > 0)
      return { outcome: "failed", findings: failed.map((g) => findingLine(gateFinding(g))) };
    return { outcome: "succeeded", findings: [] };
  },
  steps: [gate],
});
