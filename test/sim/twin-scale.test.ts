// The launcher at scale: hundreds of appliances in one process, across more than one loopback /24 block, started
// concurrently and reachable at once (the benchmark runs 1,000; this keeps CI quick with 300).
import { Client } from "ssh2";
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { parseFleet } from "../../src/config/index.ts";
import { allocateLoopbackBlock } from "../../src/sim/loopback.ts";
import { startTwin } from "../../src/sim/twin.ts";

function bigFleet(n: number) {
  const devices = Array.from({ length: n }, (_, i) => ({
    name: `hsm-${i}`,
    host: `10.9.${i >> 8}.${i & 255}`,
    port: 2222,
    serial: String(900000 + i),
    credentials: { appliance: `Appliance-${i}-pw`, hsmSo: "HsmSo-secret-1" },
    partitions: [{ label: "par", serial: String(1900000000000 + i) }],
  }));
  const r = parseFleet(stringify({ version: 1, twin: true, devices }));
  if (!r.ok) throw new Error(JSON.stringify(r.issues.slice(0, 3)));
  return r.fleet;
}

function exec(host: string, port: number, password: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = new Client();
    c.on("ready", () =>
      c.exec(command, (err, stream) => {
        if (err) return reject(err);
        let out = "";
        stream.on("data", (d: Buffer) => (out += d.toString()));
        stream.on("close", () => {
          c.end();
          resolve(out);
        });
      }),
    )
      .on("error", reject)
      .connect({ host, port, username: "admin", password, readyTimeout: 5000 });
  });
}

describe("startTwin at scale", () => {
  it("starts 300 appliances over two loopback blocks, each answering on its own address", async () => {
    // How fast is a benchmark figure (npm run bench), not an assertion: a wall-clock bound fails on a loaded machine.
    const twin = await startTwin(bigFleet(300), { rebase: true });
    try {
      const addrs = [...twin.appliances.values()].map((a) => a.address);
      expect(new Set(addrs).size).toBe(300);
      const blocks = new Set(addrs.map((a) => a.split(".").slice(0, 3).join(".")));
      expect(blocks.size).toBe(2);
      const fps = new Set([...twin.appliances.values()].map((a) => a.hostKeyFingerprint));
      expect(fps.size).toBe(300);
      // The first, the last of the first block, the first of the second block, and the last.
      for (const i of [0, 253, 254, 299]) {
        const a = twin.appliances.get(`hsm-${i}`);
        if (!a) throw new Error(`no hsm-${i}`);
        const out = await exec(a.address, a.sshPort, `Appliance-${i}-pw`, "hsm show");
        expect(out).toContain(`Serial #:                           ${900000 + i}`);
      }
    } finally {
      await twin.stop();
    }
  });

  it("hands out distinct blocks to concurrent twins in one process", () => {
    const a = allocateLoopbackBlock(600);
    const b = allocateLoopbackBlock(10);
    try {
      expect(a.count).toBe(3);
      const aBlocks = [0, 254, 508].map((n) => a.address(n).split(".").slice(0, 3).join("."));
      expect(new Set(aBlocks).size).toBe(3);
      expect(aBlocks).not.toContain(b.address(0).split(".").slice(0, 3).join("."));
      expect(() => a.address(762)).toThrow(RangeError);
    } finally {
      a.release();
      b.release();
    }
  });
});
