// The daemon's evidence signing key (src/evidence/signing.ts): created ed25519 and 0600 in the data dir on first use
// (kept across restarts, tightened back to 0600 if loosened), or taken from a file the operator gives — refused when
// others may read it or when it is not ed25519; either way the public half is published beside the data dir's key.
// A seal made by any other key is found by the verifier as an unknown key, and a forged signature as a bad one.
import { generateKeyPairSync } from "node:crypto";
import { chmodSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { EvidenceLog } from "../../src/evidence/index.ts";
import {
  checkEvidenceSignatures,
  loadOrCreateSigner,
  localTrustedKeys,
  sealFinal,
  signingKeyPaths,
  trustedKeys,
} from "../../src/evidence/signing.ts";
import { withRedis } from "../helpers/redis.ts";
import { tempDir } from "../helpers/ssh-signing.ts";

const redis = await withRedis();
const dirs: string[] = [];
const dir = () => {
  const d = tempDir("lf-evkey-");
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const mode = (path: string) => statSync(path).mode & 0o777;

describe("the evidence signing key", () => {
  it("is created ed25519 and 0600 in a 0700 data dir, kept across restarts, tightened back to 0600", () => {
    const dataDir = join(dir(), "data");
    const first = loadOrCreateSigner(dataDir);
    const paths = signingKeyPaths(dataDir);
    expect(mode(dataDir)).toBe(0o700);
    expect(mode(paths.key)).toBe(0o600);
    expect(readFileSync(paths.key, "utf8")).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(readFileSync(paths.pub, "utf8")).toBe(first.publicKeyPem);
    expect(first.keyId).toMatch(/^[0-9a-f]{16}$/);

    chmodSync(paths.key, 0o644);
    const again = loadOrCreateSigner(dataDir);
    expect(again.keyId).toBe(first.keyId);
    expect(mode(paths.key)).toBe(0o600);
  });

  it("from a file: used as given and its public half published; refused if others may read it or if not ed25519", () => {
    const d = dir();
    const dataDir = join(d, "data");
    const keyFile = join(d, "hsm-evidence.pem");
    const { privateKey, publicKey } = generateKeyPairSync("ed25519");
    writeFileSync(keyFile, privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
    const signer = loadOrCreateSigner(dataDir, keyFile);
    expect(signer.publicKeyPem).toBe(publicKey.export({ type: "spki", format: "pem" }));
    expect(readFileSync(signingKeyPaths(dataDir).pub, "utf8")).toBe(signer.publicKeyPem);
    // No key of its own is made in the data dir when one is given.
    expect(() => statSync(signingKeyPaths(dataDir).key)).toThrow(/ENOENT/);

    chmodSync(keyFile, 0o640);
    expect(() => loadOrCreateSigner(dataDir, keyFile)).toThrow(
      `evidence signing key ${keyFile} is readable by others (mode 0640): chmod 600 it`,
    );
    const rsaFile = join(d, "rsa.pem");
    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
    writeFileSync(rsaFile, rsa.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
    expect(() => loadOrCreateSigner(dataDir, rsaFile)).toThrow("the evidence signing key must be ed25519");
  });

  it("a seal by another key is an unknown key; a signature from another log is a bad one", async () => {
    const dataDir = join(dir(), "data");
    const daemon = loadOrCreateSigner(dataDir);
    const intruder = loadOrCreateSigner(join(dir(), "data"));
    const sealedBy = async (jobId: string, signer: typeof daemon) => {
      const log = await EvidenceLog.open(redis.client(), redis.dataDir, jobId);
      await log.append("requested", { runbook: "tcp-check", target: "device:hsm-a1" }, "alice");
      await log.append("result", { ok: true });
      await sealFinal(log, signer, redis.client(), "succeeded");
      return log.records();
    };
    const trusted = await localTrustedKeys(dataDir);
    expect([...trusted.keys()]).toEqual([daemon.keyId]);

    const good = await sealedBy(`evkey-good-${process.pid}`, daemon);
    expect(checkEvidenceSignatures(good, trusted)).toMatchObject({
      ok: true,
      signatures: 1,
      signedBy: [daemon.keyId],
      end: { seal: "final", outcome: "succeeded" },
    });

    const foreign = await sealedBy(`evkey-foreign-${process.pid}`, intruder);
    expect(checkEvidenceSignatures(foreign, trusted)).toEqual({
      ok: false,
      index: 2,
      problem: "unknown key",
      detail: expect.stringContaining(`signed by key ${intruder.keyId}, not a trusted one`),
    });
    // Trusting the intruder's key too (its public file handed in) makes it verify: the key decides, nothing else.
    expect(
      checkEvidenceSignatures(foreign, trustedKeys([daemon.publicKeyPem, intruder.publicKeyPem])).ok,
    ).toBe(true);

    // The daemon's own signature, but over another log's head: the message names the job and head, so it fails.
    const other = await sealedBy(`evkey-other-${process.pid}`, daemon);
    const moved = structuredClone(good);
    (moved[2]!.data as { signature: string }).signature = (other[2]!.data as { signature: string }).signature;
    expect(checkEvidenceSignatures(moved, trusted)).toMatchObject({
      ok: false,
      index: 2,
      problem: "bad signature",
    });
  });
});
