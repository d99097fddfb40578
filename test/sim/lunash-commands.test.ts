// The lunash command set of the twin: abbreviations, errors, clients, partitions, packages, exec mode and faults.
import { describe, expect, it } from "vitest";
import { parseFleet } from "../../src/config/load.ts";
import { createApplianceState, REBOOT_PATCH_RPM, registerClient } from "../../src/sim/appliance/factory.ts";
import { LunashHost } from "../../src/sim/appliance/lunash.ts";
import { md5ColonFingerprint } from "../../src/sim/certs.ts";
import { CollectingIO, Driver, demoAppliance, waitFor } from "./lunash-harness.ts";

/** A one-device twin fleet with the given sim blocks (YAML fragments). */
async function applianceWith(deviceSim: string, partitionSim = "{}", extra = "") {
  const res = parseFleet(`
version: 1
twin: true
devices:
  - name: hsm-t1
    host: 127.9.9.9
    serial: "710001"
    credentials: { appliance: "Appliance-T1-pw", hsmSo: "HsmSo-T1-secret" }
    partitions:
      - label: par-one
        serial: "1710001000001"
        cloningDomain: declared-domain
        credentials: { partitionSo: "ParSo-T1-secret", co: env:LUNA_T1_CO }
        sim: ${partitionSim}
${extra}
    sim: ${deviceSim}
`);
  if (!res.ok) throw new Error(JSON.stringify(res.issues));
  const device = res.fleet.devices[0]!;
  return createApplianceState(res.fleet, device, { now: new Date() });
}

describe("lunash command line", () => {
  it("accepts case-insensitive unambiguous prefixes and the real short forms", async () => {
    const state = await demoAppliance();
    const d = await Driver.open(state);
    expect(await d.send("hsm sh")).toContain("   HSM Details:\n   ============\n");
    expect(await d.send("HSM SHOWP")).toContain(
      "SO can reset partition PIN               Off          15        Yes",
    );
    expect(await d.send("par list")).toContain("1700101000001        par-pay ");
    expect(await d.send("partition sh -p par-pay")).toContain(
      "   Partition Name:                         par-pay",
    );
    expect(await d.send("pack li")).toContain("RPM LIST (SYSTEM)");
    expect(state.commandLog.map((c) => c.command)).toEqual([
      "hsm sh",
      "HSM SHOWP",
      "par list",
      "partition sh -p par-pay",
      "pack li",
    ]);
  });

  it("reports unknown, ambiguous and incomplete commands with a 65535 footer", async () => {
    const d = await Driver.open(await demoAppliance());
    const unknown = await d.send("hsm frobnicate");
    expect(unknown).toContain("Error:  'hsm frobnicate' is not a valid command.");
    expect(unknown).toMatch(/Command Result : 65535 \(Luna Shell execution\)\n\[hsm-a1\] lunash:>$/);
    const ambiguous = await d.send("pa list");
    expect(ambiguous).toContain("Error:  'pa' is ambiguous.");
    expect(ambiguous).toContain("        package\n");
    expect(ambiguous).toContain("        partition\n");
    expect(await d.send("client")).toContain("'client' is incomplete");
    expect(await d.send("partition show -bogus x")).toContain("Unknown option: -bogus");
    // An empty line just prompts again, without a footer.
    expect(await d.send("")).toBe("\n[hsm-a1] lunash:>");
  });

  it("answers client show/fingerprint for an unknown client with C000040A", async () => {
    const d = await Driver.open(await demoAppliance());
    for (const cmd of [
      "client show -client nobody",
      "client fingerprint -client nobody",
      "client delete -c nobody",
    ]) {
      const out = await d.send(cmd);
      const canonical = cmd.split(" ").slice(0, 2).join(" ");
      expect(out).toContain(`Error:  '${canonical}' failed. (C000040A : RC_OBJECT_NOT_IN_LIST)`);
      expect(out).toContain("        Use 'client list' to list all available clients.");
      expect(out).toContain("Command Result : 65535 (Luna Shell execution)");
    }
  });

  it("registers, shows, assigns, revokes and deletes clients", async () => {
    const state = await demoAppliance();
    const other = await demoAppliance("hsm-a2");
    registerClient(state, {
      name: "client-a",
      hostname: "127.0.2.1",
      certPem: other.ntls.certPem,
      partitions: [],
    });
    state.scpFiles.set("10.1.1.9.pem", state.ntls.certPem);
    const d = await Driver.open(state);

    expect(await d.send("client register -client app 2 -hostname 10.1.1.9")).toContain(
      "Unexpected argument: 2",
    );
    expect(await d.send('client register -client "app 2" -hostname 10.1.1.9')).toContain(
      "'client register' successful.",
    );
    expect(await d.send("client list")).toContain(
      "registered client 1: client-a\nregistered client 2: app 2\n",
    );
    expect(await d.send("client assign -client client-a -partition par-pay")).toContain(
      "'client assignPartition' successful.",
    );
    expect(await d.send("client assign -client client-a -partition nope")).toContain("C000040A");
    expect(await d.send("client show -client client-a")).toContain(
      '\nClientID:     client-a\nHostname:     127.0.2.1\nPartitions:   "par-pay"\n',
    );
    const fp = await d.send("client fingerprint -client client-a");
    expect(fp).toContain(`Certificate fingerprint: ${md5ColonFingerprint(other.ntls.certPem)}\n`);
    expect(md5ColonFingerprint(other.ntls.certPem)).toMatch(/^([0-9A-F]{2}:){15}[0-9A-F]{2}$/);
    expect(await d.send("client revokePartition -client client-a -partition par-pay")).toContain(
      "successful",
    );
    expect(await d.send("client show -client client-a")).toContain("Partitions:   <none>");

    const caution = await d.sendUntil("client delete -client client-a", "          > ");
    expect(caution).toContain(
      "CAUTION:  Are you sure you wish to delete client named:\n            client-a\n",
    );
    expect(caution).toContain(
      "          Type 'proceed' to delete the client, or 'quit'\n          to quit now.\n",
    );
    expect(await d.send("quit")).toContain("Command Result : 65535");
    expect(state.clients.has("client-a")).toBe(true);
    await d.sendUntil("client delete -client client-a", "          > ");
    expect(await d.send("proceed")).toContain("'client delete' successful.");
    expect(state.clients.has("client-a")).toBe(false);
  });

  it("shows partition counters and lockout from the fleet's sim block", async () => {
    const state = await applianceWith(
      "{ policy15: 0 }",
      "{ coFailedLogins: 3, psoFailedLogins: 4, objects: 5 }",
    );
    const p = state.partitions[0]!;
    expect(p.cloningDomain).toBe("declared-domain");
    // env: credentials are not resolved by the twin: a generated, retrievable value stands in.
    expect(state.generatedCredentials["par-one.co"]).toBe(p.passwords.co);
    const d = await Driver.open(state);
    const out = await d.send("partition show -partition par-one");
    expect(out).toContain("   Partition SO Login Attempts Left:       6\n");
    expect(out).toContain("   Crypto Officer Locked Out:              no\n");
    expect(out).toContain("   Crypto Officer Login Attempts Left:     7\n");
    expect(out).toContain("   Partition Object Count:                 5\n");
    expect(out).toContain("Total=648381, Used=1240, Free=647141");
    expect(await d.send("partition show -partition ghost")).toContain("C000040A : RC_OBJECT_NOT_IN_LIST");

    const locked = await applianceWith("{}", "{ coFailedLogins: 10, actualCloningDomain: other-domain }");
    expect(locked.partitions[0]!.coLockout).toBe("permanent");
    expect(locked.partitions[0]!.cloningDomain).toBe("other-domain");
    const d2 = await Driver.open(locked);
    const out2 = await d2.send("partition show");
    expect(out2).toContain("   Crypto Officer Locked Out:              yes\n");
    expect(out2).toContain(
      "   Crypto Officer Login Attempts Left:     None - Crypto Officer is Locked Out\n",
    );
  });

  it("lists the packages with the reboot patch only where it is installed", async () => {
    const patched = await Driver.open(await demoAppliance("hsm-b1"));
    const unpatched = await Driver.open(await demoAppliance("hsm-b3"));
    const a = await patched.send("package list");
    const b = await unpatched.send("package list");
    expect(a).toContain(`RPM LIST (SOFTWARE)\n-------------------\n${REBOOT_PATCH_RPM}\n`);
    expect(b).not.toContain("reboot-patch");
    expect(a).toContain("lunacm-7.2.0-220\n");
  });

  it("renders user list right-aligned in 20/8/8/8 columns", async () => {
    const d = await Driver.open(await demoAppliance());
    const out = await d.send("user list");
    expect(out).toContain(
      "               Users       Roles      Status      RADIUS\n" +
        "--------------------    --------    --------    --------\n" +
        "               admin       admin     enabled          no\n",
    );
  });

  it("refuses hsm factoryReset over SSH and zeroizes only after proceed", async () => {
    const state = await demoAppliance();
    const d = await Driver.open(state);
    const fr = await d.send("hsm factoryReset -force");
    expect(fr).toMatch(/Error: {2}'hsm factoryReset' can only be run from a local serial/);
    expect(fr).toContain("Command Result : 65535");
    await d.sendUntil("hsm zeroize", "          > ");
    await d.send("no");
    expect(state.zeroized).toBe(false);
    await d.sendUntil("hsm zeroize", "          > ");
    expect(await d.send("proceed")).toContain("'hsm zeroize' successful.");
    expect(state.zeroized).toBe(true);
    // Re-initialize from the zeroized state: prompts for password and domain, then proceed.
    await d.sendUntil("hsm init -label NEW-LABEL", "  > ");
    await d.sendUntil("NewSoPass-1", "  > ");
    await d.sendUntil("NewSoPass-1", "  > ");
    await d.sendUntil("a-domain", "  > ");
    await d.sendUntil("a-domain", "          > ");
    expect(await d.send("proceed")).toContain("'hsm init' successful.");
    expect(state.zeroized).toBe(false);
    expect(state.label).toBe("NEW-LABEL");
    expect(d.io.text).not.toContain("NewSoPass-1");
    expect(d.io.text).not.toContain("a-domain");
  });

  it("deletes a partition only as a logged-in HSM SO, after proceed, and unassigns it from clients", async () => {
    const state = await demoAppliance();
    registerClient(state, {
      name: "c1",
      hostname: "10.0.0.1",
      certPem: state.ntls.certPem,
      partitions: ["par-pay"],
    });
    const d = await Driver.open(state);
    expect(await d.send("partition delete -partition par-pay -force")).toContain(
      "requires the HSM Administrator",
    );
    expect(state.partitions).toHaveLength(1);
    await d.send("hsm login -password HsmSo-A1-secret");
    const caution = await d.sendUntil("partition delete -partition par-pay", "          > ");
    expect(caution).toContain(
      "CAUTION:  Are you sure you wish to delete the partition named:\n            par-pay\n",
    );
    expect(await d.send("proceed")).toContain("'partition delete' successful.");
    expect(state.partitions).toHaveLength(0);
    expect(state.clients.get("c1")?.partitions).toEqual([]);
    expect(await d.send("partition list")).toContain("   There are no partitions.");
  });

  it("shows NTLS binding and tails the syslog with search", async () => {
    const state = await demoAppliance();
    const d = await Driver.open(state);
    expect(await d.send("ntls show")).toContain(
      'NTLS bound to network device: eth0   IP Address: "127.0.1.1" (eth0)',
    );
    await d.send("hsm show");
    const tail = await d.send("syslog tail -logname messages -entries 2 -search Command");
    const lines = tail.split("\n").filter((l) => l.includes("-lunash: Command:"));
    expect(lines).toHaveLength(2);
    expect(lines[0]).toContain("Command: hsm show : admin");
  });
});

describe("lunash exec mode", () => {
  it("prints the output without banner or prompt, keeps the footer, and sets the exit code", async () => {
    const state = await demoAppliance();
    const host = new LunashHost(state);
    const ok = new CollectingIO();
    host.exec("partition list", ok, { user: "admin", session: 900 });
    await waitFor(() => ok.ended, "exec end");
    expect(ok.exitCode).toBe(0);
    expect(ok.text).not.toContain("Luna Network HSM Command Line Shell");
    expect(ok.text).not.toContain("lunash:>");
    expect(ok.text).toMatch(/^ {78}Storage \(bytes\)\n/);
    expect(ok.text.endsWith("\nCommand Result : 0 (Success)\n")).toBe(true);

    const bad = new CollectingIO();
    host.exec("client show -client ghost", bad, { user: "admin", session: 901 });
    await waitFor(() => bad.ended, "exec end");
    expect(bad.exitCode).toBe(1);
    expect(bad.text).toContain("C000040A");

    // No input in exec mode: a login prompt sees end of input, and nothing is counted.
    const login = new CollectingIO();
    host.exec("hsm login", login, { user: "admin", session: 902 });
    await waitFor(() => login.ended, "exec end");
    expect(login.exitCode).toBe(1);
    expect(state.soFailures).toBe(0);
    expect(state.commandLog.map((c) => c.session)).toEqual([900, 901, 902]);
  });
});

describe("lunash faults", () => {
  it("slows replies, garbles a command's output and drops the connection mid-command", async () => {
    const state = await demoAppliance();
    state.faults.slowReplyMs = 120;
    const d = await Driver.open(state);
    const t0 = Date.now();
    await d.send("user list");
    expect(Date.now() - t0).toBeGreaterThanOrEqual(110);
    state.faults.slowReplyMs = 0;

    state.faults.garbleCommand = "hsm show";
    const garbled = await d.send("hsm sh");
    expect(garbled).not.toContain("HSM Admin login attempts left:");
    expect(garbled).not.toContain("Serial #:");
    // The frame survives, so a driver sees a complete reply whose body its parser must refuse.
    expect(garbled).toMatch(/Command Result : 0 \(Success\)\n\[hsm-a1\] lunash:>$/);
    expect(await d.send("user list")).toContain("               admin       admin     enabled          no");

    state.faults.dropMidCommand = "partition list";
    d.shell.input("partition list\r");
    await waitFor(() => d.io.destroyed, "the dropped connection");
    expect(d.io.closed).toBe(false);
    expect(d.io.text).not.toMatch(/partition list\n[\s\S]*Command Result/);
  });
});
