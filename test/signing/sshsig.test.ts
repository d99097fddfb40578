// SSH signature verification against real OpenSSH, both ways: what `ssh-keygen -Y sign` writes (key file, ssh-agent;
// ed25519, ECDSA P-256, RSA) our verifier accepts, and refuses when anything is off; FIDO `sk-` signatures (built by a
// software authenticator: no security key on this machine) are accepted by real `ssh-keygen -Y verify` and by ours;
// ours also refuses one made without the user-presence flag.
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseSshPublicKey } from "../../src/signing/ssh-key.ts";
import { parseSshSignature, verifySshSignature } from "../../src/signing/sshsig.ts";
import { APPROVAL_NAMESPACE } from "../../src/signing/statement.ts";
import {
  generateSshKey,
  SoftwareSecurityKey,
  sshKeygenSign,
  sshKeygenVerify,
  startSshAgent,
  tempDir,
} from "../helpers/ssh-signing.ts";

const dir = tempDir();
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const MESSAGE = "lunafleet-approval v1\nkind: job\ndecision: approve\n";

describe("ssh-keygen -Y sign, verified in-process", () => {
  for (const type of ["ed25519", "ecdsa", "rsa"] as const) {
    it(`${type}: accepts the signature over the message, refuses another message, namespace or key`, () => {
      const k = generateSshKey(dir, `k-${type}`, type);
      const other = generateSshKey(dir, `other-${type}`, type);
      const key = parseSshPublicKey(k.publicLine);
      const sig = sshKeygenSign(k.path, MESSAGE);
      expect(parseSshSignature(sig)).toMatchObject({
        namespace: APPROVAL_NAMESPACE,
        fingerprint: key.fingerprint,
      });
      expect(verifySshSignature(sig, MESSAGE, APPROVAL_NAMESPACE, key.blob)).toEqual({
        ok: true,
        fingerprint: key.fingerprint,
        keyType: key.type,
      });
      const changed = verifySshSignature(sig, `${MESSAGE}x`, APPROVAL_NAMESPACE, key.blob);
      expect(changed).toMatchObject({ ok: false, reason: expect.stringContaining("does not verify") });
      expect(verifySshSignature(sig, MESSAGE, "file", key.blob)).toMatchObject({
        ok: false,
        reason: expect.stringContaining("namespace"),
      });
      const otherKey = parseSshPublicKey(other.publicLine);
      expect(verifySshSignature(sig, MESSAGE, APPROVAL_NAMESPACE, otherKey.blob)).toMatchObject({
        ok: false,
        reason: expect.stringContaining("not the registered"),
      });
    });
  }

  it("a signature made through ssh-agent (public key file + SSH_AUTH_SOCK) verifies the same", () => {
    const k = generateSshKey(dir, "agent-key");
    const agent = startSshAgent(dir, k.path);
    try {
      const pubOnly = join(dir, "agent-only.pub");
      writeFileSync(pubOnly, `${k.publicLine}\n`);
      const sig = sshKeygenSign(pubOnly, MESSAGE, agent.env);
      expect(
        verifySshSignature(sig, MESSAGE, APPROVAL_NAMESPACE, parseSshPublicKey(k.publicLine).blob).ok,
      ).toBe(true);
    } finally {
      agent.stop();
    }
  });

  it("a flipped byte in the signature or a truncated armor is refused, never thrown", () => {
    const k = generateSshKey(dir, "flip");
    const sig = sshKeygenSign(k.path, MESSAGE);
    const body = sig.split("\n");
    const line = body[2]!;
    body[2] = `${line.slice(0, 10)}${line[10] === "A" ? "B" : "A"}${line.slice(11)}`;
    const blob = parseSshPublicKey(k.publicLine).blob;
    expect(verifySshSignature(body.join("\n"), MESSAGE, APPROVAL_NAMESPACE, blob).ok).toBe(false);
    expect(verifySshSignature(sig.slice(0, 80), MESSAGE, APPROVAL_NAMESPACE, blob)).toMatchObject({
      ok: false,
    });
    expect(verifySshSignature("not a signature", MESSAGE, APPROVAL_NAMESPACE, blob)).toMatchObject({
      ok: false,
    });
  });
});

describe("FIDO security keys (sk-ssh-ed25519, sk-ecdsa-sha2-nistp256)", () => {
  for (const kind of ["ed25519", "ecdsa"] as const) {
    it(`${kind}-sk: real ssh-keygen -Y verify and our verifier both accept a touched signature`, () => {
      const sk = new SoftwareSecurityKey(kind);
      const key = parseSshPublicKey(sk.publicLine());
      expect(key.securityKey).toBe(true);
      expect(key.application).toBe("ssh:");
      const sig = sk.signSshsig(MESSAGE);
      const allowed = `alice namespaces="${APPROVAL_NAMESPACE}" ${sk.publicLine()}\n`;
      expect(sshKeygenVerify(allowed, "alice", sig, MESSAGE)).toBe(true);
      expect(verifySshSignature(sig, MESSAGE, APPROVAL_NAMESPACE, key.blob)).toMatchObject({
        ok: true,
        counter: 1,
      });
      // Same signature, other message: both refuse.
      expect(sshKeygenVerify(allowed, "alice", sig, `${MESSAGE}x`)).toBe(false);
      expect(verifySshSignature(sig, `${MESSAGE}x`, APPROVAL_NAMESPACE, key.blob).ok).toBe(false);
    });

    it(`${kind}-sk: a signature without user presence (no touch) is refused by policy`, () => {
      const sk = new SoftwareSecurityKey(kind);
      const sig = sk.signSshsig(MESSAGE, { touch: false });
      const allowed = `alice namespaces="${APPROVAL_NAMESPACE}" ${sk.publicLine()}\n`;
      // OpenSSH 9.2's ssh-keygen -Y verify accepts it (the signature itself is valid; it only reports the flags):
      // the refusal below is ours, for the missing touch alone.
      expect(sshKeygenVerify(allowed, "alice", sig, MESSAGE)).toBe(true);
      expect(
        verifySshSignature(sig, MESSAGE, APPROVAL_NAMESPACE, parseSshPublicKey(sk.publicLine()).blob),
      ).toEqual({
        ok: false,
        reason: "the security key signed without user presence (no touch)",
      });
    });
  }
});

describe("public key lines", () => {
  it("fingerprints like ssh-keygen -l and refuses what it does not accept", () => {
    const k = generateSshKey(dir, "fp");
    const key = parseSshPublicKey(k.publicLine);
    expect(key.fingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    expect(key.comment).toBe("fp@test");
    expect(() => parseSshPublicKey("ssh-dss AAAAB3NzaC1kc3MAAACBAP")).toThrow(/not accepted/);
    const [, b64] = k.publicLine.split(" ");
    expect(() => parseSshPublicKey(`ecdsa-sha2-nistp256 ${b64}`)).toThrow(/inside is 'ssh-ed25519'/);
  });
});
