// The application's own crypto check on a twin client host: the command line the fleet file configures under
// appCryptoGate.clientHostChecks for this host. [I] What a real application's check prints is the application's;
// the twin's check uses the client's HA groups as the application would (an operation through each group's virtual
// slot) and answers with its exit status: 0 when every HA group on the host has a member that is up and reachable,
// 1 naming the groups that have none. The product reads only the exit status.
import type { ClientHostModel } from "./model.ts";

export function appCheck(
  model: ClientHostModel,
  line: string,
): { text: string; exitCode: number } | undefined {
  const command = line.trim();
  const configured = model.fleet.appCryptoGate.clientHostChecks.some(
    (c) => c.clientHost === model.name && c.command === command,
  );
  if (!configured) return undefined;
  model.noticeFailedMembers();
  if (model.haGroups.length === 0)
    return { text: "app crypto check: FAILED: no HA group is configured on this client\n", exitCode: 1 };
  const dead = model.haGroups.filter((g) => !g.members.some((m) => !m.down));
  if (dead.length > 0)
    return {
      text: `app crypto check: FAILED: no live member in HA group ${dead.map((g) => g.label).join(", ")}\n`,
      exitCode: 1,
    };
  return {
    text: `${model.haGroups.map((g) => `app crypto check: HA group ${g.label}: wrap/unwrap OK`).join("\n")}\n`,
    exitCode: 0,
  };
}
