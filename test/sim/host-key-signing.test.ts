// The twin signs handshakes with a KeyObject parsed once (signingHostKey) instead of ssh2's PEM-per-signature path.
// Ed25519 signatures are deterministic, so the fast path must produce byte-identical signatures to ssh2's own.
import ssh2 from "ssh2";
import { describe, expect, it } from "vitest";
import { generateHostKey, signingHostKey } from "../../src/sim/ssh-server.ts";

describe("signingHostKey", () => {
  it("signs exactly as ssh2 does, and the signature verifies with the public key", () => {
    const { privateKey } = generateHostKey();
    const fast = signingHostKey(privateKey);
    const parsed = ssh2.utils.parseKey(privateKey);
    const reference = Array.isArray(parsed) ? parsed[0] : parsed;
    if (!reference || reference instanceof Error) throw new Error("reference key does not parse");
    for (const data of [Buffer.from("exchange hash"), Buffer.alloc(32, 7), Buffer.alloc(0)]) {
      const sig = fast.sign(data);
      expect(sig).toBeInstanceOf(Buffer);
      expect(sig).toEqual(reference.sign(data));
      expect(reference.verify(data, sig as Buffer)).toBe(true);
      expect(reference.verify(Buffer.concat([data, Buffer.from("x")]), sig as Buffer)).toBe(false);
    }
    expect(fast.getPublicSSH()).toEqual(reference.getPublicSSH());
  });
});
