// The fleet file's identity section (src/config/identity-schema.ts): each mistake refused with its YAML path — one
// approval key under two names, the shipped demo keys outside a twin fleet, a malformed key, a subject listed for
// two principals, a CA for the identity provider outside a twin fleet.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { keyLineFingerprint } from "../../src/config/identity-schema.ts";
import { parseFleet } from "../../src/config/index.ts";

const keys = join(import.meta.dirname, "../../config/demo-keys");
const aliceDemo = readFileSync(join(keys, "alice.pub"), "utf8").trim();
const bobDemo = readFileSync(join(keys, "bob.pub"), "utf8").trim();

const fleet = (identity: string, twin = false) => `version: 1
twin: ${twin}
devices:
  - name: hsm-1
    host: 10.0.0.21
    hostKey: SHA256:Jr8cQ0xX7pE5rTq1mZk2N8vW3yB6uH9oL4dS0fG7aCa
    serial: "700123"
    credentials: { appliance: env:LUNA_SSH }
identity:
${identity}
`;

function issues(text: string) {
  const r = parseFleet(text);
  return r.ok ? [] : r.issues.map((i) => `${i.path}: ${i.message}`);
}

describe("identity section", () => {
  it("accepts principals with roles, subjects, OS accounts and keys (demo keys in a twin fleet)", () => {
    const text = fleet(
      `  oidc: { issuer: "https://login.example/t/v2.0", audience: api://lunafleet, principalClaim: preferred_username }
  roles: { operator: { appRoles: [LunaFleet.Operator] }, viewer: { groups: [g-1] } }
  principals:
    - { name: alice, roles: [approver], oidc: [alice@example.com], os: [alice], approvalKeys: ["${aliceDemo}"] }
    - { name: bob, roles: [approver], approvalKeys: ["${bobDemo}"] }`,
      true,
    );
    expect(issues(text)).toEqual([]);
  });

  const cases: [string, string, RegExp][] = [
    [
      "one key under two names",
      `  principals:
    - { name: alice, approvalKeys: ["${aliceDemo}"] }
    - { name: mallory, approvalKeys: ["${aliceDemo}"] }`,
      /identity\.principals\[1\]\.approvalKeys\[0\]: key SHA256:\S+ is already registered to 'alice'/,
    ],
    [
      "a shipped demo key in a production fleet",
      `  principals: [{ name: alice, approvalKeys: ["${aliceDemo}"] }]`,
      new RegExp(`${keyLineFingerprint(aliceDemo).replace(/[+/]/g, "\\$&")} is a lunafleet demo key`),
    ],
    [
      "a malformed key",
      `  principals: [{ name: alice, approvalKeys: ["ssh-ed25519 AAAAC3NzaC1yc2EAAAADAQAB"] }]`,
      /approvalKeys\[0\]: the base64 does not hold a ssh-ed25519 key/,
    ],
    [
      "one subject for two principals",
      `  principals: [{ name: a, oidc: [x@example.com] }, { name: b, oidc: [x@example.com] }]`,
      /principals\[1\]\.oidc\[0\]: this subject is already principal 'a'/,
    ],
    [
      "an HMAC algorithm for OIDC",
      `  oidc: { issuer: "https://login.example/t/v2.0", audience: x, algorithms: [HS256] }`,
      /identity\.oidc\.algorithms\[0\]/,
    ],
    [
      "a private identity-provider CA outside a twin fleet",
      `  oidc: { issuer: "https://login.example/t/v2.0", audience: x, caFile: /etc/idp-ca.pem }`,
      /identity\.oidc\.caFile: a private CA for the identity provider is for twin fleets only/,
    ],
    ["an unknown role", `  localRoles: [root]`, /identity\.localRoles\[0\]/],
  ];
  for (const [what, yaml, re] of cases)
    it(`refuses ${what}`, () => {
      const found = issues(fleet(yaml));
      expect(
        found.some((i) => re.test(i)),
        found.join("\n"),
      ).toBe(true);
    });
});
