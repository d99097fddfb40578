// Real `ssh-keygen` for the signed-approval tests: key generation, `-Y sign` (key file or ssh-agent) and `-Y verify`,
// plus a software stand-in for a FIDO authenticator (no security key exists on a CI machine): it produces the exact
// `sk-ssh-ed25519@openssh.com` / `sk-ecdsa-sha2-nistp256@openssh.com` public keys and SSHSIG blobs a YubiKey would,
// which real `ssh-keygen -Y verify` then checks; so the format is proven by OpenSSH, not by our own verifier.
import { execFileSync, spawnSync } from "node:child_process";
import { createHash, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sshString, sshUint32 } from "../../src/signing/ssh-wire.ts";
import { armorSshSignature, sshsigSignedData } from "../../src/signing/sshsig.ts";
import { APPROVAL_NAMESPACE } from "../../src/signing/statement.ts";

export const DEMO_KEYS_DIR = join(import.meta.dirname, "../../config/demo-keys");

export interface KeyPairFiles {
  /** Private key file (0600). */
  path: string;
  /** The public key line. */
  publicLine: string;
}

export function tempDir(prefix = "lf-sig-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function generateSshKey(
  dir: string,
  name: string,
  type: "ed25519" | "ecdsa" | "rsa" = "ed25519",
): KeyPairFiles {
  const path = join(dir, name);
  const extra = type === "ecdsa" ? ["-b", "256"] : type === "rsa" ? ["-b", "3072"] : [];
  execFileSync("ssh-keygen", ["-q", "-t", type, ...extra, "-N", "", "-C", `${name}@test`, "-f", path]);
  return { path, publicLine: readFileSync(`${path}.pub`, "utf8").trim() };
}

/** A copy of a shipped demo key with 0600 (ssh-keygen refuses a private key others can read). */
export function demoKey(dir: string, name: "alice" | "bob" | "carol"): KeyPairFiles {
  const path = join(dir, `demo-${name}`);
  copyFileSync(join(DEMO_KEYS_DIR, name), path);
  chmodSync(path, 0o600);
  return { path, publicLine: readFileSync(join(DEMO_KEYS_DIR, `${name}.pub`), "utf8").trim() };
}

/** `ssh-keygen -Y sign -n lunafleet-approval -f <key>` over `message`; returns the armored signature. */
export function sshKeygenSign(
  keyPath: string,
  message: string,
  env: NodeJS.ProcessEnv = process.env,
): string {
  const r = spawnSync("ssh-keygen", ["-Y", "sign", "-n", APPROVAL_NAMESPACE, "-f", keyPath, "-q"], {
    input: message,
    env,
  });
  if (r.status !== 0) throw new Error(`ssh-keygen -Y sign failed: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

/** `ssh-keygen -Y verify`: true when OpenSSH accepts `signature` over `message` by `identity` in allowed_signers. */
export function sshKeygenVerify(
  allowedSigners: string,
  identity: string,
  signature: string,
  message: string,
): boolean {
  const dir = tempDir("lf-verify-");
  writeFileSync(join(dir, "allowed_signers"), allowedSigners);
  writeFileSync(join(dir, "sig"), signature);
  const r = spawnSync(
    "ssh-keygen",
    [
      "-Y",
      "verify",
      "-f",
      join(dir, "allowed_signers"),
      "-I",
      identity,
      "-n",
      APPROVAL_NAMESPACE,
      "-s",
      join(dir, "sig"),
    ],
    { input: message },
  );
  return r.status === 0;
}

/** A software FIDO authenticator holding one key (ed25519-sk or ecdsa-sk), application "ssh:". */
export class SoftwareSecurityKey {
  readonly privateKey: KeyObject;
  readonly publicBlob: Buffer;
  readonly type: "sk-ssh-ed25519@openssh.com" | "sk-ecdsa-sha2-nistp256@openssh.com";
  counter = 0;

  constructor(
    kind: "ed25519" | "ecdsa",
    readonly application = "ssh:",
  ) {
    if (kind === "ed25519") {
      const { privateKey, publicKey } = generateKeyPairSync("ed25519");
      this.privateKey = privateKey;
      this.type = "sk-ssh-ed25519@openssh.com";
      const x = Buffer.from(publicKey.export({ format: "jwk" }).x!, "base64url");
      this.publicBlob = Buffer.concat([sshString(this.type), sshString(x), sshString(application)]);
    } else {
      const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
      this.privateKey = privateKey;
      this.type = "sk-ecdsa-sha2-nistp256@openssh.com";
      const jwk = publicKey.export({ format: "jwk" });
      const q = Buffer.concat([
        Buffer.from([4]),
        Buffer.from(jwk.x!, "base64url"),
        Buffer.from(jwk.y!, "base64url"),
      ]);
      this.publicBlob = Buffer.concat([
        sshString(this.type),
        sshString("nistp256"),
        sshString(q),
        sshString(application),
      ]);
    }
  }

  publicLine(comment = "security-key@test"): string {
    return `${this.type} ${this.publicBlob.toString("base64")} ${comment}`;
  }

  /** Sign like `ssh-keygen -Y sign` with this key plugged in; `touch: false` omits the user-presence flag. */
  signSshsig(message: string, opts: { touch?: boolean; namespace?: string } = {}): string {
    const namespace = opts.namespace ?? APPROVAL_NAMESPACE;
    const data = sshsigSignedData(Buffer.from(message, "utf8"), namespace, "sha512");
    const flags = opts.touch === false ? 0x00 : 0x01;
    this.counter += 1;
    const signed = Buffer.concat([
      createHash("sha256").update(this.application).digest(),
      Buffer.from([flags]),
      sshUint32(this.counter),
      createHash("sha256").update(data).digest(),
    ]);
    let sig: Buffer;
    if (this.type === "sk-ssh-ed25519@openssh.com") sig = sign(null, signed, this.privateKey);
    else {
      const raw = sign("sha256", signed, { key: this.privateKey, dsaEncoding: "ieee-p1363" });
      sig = Buffer.concat([sshString(mpint(raw.subarray(0, 32))), sshString(mpint(raw.subarray(32)))]);
    }
    const inner = Buffer.concat([
      sshString(this.type),
      sshString(sig),
      Buffer.from([flags]),
      sshUint32(this.counter),
    ]);
    const blob = Buffer.concat([
      Buffer.from("SSHSIG"),
      sshUint32(1),
      sshString(this.publicBlob),
      sshString(namespace),
      sshString(""),
      sshString("sha512"),
      sshString(inner),
    ]);
    return armorSshSignature(blob);
  }
}

function mpint(v: Buffer): Buffer {
  let b = v;
  while (b.length > 1 && b[0] === 0 && (b[1]! & 0x80) === 0) b = b.subarray(1);
  return (b[0]! & 0x80) !== 0 ? Buffer.concat([Buffer.from([0]), b]) : b;
}

/** An ssh-agent of our own (killed by the returned stop), with `keyPath` added. */
export function startSshAgent(dir: string, keyPath: string): { env: NodeJS.ProcessEnv; stop(): void } {
  const sock = join(dir, "agent.sock");
  const out = execFileSync("ssh-agent", ["-a", sock, "-s"]).toString();
  const pid = Number(/SSH_AGENT_PID=(\d+)/.exec(out)?.[1]);
  const env = { ...process.env, SSH_AUTH_SOCK: sock };
  execFileSync("ssh-add", ["-q", keyPath], { env, stdio: "ignore" });
  return {
    env,
    stop() {
      try {
        process.kill(pid);
      } catch {
        // already gone
      }
    },
  };
}

// ---- signed approvals in tests that drive the approval store directly ----

/** The shipped demo approvers (twin fleets only), as the fleet file's identity principals. */
export function demoApprovers(): {
  name: string;
  roles: ("approver" | "guard-admin")[];
  oidc: string[];
  os: string[];
  approvalKeys: string[];
}[] {
  return (["alice", "bob", "carol"] as const).map((name) => ({
    name,
    roles: name === "carol" ? ["approver", "guard-admin"] : ["approver"],
    oidc: [],
    os: [],
    approvalKeys: [readFileSync(join(DEMO_KEYS_DIR, `${name}.pub`), "utf8").trim()],
  }));
}

/** A twin fleet with the demo approvers registered (what config/demo.yaml has). */
export function withDemoApprovers<F extends { identity: { principals: unknown[] } }>(fleet: F): F {
  return { ...fleet, identity: { ...fleet.identity, principals: demoApprovers() } };
}

const demoKeyDir = mkdtempSync(join(tmpdir(), "lf-demokeys-"));

/**
 * `who` approves job `jobId` as `lunafleet approve --key config/demo-keys/<who>` does: read the request, sign its
 * statement with real ssh-keygen, submit it through approve() with the fleet's verifier.
 */
export async function signedApprove(
  redis: import("../../src/redis/client.ts").RedisClient,
  jobId: string,
  who: "alice" | "bob" | "carol",
  fleet: Parameters<typeof import("../../src/coord/signed-approvals.ts").sshApprovalVerifier>[0],
  opts: {
    evidence?: import("../../src/coord/approvals.ts").ApprovalEvidence;
    submittedBy?: string;
    /** What the approver typed as --confirm (default: the serial). */
    confirmation?: string;
  } = {},
) {
  const { approvalState, approvalStatement, approve } = await import("../../src/coord/approvals.ts");
  const { signableStatement, sshApprovalVerifier } = await import("../../src/coord/signed-approvals.ts");
  const { parseSshSignature } = await import("../../src/signing/sshsig.ts");
  const state = await approvalState(redis, jobId);
  // No request: the store itself refuses (NoApprovalRequest), as it does for the CLI.
  if (!state)
    return approve(
      redis,
      jobId,
      { principal: who, confirmation: "" },
      { verifier: sshApprovalVerifier(fleet) },
    );
  const statement = signableStatement(approvalStatement(state));
  const signature = sshKeygenSign(demoKey(demoKeyDir, who).path, statement);
  return approve(
    redis,
    jobId,
    {
      principal: who,
      confirmation: opts.confirmation ?? state.serial,
      proof: {
        method: "sshsig",
        keyFingerprint: parseSshSignature(signature).fingerprint,
        statement,
        signature,
        submittedBy: opts.submittedBy ?? who,
      },
    },
    { verifier: sshApprovalVerifier(fleet), ...(opts.evidence ? { evidence: opts.evidence } : {}) },
  );
}
