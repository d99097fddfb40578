import { X509Certificate } from "node:crypto";
import { describe, expect, it } from "vitest";
import { generateSelfSignedCert } from "../../src/sim/certs.ts";
import { buildHarness, exec, lunacmQ } from "./lunacm-fixture.ts";

const TABLE_HEAD = "Slot    Serial #                Label\n====    ================        =====\n";

describe("vtl on a client host twin", () => {
  it("a stale server certificate hides that appliance's partition until the server is re-added", async () => {
    const { twin, appliances } = await buildHarness({ staleServerCerts: ["hsm-t1"] });
    const presented = appliances.get("hsm-t1")!.ntls.certPem;
    const trusted = twin.serverCerts.get("hsm-t1")!;
    expect(trusted).not.toBe(presented);
    expect(new Date(new X509Certificate(trusted).validTo).getTime()).toBeLessThan(
      new Date(new X509Certificate(presented).validTo).getTime(),
    );
    expect(twin.serverCerts.get("hsm-t2")).toBe(appliances.get("hsm-t2")!.ntls.certPem);

    let verify = exec(twin, "vtl verify");
    expect(verify.exitCode).toBe(1);
    expect(verify.output).toContain(
      "vtl (64-bit) v10.7.2-16. Copyright (c) 2024 Thales Group. All rights reserved.",
    );
    expect(verify.output).toContain(
      "Error: Unable to communicate with server 127.0.9.1: server certificate verification failed",
    );
    expect(verify.output).toContain(
      `The following Luna SA Slots/Partitions were found:\n\n${TABLE_HEAD}   0       1900002000001        par-pay\n   1       1900003000001        par-pay\n`,
    );
    expect(lunacmQ(twin, "slot list").output).not.toMatch(/ Serial Number -> +1900001000001\n/);
    expect(lunacmQ(twin, "slot list").output).toMatch(/ Serial Number -> +1900002000001\n/);

    // The runbook's fix: fetch the appliance's current server.pem, replace the server entry.
    expect(exec(twin, `cat > /tmp/server.pem <<'EOF'\n${presented.trimEnd()}\nEOF`).exitCode).toBe(0);
    const del = exec(twin, "vtl deleteServer -n 127.0.9.1");
    expect(del.exitCode).toBe(0);
    expect(exec(twin, "vtl listServers").output).toBe(
      "Server: 127.0.9.2  HTL required: no\nServer: 127.0.9.3  HTL required: no\n",
    );
    const add = exec(twin, "vtl addServer -n 127.0.9.1 -c /tmp/server.pem");
    expect(add).toEqual({
      output: "\nNew server 127.0.9.1 successfully added to server list.\n\n",
      exitCode: 0,
    });
    expect(twin.serverCerts.get("hsm-t1")).toBe(presented);

    verify = exec(twin, "vtl verify");
    expect(verify.exitCode).toBe(0);
    expect(verify.output).toContain(
      `${TABLE_HEAD}   0       1900002000001        par-pay\n   1       1900003000001        par-pay\n   2       1900001000001        par-pay\n`,
    );
  });

  it("listServers empty form, deleteServer of an unknown host, addServer of a non-certificate", async () => {
    const { twin } = await buildHarness();
    for (const host of ["127.0.9.1", "127.0.9.2", "127.0.9.3"])
      expect(exec(twin, `vtl deleteServer -n ${host}`).exitCode).toBe(0);
    expect(exec(twin, "vtl listServers")).toEqual({
      output: "There are no servers registered.\n",
      exitCode: 0,
    });
    expect(exec(twin, "vtl verify").output).toContain("Error: There are no registered servers");
    expect(exec(twin, "vtl deleteServer -n 127.0.9.1").exitCode).toBe(1);
    exec(twin, "cat > /tmp/junk.pem <<EOF\nnot a certificate\nEOF");
    const r = exec(twin, "vtl addServer -n 127.0.9.1 -c /tmp/junk.pem");
    expect(r.exitCode).toBe(1);
    expect(r.output).toContain("does not contain a valid PEM certificate");
    expect(exec(twin, "vtl addServer -n 127.0.9.1 -c /tmp/missing.pem").exitCode).toBe(1);
    expect(exec(twin, "vtl listServers").output).toBe("There are no servers registered.\n");
  });

  it("verify drops a partition whose appliance no longer trusts the client's certificate", async () => {
    const { twin, appliances } = await buildHarness();
    const other = await generateSelfSignedCert({ commonName: "client-t", validDays: 30 });
    appliances.get("hsm-t3")!.clients.get("client-t")!.certPem = other.certPem;
    const verify = exec(twin, "vtl verify");
    expect(verify.output).toContain("server 127.0.9.3: the server rejected the client certificate");
    expect(verify.output).not.toContain("1900003000001");
    expect(twin.linkTo("hsm-t3")).toEqual({ ok: false, fault: "client-cert-rejected" });
  });

  it("verify drops a partition whose appliance's certificate has expired", async () => {
    const { twin, appliances } = await buildHarness();
    appliances.get("hsm-t2")!.ntls.notAfter = new Date(Date.now() - 1000);
    const verify = exec(twin, "vtl verify");
    expect(verify.output).toContain("server 127.0.9.2: server certificate has expired");
    expect(verify.output).not.toContain("1900002000001");
  });

  it("fingerprint prints the MD5 over the certificate's DER", async () => {
    const { twin } = await buildHarness();
    const path = "/usr/safenet/lunaclient/cert/client/client-t.pem";
    const r = exec(twin, `vtl fingerprint -c ${path}`);
    expect(r.exitCode).toBe(0);
    const { createHash } = await import("node:crypto");
    const md5 = createHash("md5").update(new X509Certificate(twin.certPem).raw).digest("hex").toUpperCase();
    expect(r.output).toBe(`Certificate fingerprint: ${md5.match(/../g)!.join(":")}\n`);
  });

  it("the client registered itself on every assigned appliance with its own certificate", async () => {
    const { twin, appliances } = await buildHarness();
    for (const n of [1, 2, 3]) {
      const reg = appliances.get(`hsm-t${n}`)!.clients.get("client-t");
      expect(reg?.certPem).toBe(twin.certPem);
      expect(reg?.partitions).toEqual(["par-pay"]);
    }
    expect(new X509Certificate(twin.certPem).subject).toBe("CN=client-t");
    expect(twin.keyPem).toContain("PRIVATE KEY");
  });
});
