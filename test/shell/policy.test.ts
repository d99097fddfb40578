// The command policy, table-driven: every deny rule with its canonical form and abbreviations, the read-only forms
// that must stay allowed, and the LoginToken rules (no token, wrong target/command, reuse).
import { describe, expect, it } from "vitest";
import { VOCABULARY } from "../../parsers/index.ts";
import { Secret } from "../../src/config/secret.ts";
import { CommandRefused } from "../../src/shell/errors.ts";
import { issueLoginToken } from "../../src/shell/login-token.ts";
import {
  assertCommandAllowed,
  checkCommand,
  DENY_RULES,
  type PolicyContext,
} from "../../src/shell/policy.ts";

const sh: PolicyContext = { shell: "lunash", target: "hsm-x" };
const cm: PolicyContext = { shell: "lunacm", target: "client-x" };

// [rule id, context, commands that must be refused by exactly that rule]
const DENIED: [string, PolicyContext, string[]][] = [
  ["hsm-zeroize", sh, ["hsm zeroize", "hsm zer", "HSM ZEROIZE -force", "h z"]],
  ["hsm-init", sh, ["hsm init -label X", "hsm ini", "Hsm Init"]],
  ["hsm-factory-reset", sh, ["hsm factoryReset", "hsm fact", "hsm FACTORYRESET -f"]],
  ["hsm-rollback-firmware", sh, ["hsm rollbackFW", "hsm roll"]],
  [
    "hsm-destructive-policy",
    sh,
    [
      "hsm changePolicy -policy 12 -value 0",
      "hsm changeP -pol 15 -val 1",
      "hsm changePolicy -value 1",
      "hsm changePolicy -policy 99 -value 1",
    ],
  ],
  [
    "partition-destroy",
    sh,
    [
      "partition delete -partition p",
      "par del -par p",
      "partition clear -p p",
      "partition create -partition p",
      "part cr -p x",
      "partition init",
      "partition resetPw -p x",
    ],
  ],
  ["token-backup-destroy", sh, ["token backup factoryReset -serial 1", "tok b fact"]],
  ["audit-init", sh, ["audit init", "aud ini"]],
  [
    "sysconf-config-reset",
    sh,
    [
      "sysconf config factoryReset -service all",
      "sysc conf fact",
      "sysconf config restore -fi x",
      "sysconf con res",
    ],
  ],
  [
    "network-change",
    sh,
    [
      "network interface -device eth0 -ip 10.0.0.2",
      "net int -dev eth0",
      "network route add -network 0.0.0.0",
      "net route del",
      "network hostname foo",
      "network dns add nameserver 1.1.1.1",
      "network domain x",
      "net bond",
      "netw ho x",
    ],
  ],
  [
    "ssh-restriction",
    sh,
    ["sysconf ssh ip 10.0.0.1", "sysc ssh dev eth1", "sysconf ssh port 2222", "sysconf ssh password disable"],
  ],
  [
    "service-stop-network",
    sh,
    ["service stop network", "serv sto net", "service restart network", "service stop ssh", "service stop"],
  ],
  ["appliance-poweroff", sh, ["sysconf appliance poweroff", "sysc app pow"]],
  ["appliance-reboot", sh, ["sysconf appliance reboot", "sysc app reb", "sysconf appliance hardreboot"]],
  ["user-delete", sh, ["user delete -username operator", "user del -u x"]],
  [
    "lunacm-partition-destroy",
    cm,
    ["partition init -label p", "par ini", "partition clear", "partition delete -slot 0", "par cl"],
  ],
  [
    "lunacm-hsm-destroy",
    cm,
    [
      "hsm init -label h",
      "hsm zeroize",
      "hsm zer",
      "hsm factoryReset",
      "hsm changehsmpolicy -policy 12 -value 0",
    ],
  ],
  [
    "lunacm-role-credentials",
    cm,
    [
      "role init -name co",
      "role resetpw -name co",
      "role res -n co",
      "role changepw -name co",
      "role deact -name co",
      "partition changepw -name co",
    ],
  ],
  ["lunacm-audit-init", cm, ["audit init"]],
  ["control-characters", sh, ["hsm show\nhsm zeroize", "hsm show\r", "hsm show\x03"]],
  ["inline-password", sh, ["ntls show -password x", "client show -client c -passw x"]],
  [
    "inline-password",
    cm,
    [
      "hagroup synchronize -group g -password x",
      "hagroup creategroup -label g -slot 0 -p x",
      "clientconfig deploy -server s -client c -partition p -pw x",
    ],
  ],
  [
    "no-force",
    sh,
    [
      "sysconf regenCert -f",
      "sysconf regenCert -force",
      "client delete -client c -force",
      "client del -client c -FORCE",
      "client delete -force -client c",
      "ntls show -forc",
      "service restart ntls -fo",
      "syslog tail -logname messages --force",
      // Refused before the login rules: a token does not make -force acceptable.
      "hsm login -force",
      "hsm login -f",
    ],
  ],
  ["no-force", cm, ["hagroup synchronize -group g -force", "hagroup recover -f", "role login -name co -for"]],
  [
    "no-force",
    { shell: "host", target: "client-x" },
    ["vtl addServer -n s -c c.pem -force", "vtl verify -f"],
  ],
  ["login-requires-token", sh, ["hsm login", "hsm logi", "HSM LOGIN", "audit login", "partition login"]],
  ["login-requires-token", cm, ["role login -name co", "ro logi -n co", "partition login"]],
  ["host-allowlist", { shell: "host", target: "client-x" }, ["rm -rf /", "bash", "ls"]],
  [
    "host-lunacm-arguments",
    { shell: "host", target: "client-x" },
    ["lunacm -q partition init", 'lunacm -c "hsm zeroize"'],
  ],
  ["host-vtl-subcommand", { shell: "host", target: "client-x" }, ["vtl haAdmin -recover", "vtl"]],
  [
    "host-shell-metacharacters",
    { shell: "host", target: "client-x" },
    ["lunacm; rm -rf /", "vtl verify | sh"],
  ],
];

const ALLOWED: [PolicyContext, string[]][] = [
  [
    sh,
    [
      "hsm show",
      "hsm sh",
      "hsm showPolicies",
      "hsm showP",
      "partition list",
      "par list",
      "partition show -p x",
      "partition sh -p x",
      "package list",
      "client show -client c",
      "ntls show",
      "network show",
      "net sh",
      "network route show",
      "network ping 10.0.0.1",
      "sysconf ssh show",
      "service restart ntls",
      "service stop ntls",
      "sysconf regenCert",
      "hsm changePolicy -policy 16 -value 1",
      "hsm logout",
      "user list",
      "syslog tail -logname messages -entries 10",
      "status date",
    ],
  ],
  [
    cm,
    [
      "slot list",
      "partition showinfo",
      "par si",
      "hagroup listgroups",
      "hagroup recover -group g",
      "hagroup retry -count 3",
      "role show -name co",
      "role logout",
      "hagroup synchronize -group g",
      "hagroup retry -count -1",
    ],
  ],
  [{ shell: "host", target: "client-x" }, ["lunacm", "vtl verify", "vtl listServers", "exit"]],
];

describe("command policy: deny rules", () => {
  for (const [rule, ctx, commands] of DENIED)
    for (const command of commands)
      it(`${ctx.shell} '${JSON.stringify(command).slice(1, -1)}' → ${rule}`, () => {
        const d = checkCommand(command, ctx);
        expect(d.allowed).toBe(false);
        if (!d.allowed) {
          expect(d.rule).toBe(rule);
          expect(d.reason.length).toBeGreaterThan(10);
        }
      });

  it("every deny rule is exercised by the table above", () => {
    const covered = new Set(DENIED.map(([r]) => r));
    for (const rule of DENY_RULES) expect(covered, rule.id).toContain(rule.id);
  });

  it("CommandRefused names the target, the command, the rule and the reason", () => {
    try {
      assertCommandAllowed("hsm zer", sh);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(CommandRefused);
      const e = err as CommandRefused;
      expect(e.rule).toBe("hsm-zeroize");
      expect(e.retryable).toBe(false);
      expect(e.message).toContain("hsm-x");
      expect(e.message).toContain("'hsm zer'");
      expect(e.message).toContain("zeroizes");
    }
  });
});

describe("command policy: allowed read-only and routine commands", () => {
  for (const [ctx, commands] of ALLOWED)
    for (const command of commands)
      it(`${ctx.shell} '${command}' is allowed`, () => {
        expect(checkCommand(command, ctx)).toMatchObject({ allowed: true });
      });

  it("a reboot passes only when declared and the device is known to be reboot-safe", () => {
    expect(
      checkCommand("sysconf appliance reboot", { ...sh, allowReboot: true, rebootUnsafe: false }).allowed,
    ).toBe(true);
    expect(
      checkCommand("sysconf appliance reboot", { ...sh, allowReboot: true, rebootUnsafe: true }).allowed,
    ).toBe(false);
    expect(checkCommand("sysconf appliance reboot", { ...sh, allowReboot: true }).allowed).toBe(false);
    expect(checkCommand("sysconf appliance reboot", { ...sh, rebootUnsafe: false }).allowed).toBe(false);
  });

  it("an ambiguous abbreviation is refused when any reading is refused", () => {
    const d = checkCommand("partition c -p x", sh); // create / clear / changePolicy
    expect(d.allowed).toBe(false);
  });
});

describe("command policy: login tokens", () => {
  const secret = new Secret("Policy-Test-SO-pw", "literal");
  const grant = { target: "hsm-x", command: "hsm login", role: "hsmSo", secret, attemptId: "a1" };

  it("passes a login with an unused token for this target and command", () => {
    const token = issueLoginToken(grant);
    expect(checkCommand("hsm login", { ...sh, token })).toEqual({
      allowed: true,
      canonical: "hsm login",
      login: true,
    });
    expect(checkCommand("hsm logi", { ...sh, token })).toMatchObject({ allowed: true });
  });

  it("refuses a used token, a token for another device, or for another command", () => {
    const used = issueLoginToken(grant);
    used.consume();
    expect(checkCommand("hsm login", { ...sh, token: used })).toMatchObject({
      allowed: false,
      rule: "login-token-used",
    });
    expect(() => used.consume()).toThrow(/already used/);
    const other = issueLoginToken({ ...grant, target: "hsm-y" });
    expect(checkCommand("hsm login", { ...sh, token: other })).toMatchObject({ rule: "login-token-target" });
    const audit = issueLoginToken({ ...grant, command: "audit login" });
    expect(checkCommand("hsm login", { ...sh, token: audit })).toMatchObject({ rule: "login-token-command" });
    expect(checkCommand("hsm show", { ...sh, token: issueLoginToken(grant) })).toMatchObject({
      rule: "login-token-command",
    });
  });

  it("refuses -force on a login even with a valid token, and leaves the token unused", () => {
    const token = issueLoginToken(grant);
    for (const command of ["hsm login -force", "hsm login -f", "hsm logi -forc"])
      expect(checkCommand(command, { ...sh, token })).toMatchObject({ allowed: false, rule: "no-force" });
    expect(token.used).toBe(false);
  });

  it("refuses an ambiguous login spelling even with a token (hsm log = login|logout)", () => {
    expect(checkCommand("hsm log", { ...sh, token: issueLoginToken(grant) })).toMatchObject({
      rule: "login-ambiguous",
    });
  });

  it("a token cannot be constructed outside the issuer", () => {
    const LoginTokenClass = issueLoginToken(grant).constructor as new (...a: unknown[]) => unknown;
    expect(() => new LoginTokenClass(Symbol("login-token-issuer"), grant)).toThrow(/only be issued/);
  });

  it("a token never prints its secret", () => {
    const token = issueLoginToken(grant);
    expect(JSON.stringify(token)).not.toContain("Policy-Test-SO-pw");
    expect(String(Object.values(token))).not.toContain("Policy-Test-SO-pw");
  });
});

describe("the vocabulary's classes and the policy agree", () => {
  it("every command the vocabulary classes destructive is refused, on every shell", () => {
    const destructive = VOCABULARY.filter((e) => e.class === "destructive");
    expect(destructive.length).toBeGreaterThan(30);
    for (const e of destructive) {
      const d = checkCommand(e.words, { shell: e.shell, target: "x" });
      expect(d.allowed, `${e.shell} '${e.words}'`).toBe(false);
    }
  });

  it("every login-class command needs a LoginToken", () => {
    for (const e of VOCABULARY.filter((x) => x.class === "login")) {
      const d = checkCommand(e.words, { shell: e.shell, target: "x" });
      expect(d, `${e.shell} '${e.words}'`).toMatchObject({ allowed: false, rule: "login-requires-token" });
    }
  });

  it("every command lunafleet reads a reply of (it has a parser) is allowed as typed", () => {
    for (const e of VOCABULARY.filter((x) => x.parser !== undefined && x.class !== "login")) {
      expect(checkCommand(e.words, { shell: e.shell, target: "x" }).allowed, `${e.shell} '${e.words}'`).toBe(
        true,
      );
    }
  });
});
