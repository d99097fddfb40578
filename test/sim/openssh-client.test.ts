// The twin driven by a peer we did not write: OpenSSH's `ssh` and `scp` against a twin appliance (password auth
// through SSH_ASKPASS), checking the lunash output and that scp fetches the certificate NTLS presents.
import { execFile } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadFleet } from "../../src/config/index.ts";
import { startTwin, type Twin } from "../../src/sim/twin.ts";

const run = promisify(execFile);

let twin: Twin;
let dir: string;
let env: NodeJS.ProcessEnv;

// The same options an operator would use against a throwaway lab host; -F /dev/null ignores local ssh configs.
const OPTS = [
  "-F",
  "/dev/null",
  "-o",
  "StrictHostKeyChecking=no",
  "-o",
  "UserKnownHostsFile=/dev/null",
  "-o",
  "LogLevel=ERROR",
  "-o",
  "PubkeyAuthentication=no",
  "-o",
  "ConnectTimeout=5",
];

beforeAll(async () => {
  twin = await startTwin(loadFleet("config/demo.yaml"), { rebase: true });
  dir = mkdtempSync(join(tmpdir(), "twin-openssh-"));
  const askpass = join(dir, "askpass.sh");
  // The twin's literal demo password, handed to ssh the way an operator's askpass helper would.
  const password = twin.credentials("hsm-a1").password?.reveal() ?? "";
  writeFileSync(askpass, `#!/bin/sh\nprintf '%s\\n' '${password}'\n`);
  chmodSync(askpass, 0o700);
  env = { ...process.env, SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: "force", DISPLAY: ":0" };
});

afterAll(async () => {
  await twin?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("OpenSSH clients against the twin", () => {
  it("ssh <appliance> 'hsm show' prints the appliance's hsm show", async () => {
    const c = twin.credentials("hsm-a1");
    const { stdout } = await run(
      "ssh",
      [...OPTS, "-p", String(c.port), `${c.user}@${c.address}`, "hsm show"],
      {
        env,
        timeout: 10_000,
      },
    );
    expect(stdout).toContain("Serial #:                           700101");
    expect(stdout).toMatch(/HSM Admin login attempts left:\s+3 before HSM zeroization!/);
    expect(twin.appliances.get("hsm-a1")?.state.commandLog.some((e) => e.command === "hsm show")).toBe(true);
  });

  it("scp fetches server.pem, byte for byte the appliance's NTLS certificate (sftp and legacy scp)", async () => {
    const c = twin.credentials("hsm-a1");
    for (const legacy of [false, true]) {
      const local = join(dir, legacy ? "legacy.pem" : "server.pem");
      await run(
        "scp",
        [
          ...OPTS,
          ...(legacy ? ["-O"] : []),
          "-P",
          String(c.port),
          `${c.user}@${c.address}:server.pem`,
          local,
        ],
        { env, timeout: 10_000 },
      );
      expect(readFileSync(local, "utf8")).toBe(twin.appliances.get("hsm-a1")?.state.ntls.certPem);
    }
  });

  it("refuses a wrong password (ssh exits 255)", async () => {
    const bad = join(dir, "bad.sh");
    writeFileSync(bad, "#!/bin/sh\necho not-the-password\n");
    chmodSync(bad, 0o700);
    const c = twin.credentials("hsm-a1");
    await expect(
      run(
        "ssh",
        [
          ...OPTS,
          "-o",
          "NumberOfPasswordPrompts=1",
          "-p",
          String(c.port),
          `${c.user}@${c.address}`,
          "hsm show",
        ],
        { env: { ...env, SSH_ASKPASS: bad }, timeout: 10_000 },
      ),
    ).rejects.toMatchObject({ code: 255 });
  });
});
