// Signing an approval statement from the CLI with real OpenSSH: `ssh-keygen -Y sign -n lunafleet-approval -f <key>`.
// The key is a private key file (ed25519, ECDSA, RSA, or a FIDO `-sk` key handle: the security key asks for a touch),
// or a public key file whose private half is in the ssh agent (SSH_AUTH_SOCK). The statement goes in on stdin; the
// armored signature comes back; nothing is written to disk.
import { spawnSync } from "node:child_process";
import { parseSshSignature } from "../signing/sshsig.ts";
import { APPROVAL_NAMESPACE } from "../signing/statement.ts";

class SigningFailed extends Error {
  override name = "SigningFailed";
}

export function signStatement(
  keyPath: string,
  statement: string,
): { signature: string; keyFingerprint: string } {
  const r = spawnSync("ssh-keygen", ["-Y", "sign", "-n", APPROVAL_NAMESPACE, "-f", keyPath, "-q"], {
    input: statement,
    // stderr inherited: a FIDO key prints "Confirm user presence for key …" there, and ssh-keygen may ask for a
    // passphrase on the terminal.
    stdio: ["pipe", "pipe", "inherit"],
    timeout: 120_000,
  });
  if (r.error) throw new SigningFailed(`ssh-keygen: ${r.error.message}`);
  if (r.status !== 0) throw new SigningFailed(`ssh-keygen -Y sign with ${keyPath} failed (exit ${r.status})`);
  const signature = r.stdout.toString();
  return { signature, keyFingerprint: parseSshSignature(signature).fingerprint };
}
