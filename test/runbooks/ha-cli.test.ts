// `lunafleet ha breakers` / `lunafleet ha release-breaker` through the real CLI against a real embedded Redis, and
// `lunafleet plan` for the three incident runbooks (exact commands, nothing connects).
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { getRunbook } from "../../runbooks/index.ts";
import { readBreaker, recordFailure } from "../../runbooks/lib/breaker.ts";
import { planJob, renderPlan } from "../../src/engine/plan.ts";
import { RedisStateStore } from "../../src/engine/state.ts";
import { demoFleet } from "../helpers/engine.ts";
import { withRedis } from "../helpers/redis.ts";

const redis = await withRedis();
const bin = fileURLToPath(new URL("../../bin/lunafleet.js", import.meta.url));

function lunafleet(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("REDIS_")));
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { env }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe("lunafleet ha", () => {
  it("lists an open breaker and releases it, with evidence; a second release has nothing to do", async () => {
    const state = new RedisStateStore(redis.client());
    for (let i = 0; i < 3; i++) await recordFailure(state, "ha-tokens", "hsm-b2/par-tok", 3);
    const list = await lunafleet(["ha", "breakers", "--data-dir", redis.dataDir]);
    expect(list.stdout).toContain("ha-tokens hsm-b2/par-tok: 3 failed");
    const rel = await lunafleet([
      "ha",
      "release-breaker",
      "ha-tokens",
      "hsm-b2/par-tok",
      "--data-dir",
      redis.dataDir,
    ]);
    expect(rel.code).toBe(0);
    expect(rel.stdout).toMatch(/released ha-tokens hsm-b2\/par-tok \(3 failed recoveries cleared\)/);
    expect((await readBreaker(state, "ha-tokens", "hsm-b2/par-tok", 3)).open).toBe(false);
    const again = await lunafleet([
      "ha",
      "release-breaker",
      "ha-tokens",
      "hsm-b2/par-tok",
      "--data-dir",
      redis.dataDir,
    ]);
    expect(again.code).toBe(1);
    const bad = await lunafleet([
      "ha",
      "release-breaker",
      "ha-tokens",
      "hsm-b2",
      "--data-dir",
      redis.dataDir,
    ]);
    expect(bad.code).toBe(2);
  });
});

describe("lunafleet plan for the incident runbooks", () => {
  const fleet = demoFleet();
  it("ntls-cert-sync with repair lists sftp, vtl and client commands", () => {
    const text = renderPlan(planJob(getRunbook("ntls-cert-sync"), { target: "hsm-a1", repair: true }, fleet));
    expect(text).toContain("sftp hsm-a1> get server.pem");
    // The server name is the one client-a lists for hsm-a1, read at run time: the plan names it as such.
    expect(text).toContain(
      "shell client-a> vtl addServer -n <hsm-a1's server name> -c /tmp/lunafleet-hsm-a1-server.pem",
    );
    expect(text).toContain("lunash hsm-a1> client fingerprint -client client-a");
    expect(text).toContain("lunash hsm-a1> syslog tail -logname messages -entries 200 -search NTLS");
  });
  it("ha-recover and ha-sync list their lunacm commands; auto covers every auto group", () => {
    const rec = planJob(getRunbook("ha-recover"), { auto: true }, fleet);
    expect(rec.targets.clientHosts).toEqual(["client-a", "client-b"]);
    const text = renderPlan(rec);
    expect(text).toContain("lunacm client-b> hagroup recover -group ha-tokens");
    expect(text).toContain("lunacm client-b> hagroup retry -count 3");
    const sync = renderPlan(planJob(getRunbook("ha-sync"), { target: "ha-payments" }, fleet));
    expect(sync).toContain("lunacm client-a> role login -name co");
    expect(sync).toContain("lunacm client-a> hagroup synchronize -group ha-payments");
    // The CO logins (through the guard) come before lunacm's cloning check, the logouts after it.
    expect(sync.indexOf("> role login")).toBeLessThan(sync.indexOf("> hagroup synchronize"));
    expect(sync.indexOf("> role logout")).toBeGreaterThan(sync.indexOf("> hagroup synchronize"));
  });
});
