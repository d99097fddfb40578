// The twin (src/sim) and the parsers are written independently from the same format reference and share no code.
// This checks they agree: every output the twin renders for the demo fleet parses, and the values say what the twin's
// state says. A failure here means one of the two misreads the reference — settle it there, not by loosening a test.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseCommandOutput } from "../../parsers/index.ts";
import { parseFleet } from "../../src/config/load.ts";
import type { Fleet } from "../../src/config/schema.ts";
import { createApplianceState } from "../../src/sim/appliance/factory.ts";
import * as render from "../../src/sim/appliance/render.ts";
import { createClientHostTwin } from "../../src/sim/client/index.ts";
import type { ShellIO } from "../../src/sim/shell-session.ts";
import type { ApplianceState } from "../../src/sim/state.ts";

function demoFleet(): Fleet {
  const res = parseFleet(readFileSync(new URL("../../config/demo.yaml", import.meta.url), "utf8"));
  if (!res.ok) throw new Error("demo fleet does not parse");
  return res.fleet;
}

async function appliances(fleet: Fleet): Promise<Map<string, ApplianceState>> {
  const map = new Map<string, ApplianceState>();
  for (const dev of fleet.devices) map.set(dev.name, await createApplianceState(fleet, dev));
  return map;
}

/** What an operator would capture: echo line, the twin's output, footer. */
const lunashCapture = (host: string, command: string, body: string) =>
  `[${host}] lunash:>${command}\n${body}\n\nCommand Result : 0 (Success)\n[${host}] lunash:>`;

function parsed(shell: "lunash" | "lunacm" | "host", command: string, raw: string): Record<string, unknown> {
  const r = parseCommandOutput(shell, command, raw);
  if (!r.ok)
    throw new Error(`${command}: ${JSON.stringify("parseError" in r ? r.parseError.reason : r.deviceError)}`);
  return r.value as Record<string, unknown>;
}

describe("twin lunash output parses to the twin's state", async () => {
  const fleet = demoFleet();
  const states = await appliances(fleet);
  for (const [name, s] of states) {
    it(name, () => {
      const host = s.hostname;
      const show = parsed("lunash", "hsm show", lunashCapture(host, "hsm show", render.renderHsmShow(s)));
      expect(show).toMatchObject({ serial: s.serial, firmware: s.firmware });
      expect(show.zeroized).toBe(s.zeroized);
      expect(show.adminLoginAttemptsLeft).toBe(s.zeroized ? 0 : 3 - s.soFailures);
      expect((show.partitions as unknown[]).length).toBe(s.partitions.length);

      parsed("lunash", "hsm showPolicies", lunashCapture(host, "hsm showP", render.renderHsmShowPolicies(s)));
      const list = parsed(
        "lunash",
        "partition list",
        lunashCapture(host, "par list", render.renderPartitionList(s)),
      );
      expect((list.partitions as { serial: string }[]).map((p) => p.serial)).toEqual(
        s.partitions.map((p) => p.serial),
      );
      for (const p of s.partitions) {
        const cmd = `partition show -partition ${p.label}`;
        const ps = parsed(
          "lunash",
          "partition show",
          lunashCapture(host, cmd, render.renderPartitionShow(p)),
        );
        expect(ps).toMatchObject({ serial: p.serial, name: p.label });
        expect(ps.psoLoginAttemptsLeft).toBe(10 - p.failures.so);
        if (p.passwords.co !== undefined) expect(ps.coLoginAttemptsLeft).toBe(p.policy20 - p.failures.co);
        expect(ps.coLockedOut ?? false).toBe(p.coLockout !== "none");
      }
      parsed("lunash", "package list", lunashCapture(host, "package list", render.renderPackageList(s)));
      parsed("lunash", "user list", lunashCapture(host, "user list", render.renderUserList(s)));
      parsed("lunash", "client list", lunashCapture(host, "client list", render.renderClientList(s)));
      const ntls = parsed("lunash", "ntls show", lunashCapture(host, "ntls show", render.renderNtlsShow(s)));
      expect(ntls.boundDevice ?? ntls.ipAddress ?? ntls.hostname).not.toBeNull();
    });
  }
});

class Collect implements ShellIO {
  text = "";
  write(text: string): void {
    this.text += text;
  }
  close(): void {}
  destroy(): void {}
}

describe("twin lunacm and vtl output parses", async () => {
  const fleet = demoFleet();
  const states = await appliances(fleet);
  let session = 1;
  for (const client of fleet.clientHosts) {
    it(client.name, async () => {
      const twin = await createClientHostTwin(fleet, client, states);
      const run = (command: string) => {
        const io = new Collect();
        twin.exec(command, io, { user: "root", session: session++ });
        return `$ ${command}\n${io.text}`;
      };
      const slots = parsed("lunacm", "slot list", run("lunacm -q slot list"));
      expect((slots.slots as unknown[]).length).toBeGreaterThan(0);
      const groups = parsed("lunacm", "hagroup listgroups", run("lunacm -q hagroup listgroups"));
      const mine = fleet.haGroups.filter((g) => g.clientHost === client.name).map((g) => g.label);
      expect((groups.groups as { label: string }[]).map((g) => g.label).sort()).toEqual([...mine].sort());
      parsed("lunacm", "partition showinfo", run("lunacm -q partition showinfo"));
      parsed("lunacm", "role show", run("lunacm -q role show -name co"));
      parsed("host", "vtl listServers", run("vtl listServers"));
    });
  }
});

describe("twin lunacm with no HA group", () => {
  it("prints the one no-groups statement the parser reads as { groups: [] }", async () => {
    const fleet = { ...demoFleet(), haGroups: [] };
    const states = await appliances(fleet);
    const client = fleet.clientHosts[0]!;
    const twin = await createClientHostTwin(fleet, client, states);
    const io = new Collect();
    twin.exec("lunacm -q hagroup listgroups", io, { user: "root", session: 1 });
    expect(io.text).toContain("HA Group list is empty.");
    const groups = parsed("lunacm", "hagroup listgroups", `$ lunacm -q hagroup listgroups\n${io.text}`);
    expect(groups).toEqual({ groups: [] });
  });
});
