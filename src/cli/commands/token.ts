// `lunafleet token create --name … --role … --expires …`, `token list [--json]`, `token revoke <name|id>`: API tokens
// for automation (admin), through the daemon client (src/api/ops/fleet.ts). A token is printed once, on stdout alone
// (so `… > file` captures only it), and stored only as its SHA-256; every token expires (at most 366 days). Creating
// and revoking are recorded in the `tokens:<day>` evidence log (never the token).
import type { Command } from "commander";
import { ROLES } from "../../config/identity-schema.ts";
import { ago, dataDirOption, withDaemonClient } from "../support.ts";

export function registerTokenCommands(program: Command): void {
  const token = program
    .command("token")
    .description("API tokens for automation: create (printed once), list, revoke");
  token
    .command("create")
    .requiredOption(
      "--name <name>",
      "what uses it (ci, siem, deprovision-workflow): names the principal token:<name>",
    )
    .requiredOption("--role <role>", `its one role (${ROLES.join(", ")})`)
    .requiredOption("--expires <when>", "90d, 12h, 30m or an ISO date (at most 366 days)")
    .option(...dataDirOption)
    .description("create an API token; it is printed once and never again")
    .action(async (opts: { name: string; role: string; expires: string; dataDir?: string }) => {
      if (!(ROLES as readonly string[]).includes(opts.role)) {
        console.error(`lunafleet token create: unknown role '${opts.role}' (one of ${ROLES.join(", ")})`);
        process.exitCode = 2;
        return;
      }
      await withDaemonClient("token create", opts, async (client) => {
        const { token: secret, record } = await client.createToken({
          name: opts.name,
          role: opts.role,
          expires: opts.expires,
        });
        process.stdout.write(`${secret}\n`);
        console.error(
          `token ${record.name} (id ${record.id}, role ${record.role}) expires ${record.expiresAt}; shown once: store it now (LUNAFLEET_TOKEN or LUNAFLEET_TOKEN_FILE)`,
        );
        return 0;
      });
    });
  token
    .command("list")
    .option("--json", "print JSON")
    .option(...dataDirOption)
    .description("every API token: name, role, status, who created it, expiry (never the token)")
    .action(async (opts: { json?: boolean; dataDir?: string }) => {
      await withDaemonClient("token list", opts, async (client) => {
        const rows = await client.tokens();
        if (opts.json) {
          console.log(JSON.stringify(rows, null, 2));
          return 0;
        }
        if (rows.length === 0) {
          console.log("no API tokens");
          return 0;
        }
        const table = [
          ["NAME", "ID", "ROLE", "STATUS", "EXPIRES", "CREATED", "BY"],
          ...rows.map((t) => [
            t.name,
            t.id,
            t.role,
            t.status === "revoked" ? `revoked by ${t.revokedBy ?? "?"}` : t.status,
            t.expiresAt,
            ago(Date.parse(t.createdAt)),
            t.createdBy,
          ]),
        ];
        const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => (r[i] ?? "").length)));
        for (const r of table)
          console.log(
            r
              .map((c, i) => c.padEnd(widths[i] ?? 0))
              .join("  ")
              .trimEnd(),
          );
        return 0;
      });
    });
  token
    .command("revoke")
    .argument("<name>", "the token's name (or id): every active token of that name is revoked")
    .option(...dataDirOption)
    .description("revoke an API token at once (it stays listed, revoked, for the record)")
    .action(async (name: string, opts: { dataDir?: string }) => {
      await withDaemonClient("token revoke", opts, async (client) => {
        const r = await client.revokeToken(name);
        console.log(`revoked ${r.revoked} token(s) named ${r.name}`);
        return 0;
      });
    });
}
