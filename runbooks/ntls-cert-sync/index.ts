// ntls-cert-sync: do each client host and each appliance still trust each other's NTLS certificate?
//
//   diagnose.ts   per appliance:    fetch server.pem (sftp) -> subject, SHA-256 fingerprint, not-after
//                 per client host:  vtl listServers + CAFile.pem (the server certificates it trusts) + its own cert
//                 per appliance:    client show / client fingerprint for each of its clients (registered? partitions?)
//                 per appliance:    a real TLS handshake as each client (its certificate), then syslog tail: the NTLS
//                                   "unknown ca" / RC_SSL_FAILED_HANDSHAKE lines of that handshake (or its address)
//                 report:           per (appliance, client) pair: in-sync | expiring (days left) | expired |
//                                   mismatched (which side, the evidence)
//   regen.ts      regen (opt-in, one device, approved): sysconf regenCert; every client of it is then re-synced
//   repair.ts     snapshot:         before the first change, each pair to repair as it is (server entry, trusted
//                                   certificates, registration, partitions) is checkpointed (`repair-snapshot`)
//                 repair (opt-in):  client side: stage server.pem, vtl deleteServer -n <server> / vtl addServer
//                                   appliance side: upload <client>.pem, client delete (proceed) / client register /
//                                   client assignPartition for each partition the client had (exactly those)
//                                   self-healing: an interruption after the first destructive command fails the job
//                                   with RepairInterrupted; the same job resumed finishes from the snapshot
//   verify.ts     handshake as the client succeeds and presents the certificate the client trusts; vtl verify lists
//                 the client's partitions on that appliance
//   model.ts      parameters, step results, certificate paths, and the reads both sides use

import { UnexpectedResult } from "../../src/engine/errors.ts";
import { findingsVerdict, type Verdict, type VerdictView } from "../../src/engine/outcome.ts";
import { defineRunbook } from "../../src/engine/runbook.ts";
import { resolveTarget } from "../../src/engine/targets.ts";
import { applianceCert, applianceTrust, clientTrust, handshake, report } from "./diagnose.ts";
import { type Params, params } from "./model.ts";
import { regenCert } from "./regen.ts";
import { repairApplianceTrust, repairClientTrust, repairSnapshot } from "./repair.ts";
import { verify } from "./verify.ts";

export { RepairInterrupted } from "../lib/ntls-repair.ts";
export type { NtlsReport, PairReport } from "./model.ts";
export { CA_FILE, CLIENT_CERT_DIR, RepairNotVerified, SERVER_CERT_DIR } from "./model.ts";
export { RegenNotApproved } from "./regen.ts";

export const ntlsCertSync = defineRunbook({
  name: "ntls-cert-sync",
  description:
    "Per appliance/client pair: NTLS certificates trusted both ways, expiring or expired; repair or regenerate on request",
  params,
  targets(p, fleet) {
    const t = resolveTarget(fleet, p.target, ["fleet", "device", "clientHost"]);
    if (p.regen && t.kind !== "device")
      throw new UnexpectedResult(
        `regen replaces one appliance's certificate and needs one approval for it: target a device, not '${p.target}'`,
      );
    return { devices: t.devices, clientHosts: t.clientHosts };
  },
  verdict: (view) => ntlsVerdict(view),
  steps: [
    applianceCert,
    clientTrust,
    applianceTrust,
    handshake,
    report,
    regenCert,
    repairSnapshot,
    repairClientTrust,
    repairApplianceTrust,
    verify,
  ],
});

/**
 * Pairs not in sync that this job did not repair and verify are findings; a repair (or regen) that found nothing to
 * repair had nothing to do.
 */
function ntlsVerdict({ params: p, resultOf }: VerdictView<Params>): Verdict {
  const diagnosed = resultOf(report);
  if (!diagnosed) return { outcome: "failed", findings: ["ntls-cert-sync finished without its report"] };
  const fixed = new Set((resultOf(verify)?.verified ?? []).map((v) => `${v.device} ${v.host}`));
  const open = diagnosed.pairs.filter(
    (pair) => pair.status !== "in-sync" && !fixed.has(`${pair.device} ${pair.host}`),
  );
  const findings = open.map(
    (pair) =>
      `${pair.device} <-> ${pair.host}: ${pair.status}` +
      (pair.mismatch
        ? ` (${[...pair.mismatch.client, ...pair.mismatch.appliance].join("; ")})`
        : ` (${pair.daysLeft} day(s) left)`),
  );
  if ((p.repair || p.regen) && fixed.size === 0 && findings.length === 0)
    return { outcome: "nothing-to-do", findings: [] };
  return findingsVerdict(findings);
}
