// The Crypto Officer lockout of a client host's lunacm, driven over real SSH the way an operator (or a script gone
// wrong) would: ssh2 client, interactive shell, `lunacm`, `slot set`, `role login -name co` with the password typed
// at the prompt. Ten wrong passwords with HSM policy 15 = 0 lock the CO out for good; with policy 15 = 1 the lockout
// is not permanent. Nothing here calls the interpreter directly.
import { Client, type ClientChannel } from "ssh2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseFleet } from "../../src/config/load.ts";
import { startTwin, type Twin } from "../../src/sim/twin.ts";

const YAML = `
version: 1
twin: true
devices:
  - name: hsm-l0
    host: 127.0.0.1
    port: 2222
    serial: "700701"
    credentials: { appliance: "Appliance-L0-pw", hsmSo: "HsmSo-L0-secret" }
    partitions: [{ label: par-l0, serial: "1700701000001", credentials: { co: "CryptoOff-L0-secret" } }]
    sim: { policy15: 0 }
  - name: hsm-l1
    host: 127.0.0.2
    port: 2222
    serial: "700702"
    credentials: { appliance: "Appliance-L1-pw", hsmSo: "HsmSo-L1-secret" }
    partitions: [{ label: par-l1, serial: "1700702000001", credentials: { co: "CryptoOff-L1-secret" } }]
    sim: { policy15: 1 }
clientHosts:
  - name: client-l
    host: 127.0.0.3
    port: 2222
    clientName: client-l
    credentials: { ssh: "ClientHost-L-pw" }
    assignments: [{ device: hsm-l0, partitions: [par-l0] }, { device: hsm-l1, partitions: [par-l1] }]
`;
const WRONG = "Not-The-CO-Password-7";
const PROMPT = /lunacm:>\s*$/;
const PASSWORD_PROMPT = /Enter the password:\s*$/;

let twin: Twin;

beforeAll(async () => {
  const parsed = parseFleet(YAML);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
  twin = await startTwin(parsed.fleet, { rebase: true });
}, 30_000);

afterAll(async () => {
  await twin?.stop();
});

/** One interactive SSH shell on the client host, with what came back since each line sent. */
class SshShell {
  #out = "";
  private constructor(
    readonly client: Client,
    readonly stream: ClientChannel,
  ) {
    stream.on("data", (d: Buffer) => {
      this.#out += d.toString("utf8");
    });
  }

  static async open(name: string): Promise<SshShell> {
    const cred = twin.credentials(name);
    const client = new Client();
    await new Promise<void>((resolve, reject) => {
      client
        .on("ready", () => resolve())
        .on("error", reject)
        .connect({
          host: cred.address,
          port: cred.port,
          username: cred.user,
          password: cred.password?.reveal(),
          readyTimeout: 5000,
          hostHash: "sha256",
          hostVerifier: (hex: string) =>
            `SHA256:${Buffer.from(hex, "hex").toString("base64").replace(/=+$/, "")}` ===
            cred.hostKeyFingerprint,
        });
    });
    const stream = await new Promise<ClientChannel>((res, rej) =>
      client.shell({ term: "vt100", cols: 200 }, (e, s) => (e ? rej(e) : res(s))),
    );
    const shell = new SshShell(client, stream);
    await shell.#until(/# $/, 0);
    return shell;
  }

  async #until(re: RegExp, from: number, ms = 5000): Promise<string> {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      const part = this.#out.slice(from).replace(/\r/g, "");
      if (re.test(part)) return part;
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error(`timed out waiting for ${re} in:\n${this.#out.slice(from)}`);
  }

  /** Type a line; wait for `re` (the lunacm prompt by default). */
  send(line: string, re: RegExp = PROMPT): Promise<string> {
    const from = this.#out.length;
    this.stream.write(`${line}\r`);
    return this.#until(re, from);
  }

  /** `role login -name co`, the password typed at lunacm's prompt (never on the command line). */
  async loginCo(password: string): Promise<string> {
    await this.send("role login -name co", PASSWORD_PROMPT);
    return this.send(password);
  }

  close(): void {
    this.client.end();
  }
}

/** The slot lunacm shows for a partition serial, from `slot list` (read over the same shell). */
async function slotOf(shell: SshShell, serial: string): Promise<number> {
  const listing = await shell.send("slot list");
  for (const block of listing.split(/\n\s*\n/)) {
    const id = /Slot Id ->\s*(\d+)/.exec(block)?.[1];
    if (id !== undefined && block.includes(serial)) return Number(id);
  }
  throw new Error(`no slot for ${serial} in:\n${listing}`);
}

const partitionState = (device: string) => twin.appliances.get(device)!.state.partitions[0]!;

describe("CO lockout over SSH (client host lunacm)", () => {
  it("HSM policy 15 = 0: ten wrong passwords lock the CO out permanently; the right password is refused after", async () => {
    const shell = await SshShell.open("client-l");
    try {
      await shell.send("lunacm");
      await shell.send(`slot set -slot ${await slotOf(shell, "1700701000001")}`);
      for (let i = 1; i <= 9; i++) {
        expect(await shell.loginCo(WRONG)).toContain("Command Result : 0xa0 (CKR_PIN_INCORRECT)");
        expect(await shell.send("role show -name co")).toContain(`Login Attempts Left:    ${10 - i}`);
      }
      expect(await shell.loginCo(WRONG)).toContain("Command Result : 0xa4 (CKR_PIN_LOCKED)");
      const right = await shell.loginCo("CryptoOff-L0-secret");
      expect(right).toContain("Command Result : 0xa4 (CKR_PIN_LOCKED)");
      expect(right).not.toContain("CryptoOff-L0-secret"); // typed at a prompt that does not echo
      const show = await shell.send("role show -name co");
      expect(show).toContain("Status:                 Locked out");
      expect(show).toContain("Permanent Lockout:      yes");
      expect(show).toContain("Login Attempts Left:    0");
      expect(partitionState("hsm-l0").coLockout).toBe("permanent");
      expect(partitionState("hsm-l0").loggedIn).toBeUndefined();
    } finally {
      shell.close();
    }
    // For good: a new SSH session (a new lunacm) is refused the right password too.
    const again = await SshShell.open("client-l");
    try {
      await again.send("lunacm");
      await again.send(`slot set -slot ${await slotOf(again, "1700701000001")}`);
      expect(await again.loginCo("CryptoOff-L0-secret")).toContain("0xa4 (CKR_PIN_LOCKED)");
      expect(await again.send("role show -name co")).toContain("Permanent Lockout:      yes");
    } finally {
      again.close();
    }
  }, 30_000);

  it("HSM policy 15 = 1: ten wrong passwords lock the CO out, but not permanently", async () => {
    const shell = await SshShell.open("client-l");
    try {
      await shell.send("lunacm");
      await shell.send(`slot set -slot ${await slotOf(shell, "1700702000001")}`);
      for (let i = 1; i <= 10; i++) await shell.loginCo(WRONG);
      const show = await shell.send("role show -name co");
      expect(show).toContain("Status:                 Locked out");
      expect(show).toContain("Permanent Lockout:      no");
      expect(await shell.loginCo("CryptoOff-L1-secret")).toContain("0xa4 (CKR_PIN_LOCKED)");
      expect(partitionState("hsm-l1").coLockout).toBe("locked");
      // Every one of the ten typed passwords was counted on this partition.
      expect(partitionState("hsm-l1").failures.co).toBe(10);
    } finally {
      shell.close();
    }
  }, 30_000);
});
