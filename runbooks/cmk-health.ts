// cmk-health: for each application that uses a customer-managed key in a Managed HSM (Delinea Secret Server is the
// worked example), the rules its key path must meet, then the application crypto gate:
//
//   read      as the daemon's identity: the consumer's key (type, operations, enabled, versions, rotation policy),
//             the pool's role assignments, and the client secret's end date (the fleet file's, or Microsoft Graph's
//             password credentials for the app registration, matched by the configured secret's hint)
//   gate      (gate=true) a wrapKey/unwrapKey round trip as the application's own identity: failures name the layer
//   findings  AES-256 with wrapKey + unwrapKey; the role at exactly the key's scope; the secret ending beyond the
//             consumer's threshold; no auto-rotation with an expiry that disables the version in use; the gate
import { z } from "zod";
import { KeyVaultOperationError } from "../src/azure/key-vault-errors.ts";
import type { HsmKeyInfo, RoleAssignmentInfo } from "../src/azure/mhsm-data-plane.ts";
import type { Fleet } from "../src/config/schema.ts";
import type { GateOutcome } from "../src/engine/key-vault-ports.ts";
import { findingsVerdict } from "../src/engine/outcome.ts";
import { defineRunbook, type Step } from "../src/engine/runbook.ts";
import type { FactRef, ObservationInput } from "../src/facts/model.ts";
import { gateFinding, gatePlan } from "./lib/crypto-gate.ts";
import {
  azureCommand,
  consumer,
  findingLine,
  type KvFinding,
  keyOf,
  poolOf,
  poolSubject,
  resolveKvTarget,
} from "./lib/key-vault.ts";
import { consumerKeyFindings, consumerRoleFindings } from "./lib/mhsm-rules.ts";

const params = z
  .object({
    /** A CMK consumer, a managed HSM (its consumers), or `fleet`. */
    target: z.string().min(1).default("fleet"),
    /** Run the application crypto gate after the rules. */
    gate: z.boolean().default(true),
  })
  .strict();
type Params = z.output<typeof params>;

export interface ConsumerRead {
  consumer: string;
  pool: string;
  key: HsmKeyInfo | null;
  assignments: RoleAssignmentInfo[] | null;
  secret: { endDateTime: string | null; source: "graph" | "fleet file"; matchedBy?: string } | null;
  refused: { operation: string; missingRole: string | null; missingAction: string | null }[];
}

export interface CmkHealthResult {
  consumers: string[];
  findings: KvFinding[];
}

const consumersOf = (target: string, fleet: Parameters<typeof resolveKvTarget>[0]) =>
  resolveKvTarget(fleet, target, ["fleet", "managedHsm", "consumer"]).consumers;

const read = {
  id: "read",
  title: "Read each consumer's key, role assignments and client secret end date (daemon identity)",
  kind: "read",
  // Declared here: a read that fails leaves each consumer's fact check-failed, never an older green one.
  observes: (p, fleet) => consumersOf(p.target, fleet).map((c) => consumerFact(fleet, c)),
  commands: (p, fleet) =>
    consumersOf(p.target, fleet).flatMap((name) => {
      const c = consumer(fleet, name);
      const pool = poolOf(fleet, c);
      return [
        azureCommand(pool.hsmUri, `GET keys/${c.key} (versions, rotation policy)`),
        azureCommand(pool.hsmUri, "GET providers/Microsoft.Authorization/roleAssignments"),
        c.clientSecretExpires === "graph"
          ? azureCommand(
              fleet.azureIdentity.graphEndpoint,
              `GET v1.0/applications?$filter=appId eq '${c.clientId}'`,
            )
          : azureCommand("fleet file", `client secret ends ${c.clientSecretExpires}`),
      ];
    }),
  async run(ctx): Promise<{ consumers: ConsumerRead[] }> {
    const o = { signal: ctx.signal };
    const assignmentsByPool = new Map<string, RoleAssignmentInfo[] | null>();
    const out: ConsumerRead[] = [];
    for (const name of consumersOf(ctx.params.target, ctx.fleet)) {
      const c = consumer(ctx.fleet, name);
      const pool = poolOf(ctx.fleet, c);
      const refused: ConsumerRead["refused"] = [];
      const attempt = async <T>(operation: string, read: () => Promise<T>): Promise<T | null> => {
        try {
          return await read();
        } catch (err) {
          if (
            err instanceof KeyVaultOperationError &&
            (err.failure.layer === "role" || err.failure.layer === "key")
          ) {
            if (err.failure.layer === "role")
              refused.push({
                operation,
                missingRole: err.failure.missingRole ?? null,
                missingAction: err.failure.missingAction ?? null,
              });
            return null;
          }
          throw err;
        }
      };
      const key = await attempt(`reading key ${c.key}`, () =>
        ctx.keyVault.data.readKey(pool.hsmUri, c.key, o),
      );
      if (!assignmentsByPool.has(pool.name)) {
        const defs = await attempt("reading role definitions", () =>
          ctx.keyVault.data.listRoleDefinitions(pool.hsmUri, o),
        );
        assignmentsByPool.set(
          pool.name,
          defs
            ? await attempt("reading role assignments", () =>
                ctx.keyVault.data.listRoleAssignments(pool.hsmUri, defs, o),
              )
            : null,
        );
      }
      let secret: ConsumerRead["secret"];
      if (c.clientSecretExpires === "graph") {
        const e = await attempt("reading the app registration from Graph", () =>
          ctx.keyVault.secretExpiry(name, o),
        );
        secret = e ? { endDateTime: e.endDateTime, source: "graph", matchedBy: e.matchedBy } : null;
      } else secret = { endDateTime: new Date(c.clientSecretExpires).toISOString(), source: "fleet file" };
      out.push({
        consumer: name,
        pool: pool.name,
        key,
        assignments: assignmentsByPool.get(pool.name) ?? null,
        secret,
        refused,
      });
    }
    return { consumers: out };
  },
} satisfies Step<Params>;

const gate = {
  id: "gate",
  title: "The application crypto gate: wrapKey/unwrapKey as each application's own identity",
  kind: "read",
  commands: (p, fleet) => (p.gate ? consumersOf(p.target, fleet).flatMap((c) => gatePlan(fleet, c)) : []),
  async run(ctx): Promise<{ gates: GateOutcome[]; skipped?: string }> {
    if (!ctx.params.gate) return { gates: [], skipped: "gate=false" };
    const gates: GateOutcome[] = [];
    for (const name of consumersOf(ctx.params.target, ctx.fleet))
      gates.push(await ctx.keyVault.cryptoGate(name, { signal: ctx.signal }));
    return { gates };
  },
} satisfies Step<Params>;

const findings = {
  id: "findings",
  title: "Apply the rules to each consumer",
  kind: "read",
  async run(ctx): Promise<CmkHealthResult> {
    const now = new Date();
    const { consumers } = ctx.resultOf(read);
    const { gates } = ctx.resultOf(gate);
    const findings: KvFinding[] = [];
    for (const r of consumers) {
      const c = consumer(ctx.fleet, r.consumer);
      for (const x of r.refused)
        findings.push({
          subject: `consumer ${c.name}`,
          check: "access",
          message: `the daemon's identity was refused ${x.operation}: it needs ${x.missingRole ?? "a data-plane role"}${x.missingAction ? ` (${x.missingAction})` : ""}`,
        });
      findings.push(...consumerKeyFindings(c, keyOf(ctx.fleet, c), r.key, r.secret, now));
      if (r.assignments) findings.push(...consumerRoleFindings(c, r.assignments));
    }
    for (const g of gates) if (!g.passed) findings.push(gateFinding(g));
    // The state model: one fact per consumer on its pool (`consumer:<name>`), problem when a rule failed.
    await ctx.facts.observe(
      ...consumers.map((r): ObservationInput => {
        const g = gates.find((x) => x.consumer === r.consumer);
        const gate = !g ? "not run" : g.passed ? "passed" : `failed (${g.layer})`;
        const mine = findings.filter((f) => f.subject === `consumer ${r.consumer}`);
        const seen = {
          subject: consumerFact(ctx.fleet, r.consumer).subject,
          fact: consumerFact(ctx.fleet, r.consumer).fact,
          summary: `gate ${gate}; secret ends ${r.secret?.endDateTime?.slice(0, 10) ?? "unknown"}`,
          value: {
            gate,
            secretEndsAt: r.secret?.endDateTime ?? null,
            application: consumer(ctx.fleet, r.consumer).application,
          },
        };
        return mine.length === 0
          ? { ...seen, status: "ok" }
          : { ...seen, status: "problem", reason: mine.map(findingLine).join("; ") };
      }),
    );
    return { consumers: consumers.map((r) => r.consumer), findings };
  },
} satisfies Step<Params>;

export const cmkHealth = defineRunbook({
  name: "cmk-health",
  description:
    "Check each application's customer-managed key path: AES-256 wrap/unwrap, role scoped to its key, secret expiry, rotation without expiry, then the crypto gate",
  params,
  targets(p, fleet) {
    const t = resolveKvTarget(fleet, p.target, ["fleet", "managedHsm", "consumer"]);
    const pools = [...new Set(t.consumers.map((c) => poolOf(fleet, consumer(fleet, c)).name))];
    return { devices: [], clientHosts: [], azure: pools };
  },
  verdict: ({ resultOf }) => findingsVerdict((resultOf(findings)?.findings ?? []).map(findingLine)),
  steps: [read, gate, findings],
});

/** The state model's fact of a consumer: `consumer:<name>` on its pool's subject. */
function consumerFact(fleet: Fleet, name: string): FactRef {
  return { subject: poolSubject(fleet, poolOf(fleet, consumer(fleet, name)).name), fact: `consumer:${name}` };
}
