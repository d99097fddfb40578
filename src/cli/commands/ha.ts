// `lunafleet ha breakers [--json]` and `lunafleet ha release-breaker <group> <member> [--reason …]`: the per-member
// breakers of ha-recover, through the daemon client (src/api/ops/fleet.ts). A member whose recovery failed
// fleet.defaults.breakerThreshold times in a row is not touched by ha-recover until an operator releases it here; the
// release is attributed to whoever is authenticated and recorded as evidence (log ha-breaker:<group>:<member>:<ms>).
// Exit codes: 0 done, 1 nothing to release or refused, 2 usage error, 3 daemon out of reach.
import type { Command } from "commander";
import { assertPrincipal, dataDirOption, principalOption, withDaemonClient } from "../support.ts";

const MEMBER = /^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/;

export function registerHaCommands(program: Command): void {
  const ha = program.command("ha").description("HA groups: ha-recover's per-member breakers");
  ha.command("breakers")
    .option("--json", "machine-readable output")
    .option(...dataDirOption)
    .description(
      "members with failed recoveries recorded (open once they reach fleet.defaults.breakerThreshold)",
    )
    .action(async (opts: { json?: boolean; dataDir?: string }) => {
      await withDaemonClient("ha breakers", opts, async (client) => {
        const rows = await client.breakers();
        if (opts.json) console.log(JSON.stringify(rows, null, 2));
        else if (rows.length === 0) console.log("no failed HA recoveries recorded");
        else
          for (const r of rows)
            console.log(`${r.group} ${r.member}: ${r.failures} failed recover(ies) in a row`);
        return 0;
      });
    });
  ha.command("release-breaker")
    .argument("<group>", "HA group label")
    .argument("<member>", "member as <device>/<partition>")
    .option(...principalOption("who releases it"))
    .option("--reason <text>", "what was fixed", "released by operator")
    .option(...dataDirOption)
    .description("let ha-recover try a member again after its breaker opened (recorded as evidence)")
    .action(
      async (group: string, member: string, opts: { as?: string; reason: string; dataDir?: string }) => {
        if (!MEMBER.test(member)) {
          console.error(`ha release-breaker: member must be <device>/<partition>, not '${member}'`);
          process.exitCode = 2;
          return;
        }
        await withDaemonClient("ha release-breaker", opts, async (client) => {
          await assertPrincipal(client, opts.as);
          const r = await client.releaseBreaker({ group, member, reason: opts.reason });
          console.log(
            `released ${group} ${member} (${r.cleared} failed recoveries cleared); evidence ${r.evidenceJobId}`,
          );
          return 0;
        });
      },
    );
}
