// `lunafleet ha breakers [--json]` and `lunafleet ha release-breaker <group> <member> --as <principal> [--reason …]`:
// the per-member breakers of ha-recover. A member whose recovery failed fleet.defaults.breakerThreshold times in a
// row is not touched by ha-recover until an operator releases it here; the release is recorded as evidence
// (job id ha-breaker:<group>:<member>:<ms>). Exit codes: 0 done, 1 nothing to release, 2 usage error / Redis.
import type { Command } from "commander";
import { releaseBreaker } from "../../../runbooks/lib/breaker.ts";
import { RedisStateStore } from "../../engine/state.ts";
import { EvidenceLog } from "../../evidence/index.ts";
import type { RedisClient } from "../../redis/client.ts";
import { defaultDataDir } from "../../redis/embedded-server.ts";
import { withEmbeddedRedis } from "../support.ts";

const DATA_DIR_HELP = "lunafleet data dir (default $LUNAFLEET_DATA_DIR or ./.lunafleet)";
const MEMBER = /^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/;
const FAILURES_KEY = /^ha-breaker:(.+):([^:]+\/[^:]+):failures$/;

export function registerHaCommands(program: Command): void {
  const ha = program.command("ha").description("HA groups: ha-recover's per-member breakers");
  ha.command("breakers")
    .option("--json", "machine-readable output")
    .option("--data-dir <dir>", DATA_DIR_HELP)
    .description(
      "members with failed recoveries recorded (open once they reach fleet.defaults.breakerThreshold)",
    )
    .action(async (opts: { json?: boolean; dataDir?: string }) => {
      process.exitCode = await withState(opts.dataDir, "breakers", async (state) => {
        const rows: { group: string; member: string; failures: number }[] = [];
        for (const key of await state.keys("ha-breaker:")) {
          const m = FAILURES_KEY.exec(key);
          if (m) rows.push({ group: m[1]!, member: m[2]!, failures: Number(await state.get(key)) });
        }
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
    .requiredOption("--as <principal>", "who releases it (kept in the evidence)")
    .option("--reason <text>", "what was fixed", "released by operator")
    .option("--data-dir <dir>", DATA_DIR_HELP)
    .description("let ha-recover try a member again after its breaker opened (recorded as evidence)")
    .action(async (group: string, member: string, opts: { as: string; reason: string; dataDir?: string }) => {
      if (!MEMBER.test(member)) {
        console.error(`ha release-breaker: member must be <device>/<partition>, not '${member}'`);
        process.exitCode = 2;
        return;
      }
      const dataDir = opts.dataDir ?? defaultDataDir();
      process.exitCode = await withState(dataDir, "release-breaker", async (state, redis) => {
        const cleared = await releaseBreaker(state, group, member);
        if (cleared === 0) {
          console.error(`nothing to release: no failed recoveries recorded for ${member} in ${group}`);
          return 1;
        }
        const jobId = `ha-breaker:${group}:${member.replace("/", "_")}:${Date.now()}`;
        const log = await EvidenceLog.open(redis, dataDir, jobId);
        await log.append(
          "note",
          { event: "ha-breaker-released", group, member, failures: cleared, reason: opts.reason },
          opts.as,
        );
        console.log(`released ${group} ${member} (${cleared} failed recoveries cleared); evidence ${jobId}`);
        return 0;
      });
    });
}

function withState(
  dataDirOpt: string | undefined,
  what: string,
  act: (state: RedisStateStore, redis: RedisClient) => Promise<number>,
): Promise<number> {
  return withEmbeddedRedis(dataDirOpt, `ha ${what}`, `lunafleet:cli:ha-${what}`, (redis) =>
    act(new RedisStateStore(redis), redis),
  );
}
